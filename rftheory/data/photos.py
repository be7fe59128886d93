"""scikit-image's bundled colour photographs as CIFAR-sized rows on the √d-sphere; nothing is downloaded.

The photographs (:data:`PHOTOS`) are the colour images that ship inside the
scikit-image package itself (``skimage/data``), read from there with
``skimage.io.imread``; the ``skimage.data`` functions that fetch files
through pooch are never called.

Images, in this order:

* n ≤ len(PHOTOS) and no ``crop``: the first n photographs, each cut to its
  central square (side = its shorter side);
* otherwise: n square crops of ``crop`` pixels (default DEFAULT_CROP), the
  photograph of crop i being PHOTOS[i mod len(PHOTOS)], its top-left corner
  drawn uniformly (seeded by ``seed``);

each then resized to ``size × size × 3`` (``skimage.transform.resize`` with
anti-aliasing, float values in [0, 1]).  Pre-processing, as for
:func:`rftheory.data.digits.digits`: each pixel standardised with the mean and
standard deviation of a fixed reference set (the REFERENCE_CROPS crops of seed
0 at the same ``size`` and ``crop``, plus the central squares; constant
pixels set to 0), then each image rescaled to norm √d.  Rows are channel-last
(``X[i].reshape(size, size, 3)``, as :mod:`rftheory.data.cifar`), so d =
3·size²; labels y are the photograph indices mapped to [−1, 1]
(y = 2k/(m − 1) − 1 over the m photographs).
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from .synthetic import Dataset, _check_sizes, project_to_sphere

__all__ = ["photos", "PHOTOS", "photo_names"]

# name -> file inside skimage/data (colour photographs bundled with the package: no pooch download)
PHOTOS = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "immunohistochemistry": "ihc.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "motorcycle": "motorcycle_left.png",  # the left view only: the right one is nearly the same picture
}
DEFAULT_SIZE = 32  # CIFAR's side: d = 3·32² = 3072
DEFAULT_CROP = 128  # pixels per side of a random crop: about a quarter of the photographs' shorter side (≥ 300)
REFERENCE_CROPS = 256  # crops behind the per-pixel statistics: enough for stable means, a second or so to make


def photo_names() -> tuple:
    """The photographs' names, in the loader's order."""
    return tuple(PHOTOS)


def _photo_dir() -> str:
    import skimage  # noqa: PLC0415  (lazy: keeps `import rftheory.data` free of scikit-image)

    return os.path.join(os.path.dirname(skimage.__file__), "data")


@lru_cache(maxsize=None)
def _read(name: str) -> np.ndarray:
    """Photograph ``name`` as float RGB in [0, 1] (H, W, 3), read from the package's own files (once; read-only)."""
    from skimage.io import imread  # noqa: PLC0415
    from skimage.util import img_as_float  # noqa: PLC0415

    path = os.path.join(_photo_dir(), PHOTOS[name])
    if not os.path.exists(path):
        raise FileNotFoundError(f"scikit-image does not bundle {PHOTOS[name]} here ({path}); nothing is downloaded")
    image = img_as_float(imread(path))
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"{name} is not a colour photograph (shape {image.shape})")
    image = np.ascontiguousarray(image[:, :, :3])
    image.flags.writeable = False
    return image


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize  # noqa: PLC0415

    return resize(image, (size, size, 3), anti_aliasing=True, mode="reflect")


def _central(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    return image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def _crops(images, count: int, crop: int, seed: int):
    """``count`` crops of crop×crop pixels: crop i from photograph i mod m at a seeded corner; (crops, indices)."""
    rng = np.random.default_rng([seed, 3072])
    out, which = [], []
    for i in range(count):
        k = i % len(images)
        image = images[k]
        h, w = image.shape[:2]
        if crop > min(h, w):
            raise ValueError(f"crop={crop} exceeds the shorter side ({min(h, w)}) of {list(PHOTOS)[k]}")
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        out.append(image[top:top + crop, left:left + crop])
        which.append(k)
    return out, np.asarray(which)


@lru_cache(maxsize=8)
def _reference(size: int, side: int):
    """(mean, std) per pixel of the reference set at this size and crop side, and the central squares (read-only)."""
    images = [_read(name) for name in PHOTOS]
    centres = np.stack([_resize(_central(image), size) for image in images])
    reference, _ = _crops(images, REFERENCE_CROPS, side, 0)
    pool = np.concatenate([np.stack([_resize(c, size) for c in reference]), centres]).reshape(len(reference) + len(images), -1)
    out = pool.mean(axis=0), pool.std(axis=0), centres.reshape(len(images), -1)
    for a in out:
        a.flags.writeable = False
    return out


def photos(n: int, size: int = DEFAULT_SIZE, crop: int | None = None, seed: int = 0) -> Dataset:
    """n colour images of size×size×3 (d = 3·size²) from scikit-image's bundled photographs (module docstring).

    Parameters
    ----------
    n : int
        Number of images (whole photographs while n ≤ len(PHOTOS) and no ``crop``, else random crops).
    size : int
        Side of the resized images (32: CIFAR's resolution, d = 3072).
    crop : int, optional
        Side in pixels of the random crops taken before resizing (default DEFAULT_CROP when crops are needed).
    seed : int
        Seed of the crops' positions (the reference statistics use seed 0, whatever ``seed``).
    """
    _check_sizes(n, 3 * size * size)
    if crop is not None and (isinstance(crop, bool) or int(crop) < 1):
        raise ValueError(f"crop must be a positive number of pixels, got {crop!r}")
    images = [_read(name) for name in PHOTOS]
    side = DEFAULT_CROP if crop is None else int(crop)
    mean, std, centres = _reference(int(size), side)
    if crop is None and n <= len(images):
        chosen, which = centres[:n], np.arange(n)
        how = "central squares"
    else:
        cut, which = _crops(images, n, side, seed)
        chosen = np.stack([_resize(c, size) for c in cut]).reshape(n, -1)
        how = f"random {side}×{side} crops, seed={seed}"
    Z = np.where(std > 0, (chosen - mean) / np.where(std > 0, std, 1.0), 0.0)
    X = project_to_sphere(Z)
    y = 2.0 * which / (len(images) - 1) - 1.0
    return Dataset(X, y, f"photos n={n} size={size} ({how}; pixel-standardised, rows on √d-sphere)",
                   (size, size, 3))
