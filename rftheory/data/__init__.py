"""Data sets, each returned as rows on the sphere of radius √d with labels.

* :mod:`.synthetic` — :class:`Dataset`, :func:`synthetic_sphere`, :func:`project_to_sphere`;
* :mod:`.digits` — scikit-learn's bundled 8×8 digits;
* :mod:`.cifar` — CIFAR-10 batches from a local folder;
* :mod:`.images` — image views of rows, PSNR/SSIM and image grids;
* :mod:`.subspace` — rows in (or near) a random low-dimensional subspace
  (:func:`~rftheory.data.subspace.synthetic_subspace`).
"""
from .digits import digits
from .synthetic import Dataset, project_to_sphere, synthetic_sphere

__all__ = ["Dataset", "digits", "project_to_sphere", "synthetic_sphere"]
