"""Synthetic data on the sphere, and the record every data set returns.

Data sets return rows on the sphere of radius √d (‖x_i‖ = √d), the normalisation
the theory and the attack use.  Nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import check_count

__all__ = ["Dataset", "synthetic_sphere", "project_to_sphere"]


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
