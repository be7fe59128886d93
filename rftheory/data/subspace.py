r"""Synthetic data whose rows lie in (or near) a random low-dimensional subspace.

U ∈ R^{d×r} has orthonormal columns (the Q factor of a d×r standard
Gaussian with the signs fixed by diag R, so U is Haar-distributed on the
Stiefel manifold), z_i is uniform on the sphere of radius √d in R^r and
x_i = U z_i, so ‖x_i‖ = √d and x_i ∈ span U.  The subspace attack
(:mod:`rftheory.attack.subspace`) and the ΔW₁ estimate
(:mod:`rftheory.attack.subspace_estimate`) are checked on these rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..validation import check_count
from .synthetic import Dataset, project_to_sphere

__all__ = ["SubspaceDataset", "synthetic_subspace"]


@dataclass
class SubspaceDataset(Dataset):
    """A :class:`rftheory.data.synthetic.Dataset` whose rows lie in a known subspace.

    ``basis`` is U ∈ R^{d×r} with orthonormal columns; ``Z`` the coordinates
    (X = Z Uᵀ when ``leak`` = 0, rows of Z on the √d-sphere of R^r).
    """

    basis: np.ndarray | None = None
    Z: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])


def synthetic_subspace(n: int, d: int, r: int, seed: int = 0, noise: float = 0.1, leak: float = 0.0) -> SubspaceDataset:
    """Rows in a random r-dimensional subspace of R^d, on the √d-sphere.

    U = Q factor of a d×r standard Gaussian (uniform on the Stiefel manifold
    up to signs), z_i uniform on the sphere of radius √d in R^r, x_i = U z_i
    (so ‖x_i‖ = √d and x_i ∈ span U).  With ``leak`` > 0 an isotropic
    Gaussian of standard deviation ``leak`` (per coordinate, relative to the
    unit-variance coordinates of x_i) is added before the rows are put back
    on the √d-sphere: the data then lie only *near* span U.  Labels are
    linear as in :func:`rftheory.data.synthetic.synthetic_sphere`:
    y_i = ⟨β, x_i⟩/√d + ε_i, β ~ N(0, I_d), ε_i ~ N(0, noise²).  Fully
    determined by ``seed``.
    """
    n, d, r = check_count(n, "n"), check_count(d, "d"), check_count(r, "r")
    if r > d:
        raise ValueError(f"subspace rank r={r} exceeds the dimension d={d}")
    if noise < 0 or leak < 0:
        raise ValueError(f"noise and leak must be non-negative, got {noise}, {leak}")
    rng = np.random.default_rng([seed, 0x5B5B, r])
    U, R = np.linalg.qr(rng.standard_normal((d, r)))
    U = U * np.sign(np.diag(R))[None, :]  # Haar-distributed basis
    Z = rng.standard_normal((n, r))
    Z *= math.sqrt(d) / np.linalg.norm(Z, axis=1, keepdims=True)
    X = Z @ U.T
    if leak > 0:
        X = project_to_sphere(X + leak * rng.standard_normal((n, d)))
    beta = rng.standard_normal(d)
    y = X @ beta / math.sqrt(d) + noise * rng.standard_normal(n)
    desc = f"synthetic subspace n={n} d={d} r={r} seed={seed} (rows in a random {r}-dim subspace on the √d-sphere"
    desc += f", leak {leak}" if leak > 0 else ""
    desc += f"; linear labels, noise {noise})"
    return SubspaceDataset(X, y, desc, None, U, Z)
