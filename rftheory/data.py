"""Data sets: synthetic sphere data and scikit-learn's bundled digits.

Both return rows on the sphere of radius √d (‖x_i‖ = √d), the normalisation
the theory and the attack use.  Nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_count

__all__ = ["Dataset", "synthetic_sphere", "digits", "project_to_sphere"]


@dataclass
class Dataset:
    """X (n×d, rows on the √d-sphere), labels y (n,), and how they were made."""

    X: np.ndarray
    y: np.ndarray
    description: str
    image_shape: tuple | None = None


def project_to_sphere(X: np.ndarray) -> np.ndarray:
    """Rescale each row to norm √d."""
    d = X.shape[1]
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("cannot put an all-zero row on the sphere")
    return X * (np.sqrt(d) / norms)


def _check_sizes(n, d):
    check_count(n, "n")
    check_count(d, "d")


def synthetic_sphere(n: int, d: int, seed: int = 0, noise: float = 0.1) -> Dataset:
    """x_i uniform on the √d-sphere; y_i = ⟨β, x_i⟩/√d + ε_i, β ~ N(0, I_d),
    ε_i ~ N(0, noise²).  Fully determined by ``seed``."""
    _check_sizes(n, d)
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    rng = np.random.default_rng([seed, 0x5F3759DF])
    X = project_to_sphere(rng.standard_normal((n, d)))
    beta = rng.standard_normal(d)
    y = X @ beta / np.sqrt(d) + noise * rng.standard_normal(n)
    return Dataset(X, y, f"synthetic sphere n={n} d={d} seed={seed} (linear labels, noise {noise})")


def digits(n: int, classes=(0, 1, 2, 3), seed: int = 0) -> Dataset:
    """n images from scikit-learn's bundled 8×8 digits (d = 64, no download).

    Samples are drawn without replacement from the given classes (seeded).
    Pre-processing, in this order: each pixel standardised with the mean and
    standard deviation of the whole 1797-image set (constant pixels set to 0),
    then each image rescaled to norm √d = 8.  Labels y are the class indices
    centred and scaled to [−1, 1] (for classes (a, b): −1, +1).
    """
    from sklearn.datasets import load_digits  # noqa: PLC0415

    _check_sizes(n, 64)
    data = load_digits()
    classes = tuple(int(c) for c in classes)
    if not classes or any(c not in range(10) for c in classes):
        raise ValueError(f"classes must be digits 0..9, got {classes}")
    pool = np.flatnonzero(np.isin(data.target, classes))
    if n > pool.size:
        raise ValueError(f"n={n} exceeds the {pool.size} digits of classes {classes}")
    rng = np.random.default_rng([seed, 64])
    idx = np.sort(rng.choice(pool, size=n, replace=False))
    mean = data.data.mean(axis=0)
    std = data.data.std(axis=0)
    Z = np.where(std > 0, (data.data - mean) / np.where(std > 0, std, 1.0), 0.0)
    X = project_to_sphere(Z[idx])
    labels = data.target[idx]
    order = {c: k for k, c in enumerate(sorted(classes))}
    k = np.array([order[c] for c in labels], dtype=np.float64)
    y = 2 * k / max(len(classes) - 1, 1) - 1
    return Dataset(X, y, f"digits n={n} classes={classes} seed={seed} (pixel-standardised, rows on √d-sphere)", (8, 8))
