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
    """X (n×d, rows on the √d-sphere), labels y (n,) or Y (n, C) for C outputs, and how they were made."""

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


def synthetic_sphere(n: int, d: int, seed: int = 0, noise: float = 0.1, outputs: int | None = None) -> Dataset:
    """x_i uniform on the √d-sphere with linear labels; fully determined by ``seed``.

    One output (``outputs`` None or 1): y_i = ⟨β, x_i⟩/√d + ε_i, β ~ N(0, I_d),
    ε_i ~ N(0, noise²), y of shape (n,).  C outputs (``outputs`` = C ≥ 2):
    C independent linear labels of the same kind, Y_ic = ⟨β_c, x_i⟩/√d + ε_ic
    with β_1..β_C ~ N(0, I_d) and ε_ic ~ N(0, noise²) all independent, Y of
    shape (n, C).  X is the same for every C (it is drawn first from the same
    stream), and β_1 is the β of the one-output labels, so sweeps over C
    compare the same samples.
    """
    _check_sizes(n, d)
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    C = 1 if outputs is None else check_count(outputs, "outputs")
    rng = np.random.default_rng([seed, 0x5F3759DF])
    X = project_to_sphere(rng.standard_normal((n, d)))
    if outputs is None or C == 1:
        beta = rng.standard_normal(d)
        y = X @ beta / np.sqrt(d) + noise * rng.standard_normal(n)
        return Dataset(X, y, f"synthetic sphere n={n} d={d} seed={seed} (linear labels, noise {noise})")
    B = rng.standard_normal((C, d)).T  # column c is β_c; β_1 is drawn as the one-output β
    Y = X @ B / np.sqrt(d) + noise * rng.standard_normal((C, n)).T
    return Dataset(X, Y, f"synthetic sphere n={n} d={d} seed={seed} ({C} independent linear labels, noise {noise})")
