r"""The random-features map restricted to a known subspace: an RF model in dimension r.

With U ∈ R^{d×r} an orthonormal basis (UᵀU = I_r), candidates are
X̂ = c·Z Uᵀ with Z ∈ R^{n̂×r}.  Because ‖ZUᵀ‖ = ‖Z‖ and the optimiser of
:func:`rftheory.attack.reconstruct.reconstruct` keeps the rows of Z on the sphere
of radius √r (the radius of *its* model dimension), the scale is
c = √(d/r): then ‖x̂_i‖ = √d as the theory requires, and

    φ(x̂) = σ(V x̂) = σ(√(d/r) V U z) = σ(W z),    W = √(d/r) V U ∈ R^{p×r}.

:class:`SubspaceRandomFeatures` is that feature map (effective weights W).
Since V has i.i.d. N(0, 1/d) entries and U has orthonormal columns, W has
i.i.d. N(0, 1/r) entries: on a known subspace the attack *is* an RF attack
in dimension r, so the threshold moves from p ≈ dn to p ≈ rn
(:func:`rftheory.attack.subspace.subspace_reconstruct` runs it).

All functions accept NumPy or CuPy arrays and return the same kind.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import array_namespace
from ..validation import check_matrix
from .random_features import with_dtype

__all__ = ["orthonormal_basis", "SubspaceRandomFeatures"]


def orthonormal_basis(B, atol: float = 1e-10):
    """Orthonormal basis (columns) of the column space of B (d×r, full column rank).

    B itself (in float64) when its columns are already orthonormal
    (max |BᵀB − I| ≤ ``atol``), so coordinates keep their meaning; otherwise
    the left singular vectors of B.
    """
    B = check_matrix(B, "basis")
    xp = array_namespace(B)
    if B.shape[1] > B.shape[0]:
        raise ValueError(f"basis has r={B.shape[1]} columns > d={B.shape[0]} rows")
    B = xp.asarray(B, dtype=np.float64)
    if float(xp.max(xp.abs(B.T @ B - xp.eye(B.shape[1])))) <= atol:
        return B
    U, s, _ = xp.linalg.svd(B, full_matrices=False)
    if not float(s[-1]) > 1e-10 * float(s[0]):
        raise ValueError("basis columns are (numerically) linearly dependent")
    return U


class SubspaceRandomFeatures:
    """The RF feature map restricted to x = √(d/r) U z:  φ_U(z) = σ(W z).

    Effective weights W = √(d/r) V U ∈ R^{p×r} (i.i.d. N(0, 1/r) entries
    when U is orthonormal).  The object follows the random-features
    protocol used by :func:`rftheory.attack.loss.projection_loss` and
    :func:`rftheory.attack.reconstruct.reconstruct` (``p, d, dtype, xp, activation,
    store_weights, weight_blocks(), features()``) with ``d`` = r, so the
    existing loss and optimisers run on Z ∈ R^{n̂×r} with rows on the
    √r-sphere, which :meth:`lift` maps to rows of norm √d in span U.

    Parameters
    ----------
    model : RandomFeatures
        The attacker's copy of the RF model (V stored or streamed: W is
        accumulated block by block and stored; it is only p×r).
    basis : array (d, r)
        Basis of the search subspace; orthonormalised here (its column
        space is what matters).
    """

    store_weights = True

    def __init__(self, model, basis):
        basis = check_matrix(basis, "basis", rows=model.d, rows_name="d (input dimension of the model)")
        xp = model.xp
        U = orthonormal_basis(xp.asarray(basis, dtype=np.float64))
        self.base = model
        self.basis = U
        self.ambient_d = int(model.d)
        self.p, self.d = int(model.p), int(U.shape[1])
        self.dtype, self.xp, self.activation = model.dtype, xp, model.activation
        self.seed = getattr(model, "seed", None)
        self.scale = math.sqrt(self.ambient_d / self.d)
        Um = U.astype(self.dtype)
        W = xp.empty((self.p, self.d), dtype=self.dtype)
        for rows, Vb in model.weight_blocks():
            W[rows] = Vb @ Um
        self._W = W * self.dtype.type(self.scale)

    @property
    def weights(self):
        """W = √(d/r) V U (p×r)."""
        return self._W

    def astype(self, dtype) -> "SubspaceRandomFeatures":
        """The same map with W cast to ``dtype`` (the attack's working precision)."""
        return with_dtype(self, dtype, "_W")

    def weight_blocks(self):
        yield slice(0, self.p), self._W

    def _as_input(self, Z):
        Z = check_matrix(Z, "Z", cols=self.d, cols_name="r (subspace dimension)")
        return self.xp.asarray(Z, dtype=self.dtype)

    def preactivations(self, Z):
        return self._as_input(Z) @ self._W.T

    def features(self, Z):
        """σ(Z Wᵀ) = σ(X̂ Vᵀ) for X̂ = lift(Z)."""
        return self.activation.fn(self.preactivations(Z))

    def lift(self, Z):
        """X̂ = √(d/r) Z Uᵀ (rows of norm √d when ‖z_i‖ = √r)."""
        Z = self._as_input(Z)
        return (Z.astype(np.float64) @ self.basis.T * self.scale).astype(self.dtype)

    def project(self, X):
        """Z = √(r/d) X U, the inverse of :meth:`lift` on span U."""
        X = check_matrix(X, "X", cols=self.ambient_d, cols_name="d")
        return (self.xp.asarray(X, dtype=np.float64) @ self.basis / self.scale).astype(self.dtype)

    def __repr__(self) -> str:
        return f"SubspaceRandomFeatures(p={self.p}, d={self.ambient_d}, r={self.d}, activation={self.activation.name!r})"
