"""Small dense linear algebra on NumPy or CuPy: the Gram solve A α = b.

A = ΦΦᵀ is symmetric positive semi-definite.  We try a Cholesky factorisation
in float64 and check the conditioning from its diagonal,

    κ̂(A) = (max_i L_ii / min_i L_ii)²  ≤ κ(A),

and accept it when κ̂ < 1/(n·ε·RCOND_FACTOR).  Otherwise (factorisation
failed or κ̂ too large) either raise :class:`SingularGramError` (``strict``)
or fall back to the eigen-decomposition pseudo-inverse that drops eigenvalues
below ``n·ε·λ_max``.
"""
from __future__ import annotations

import numpy as np

from .backend import array_namespace

__all__ = ["SingularGramError", "gram_solve", "cholesky_condition_limit"]

RCOND_FACTOR = 10.0


class SingularGramError(ValueError):
    """ΦΦᵀ is numerically singular (duplicate samples, p too small, ...)."""


def cholesky_condition_limit(n: int) -> float:
    """Largest accepted κ̂(A) = (max L_ii / min L_ii)² for the Cholesky path: 1/(n·ε·RCOND_FACTOR)."""
    return 1.0 / (max(int(n), 1) * np.finfo(np.float64).eps * RCOND_FACTOR)


def _cholesky(A, xp):
    if xp is np:  # LAPACK potrf directly: the attack solves one small system per evaluation
        from scipy.linalg.lapack import dpotrf  # noqa: PLC0415  (a heavy import, paid only when solving)

        L, info = dpotrf(A, lower=1, clean=1)
        return L if info == 0 else None
    L = xp.linalg.cholesky(A)  # CuPy returns NaN instead of raising
    return L if bool(xp.all(xp.isfinite(L))) else None


def _cholesky_solve(L, b, xp):
    """x with L Lᵀ x = b."""
    if xp is np:
        from scipy.linalg.lapack import dpotrs  # noqa: PLC0415

        x, info = dpotrs(L, b, lower=1)
        if info != 0:  # pragma: no cover - only for invalid arguments
            raise ValueError(f"LAPACK dpotrs failed (info={info})")
        return x
    from cupyx.scipy.linalg import solve_triangular  # noqa: PLC0415  # pragma: no cover - GPU only

    return solve_triangular(L, solve_triangular(L, b, lower=True, trans=0), lower=True, trans=1)  # pragma: no cover


def gram_solve(A, b, *, what: str = "Gram matrix", strict: bool = False):
    """Solve A x = b for symmetric PSD A (n×n), b of shape (n,) or (n, k).

    Computed in float64; returns float64 on A's backend.

    Raises
    ------
    SingularGramError
        If ``strict`` and A is numerically singular.
    """
    xp = array_namespace(A, b)
    A = xp.asarray(A, dtype=np.float64)
    b = xp.asarray(b, dtype=np.float64)
    n = A.shape[0]
    eps = np.finfo(np.float64).eps
    limit = cholesky_condition_limit(n)
    L = _cholesky(A, xp)
    if L is not None:
        diag = xp.abs(xp.diagonal(L))
        dmin = float(diag.min())
        kappa_hat = (float(diag.max()) / dmin) ** 2 if dmin > 0 else np.inf
        if kappa_hat < limit:
            return _cholesky_solve(L, b, xp)
    w, Q = xp.linalg.eigh(A)
    wmax = float(w.max()) if n else 0.0
    if strict:
        wmin = float(w.min())
        raise SingularGramError(
            f"{what} is numerically singular: eigenvalues in [{wmin:.3e}, {wmax:.3e}], "
            f"condition number above {limit:.1e} (duplicate or collinear samples, or p too small?)"
        )
    keep = w > n * eps * max(wmax, 0.0) * RCOND_FACTOR
    winv = xp.where(keep, 1.0 / xp.where(keep, w, 1.0), 0.0)
    return Q @ (winv[:, None] * (Q.T @ b)) if b.ndim == 2 else Q @ (winv * (Q.T @ b))
