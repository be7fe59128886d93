r"""Row-span tools for feature matrices: bases, numerical rank, residuals, principal angles.

Everything here works on the *row* span of a matrix: for a feature matrix
Φ ∈ R^{n×p} (one sample per row, docs/design.md) the span of interest is
span{φ(x_1), …, φ(x_n)} ⊂ R^p, the row space of Φ.  All functions take NumPy
or CuPy arrays (:func:`rftheory.backend.array_namespace`) and return arrays of
the same kind; the linear algebra (SVD, QR) is the array module's own, so the
same code path runs on the CPU and on a GPU.

Precision
---------
Arithmetic is float64 whatever the input dtype (integers are promoted), but
the rank tolerance uses the machine epsilon ε of the *input* dtype (float64
for integer input): the entries of a float32 feature matrix carry float32
rounding, so singular values below ~ε₃₂·σ_max are noise.

Tolerance rule (numerical rank)
-------------------------------
With singular values σ_1 ≥ σ_2 ≥ … of A (m×k) the numerical rank is

    rank(A) = #{ i : σ_i > tol },   tol = max(atol, rtol · σ_1),
    rtol default = max(m, k) · ε(dtype of A),

the rule of ``numpy.linalg.matrix_rank`` and of ``scipy.linalg.orth`` (which
``scipy.linalg.subspace_angles`` uses), so results agree with those
references.  A zero matrix has rank 0 and an empty basis.

Residuals
---------
For B ∈ R^{m×p} and the row space S = rowspan(A), with Q ∈ R^{r×p} an
orthonormal basis of S (QQᵀ = I_r), the residual of row b_i is

    P⊥_S b_i = b_i − Qᵀ Q b_i,

computed with one re-orthogonalisation pass ("twice is enough"), so its
absolute error is O(ε·‖b_i‖) even when the residual is tiny.  Reported as
‖P⊥ b_i‖, ‖P⊥ b_i‖/‖b_i‖ (relative; 0 for a zero row, which lies in every
span) and ‖P⊥ b_i‖/√p.

Principal angles
----------------
Same semantics as ``scipy.linalg.subspace_angles(A.T, B.T)`` (that function
works on column spaces; here rows): orthonormal bases by the tolerance rule
above, min(rank A, rank B) angles in radians, in descending order.  The
algorithm is Knyazev & Argentati (2002): cosines from the singular values of
Q_A Q_Bᵀ, sines from the singular values of Q_B − (Q_A Q_Bᵀ)ᵀ Q_A (or the
symmetric form), arcsin used where sin² ≤ 1/2 and arccos elsewhere.  Unlike
scipy 1.17 (whose mask is aligned with the cosines in descending order while
the angles are in ascending-cosine order), the sine/cosine choice here is
aligned angle by angle, so tiny angles (≈1e-9 rad) are resolved to relative
accuracy instead of being rounded to 0 by arccos.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import array_namespace
from ..validation import check_matrix

__all__ = [
    "SpanBasis",
    "RowResiduals",
    "rank_tolerance",
    "numerical_rank",
    "row_basis",
    "row_residuals",
    "principal_angles",
    "span_distance",
]

BASIS_METHODS = ("svd", "qr")


class SpanBasis(NamedTuple):
    """Orthonormal basis of the row space of A (m×k).

    basis : array (r, k)
        Orthonormal rows spanning rowspan(A) (r = numerical rank).
    singular_values : array (min(m, k),)
        Singular values of A in descending order (``method="svd"``), or
        |diag R| of the QR factorisation of Aᵀ (``method="qr"``).
    rank : int
        r, by the tolerance rule of the module docstring.
    tol : float
        The tolerance used (σ_i > tol counts).
    method : str
        "svd" or "qr".
    """

    basis: object
    singular_values: object
    rank: int
    tol: float
    method: str


class RowResiduals(NamedTuple):
    """Residuals of the rows of B on a row space S.

    absolute : ‖P⊥_S b_i‖, shape (m,)
    relative : ‖P⊥_S b_i‖/‖b_i‖ (0 for a zero row), shape (m,)
    per_sqrt_p : ‖P⊥_S b_i‖/√p, p = number of columns, shape (m,)
    norms : ‖b_i‖, shape (m,)
    rank : dimension of S used
    """

    absolute: object
    relative: object
    per_sqrt_p: object
    norms: object
    rank: int


def _eps_of(a) -> float:
    dt = np.dtype(a.dtype)
    return float(np.finfo(dt).eps) if dt.kind == "f" else float(np.finfo(np.float64).eps)


def _check_tol(rtol, atol):
    if rtol is not None and not (isinstance(rtol, (int, float, np.floating)) and np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite non-negative number or None, got {rtol!r}")
    if not (isinstance(atol, (int, float, np.floating)) and np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite non-negative number, got {atol!r}")


def rank_tolerance(singular_values, shape, dtype=np.float64, *, rtol=None, atol=0.0) -> float:
    """tol = max(atol, rtol·σ_max) with rtol = max(shape)·ε(dtype) by default.

    ``singular_values`` may be NumPy or CuPy; an empty array gives tol = atol.
    """
    _check_tol(rtol, atol)
    dt = np.dtype(dtype)
    eps = float(np.finfo(dt).eps) if dt.kind == "f" else float(np.finfo(np.float64).eps)
    if rtol is None:
        rtol = max(shape) * eps
    smax = float(singular_values.max()) if singular_values.size else 0.0
    return max(float(atol), float(rtol) * smax)


def _as_float64(A, name):
    A = check_matrix(A, name)
    xp = array_namespace(A)
    return A, xp.asarray(A, dtype=np.float64), xp


def numerical_rank(A, *, rtol=None, atol=0.0) -> int:
    """Numerical rank #{σ_i > max(atol, rtol·σ_1)} of A (rtol = max(m,k)·ε by default).

    Agrees with ``numpy.linalg.matrix_rank(A)`` for the default tolerance.
    """
    A0, A, xp = _as_float64(A, "A")
    s = xp.linalg.svd(A, compute_uv=False)
    tol = rank_tolerance(s, A.shape, A0.dtype, rtol=rtol, atol=atol)
    return int(xp.sum(s > tol))


def row_basis(A, *, rtol=None, atol=0.0, method: str = "svd") -> SpanBasis:
    """Orthonormal basis (rows) of rowspan(A), A ∈ R^{m×k}.

    ``method="svd"`` (default, rank-revealing): A = U diag(σ) Wᵀ, basis = the
    first r rows of Wᵀ with r = #{σ_i > tol}.
    ``method="qr"``: Aᵀ = Q R (reduced, unpivoted; cheaper for m ≪ k).  Used
    only when every |R_ii| exceeds the tolerance rule applied to |diag R|;
    otherwise A may be rank-deficient and the SVD decides.  Unpivoted QR is
    not rank-revealing in general (R can be ill-conditioned with a healthy
    diagonal), so use "svd" when the rank itself is the question.
    """
    if method not in BASIS_METHODS:
        raise ValueError(f"method must be one of {BASIS_METHODS}, got {method!r}")
    A0, A, xp = _as_float64(A, "A")
    m, k = A.shape
    if method == "qr" and m <= k:
        Q, R = xp.linalg.qr(A.T)
        diag = xp.abs(xp.diagonal(R))
        tol = rank_tolerance(diag, A.shape, A0.dtype, rtol=rtol, atol=atol)
        if bool(xp.all(diag > tol)):
            return SpanBasis(Q.T, diag, m, tol, "qr")
    _, s, Wt = xp.linalg.svd(A, full_matrices=False)
    tol = rank_tolerance(s, A.shape, A0.dtype, rtol=rtol, atol=atol)
    r = int(xp.sum(s > tol))
    return SpanBasis(Wt[:r], s, r, tol, "svd")


def _project_out(B, Q):
    """B − BQᵀQ with one re-orthogonalisation pass (rows of B, rows of Q orthonormal)."""
    if Q.shape[0] == 0:
        return B
    R = B - (B @ Q.T) @ Q
    return R - (R @ Q.T) @ Q


def row_residuals(B, A=None, *, basis=None, rtol=None, atol=0.0, method: str = "svd") -> RowResiduals:
    """Residual of each row b_i of B on the row space of A: P⊥ b_i = b_i − QᵀQ b_i.

    Parameters
    ----------
    B : array (m, p)
        Rows to test (e.g. candidate features).
    A : array (n, p), optional
        Rows spanning the reference space (e.g. the true features Φ).
    basis : SpanBasis, optional
        A precomputed :func:`row_basis` of A (then A may be omitted).
    rtol, atol, method
        Passed to :func:`row_basis`.

    Returns
    -------
    RowResiduals
        ``absolute`` ‖P⊥ b_i‖, ``relative`` ‖P⊥ b_i‖/‖b_i‖ (0 for b_i = 0),
        ``per_sqrt_p`` ‖P⊥ b_i‖/√p, ``norms`` ‖b_i‖, and the rank used.
    """
    if basis is None:
        if A is None:
            raise ValueError("row_residuals needs A or a precomputed basis")
        A = check_matrix(A, "A")
        basis = row_basis(A, rtol=rtol, atol=atol, method=method)
    B0 = check_matrix(B, "B")
    xp = array_namespace(B0, basis.basis)
    Q = xp.asarray(basis.basis, dtype=np.float64)
    B = xp.asarray(B0, dtype=np.float64)
    if Q.shape[1] != B.shape[1]:
        raise ValueError(f"B has {B.shape[1]} columns but the reference span lives in R^{Q.shape[1]}")
    R = _project_out(B, Q)
    absolute = xp.linalg.norm(R, axis=1)
    norms = xp.linalg.norm(B, axis=1)
    relative = xp.where(norms > 0, absolute / xp.where(norms > 0, norms, 1.0), 0.0)
    return RowResiduals(absolute, relative, absolute / np.sqrt(B.shape[1]), norms, int(Q.shape[0]))


def principal_angles(A, B, *, rtol=None, atol=0.0):
    """Principal angles (radians, descending) between rowspan(A) and rowspan(B).

    A ∈ R^{m×p}, B ∈ R^{k×p}.  Equals ``scipy.linalg.subspace_angles(A.T, B.T)``
    up to rounding (see the module docstring for the small-angle accuracy).
    Returns min(rank A, rank B) angles in [0, π/2] as an array of A's kind.
    """
    A = check_matrix(A, "A")
    B = check_matrix(B, "B")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A and B must have the same number of columns (p), got {A.shape[1]} and {B.shape[1]}")
    xp = array_namespace(A, B)
    QA = xp.asarray(row_basis(A, rtol=rtol, atol=atol).basis)
    QB = xp.asarray(row_basis(B, rtol=rtol, atol=atol).basis)
    kmin = min(QA.shape[0], QB.shape[0])
    if kmin == 0:
        return xp.zeros(0, dtype=np.float64)
    C = QA @ QB.T  # (rA, rB): cosines are its singular values
    cos = xp.clip(xp.linalg.svd(C, compute_uv=False), -1.0, 1.0)  # descending
    if QA.shape[0] >= QB.shape[0]:
        D = QB - C.T @ QA  # rows of QB minus their projection on rowspan(QA)
    else:
        D = QA - C @ QB
    sin = xp.clip(xp.linalg.svd(D, compute_uv=False)[:kmin], -1.0, 1.0)  # descending
    cos_asc = cos[::-1][:kmin]  # i-th largest angle ↔ i-th smallest cosine ↔ i-th largest sine
    small = sin * sin <= 0.5
    return xp.where(small, xp.arcsin(sin), xp.arccos(cos_asc))


def span_distance(A, B, *, rtol=None, atol=0.0) -> float:
    """sin of the largest principal angle, ‖P_A − P_B‖₂ for equal ranks (0 = same span)."""
    ang = principal_angles(A, B, rtol=rtol, atol=atol)
    xp = array_namespace(ang)
    return float(xp.sin(ang[0])) if ang.size else 0.0
