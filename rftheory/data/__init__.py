"""Data sets, each returned as rows on the sphere of radius √d with labels.

* :mod:`.synthetic` — :class:`Dataset`, :func:`synthetic_sphere`, :func:`project_to_sphere`;
* :mod:`.digits` — scikit-learn's bundled 8×8 digits;
* :mod:`.cifar` — CIFAR-10 batches from a local folder;
* :mod:`.images` — image views of rows, PSNR/SSIM and image grids;
* :mod:`.subspace` — rows in (or near) a random low-dimensional subspace
  (:func:`~rftheory.data.subspace.synthetic_subspace`);
* :mod:`.photos` — scikit-image's bundled colour photographs at 32×32×3
  (:func:`~rftheory.data.photos.photos`; scikit-image is imported only when
  it is called, so importing this package does not import it).
"""
from .digits import digits
from .photos import photos
from .synthetic import Dataset, project_to_sphere, synthetic_sphere

__all__ = ["Dataset", "digits", "photos", "project_to_sphere", "synthetic_sphere"]

