"""scikit-learn's bundled 8×8 digits (d = 64) as rows on the √d-sphere; nothing is downloaded."""
from __future__ import annotations

import numpy as np

from .synthetic import Dataset, _check_sizes, project_to_sphere

__all__ = ["digits"]


def digits(n: int, classes=(0, 1, 2, 3), seed: int = 0, one_hot: bool = False) -> Dataset:
    """n images from scikit-learn's bundled 8×8 digits (d = 64, no download).

    Samples are drawn without replacement from the given classes (seeded).
    Pre-processing, in this order: each pixel standardised with the mean and
    standard deviation of the whole 1797-image set (constant pixels set to 0),
    then each image rescaled to norm √d = 8.  Labels y are the class indices
    centred and scaled to [−1, 1] (for classes (a, b): −1, +1); with
    ``one_hot`` they are one-hot rows instead, Y (n, C) with C = len(classes),
    Y_ic = 1 if sample i is of the c-th class (in increasing digit order),
    else 0 — one output per class, the targets of a C-output model.
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
    if one_hot:
        Y = np.zeros((n, len(order)))
        Y[np.arange(n), k.astype(int)] = 1.0
        return Dataset(X, Y, f"digits n={n} classes={classes} seed={seed} (pixel-standardised, rows on √d-sphere, "
                             f"one-hot labels C={len(order)})", (8, 8))
    y = 2 * k / max(len(classes) - 1, 1) - 1
    return Dataset(X, y, f"digits n={n} classes={classes} seed={seed} (pixel-standardised, rows on √d-sphere)", (8, 8))
