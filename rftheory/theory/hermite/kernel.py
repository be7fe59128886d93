r"""The limiting random-features kernel K∞ = Σ_k μ_k² (XXᵀ/d)^{∘k}.

For rows on the √d-sphere (‖x_i‖ = √d) and V with i.i.d. N(0, 1/d)
entries, the pre-activations (⟨v, x_i⟩, ⟨v, x_j⟩) are standard normal with
correlation ρ_ij = ⟨x_i, x_j⟩/d, and Mehler's formula
E[h_k(u) h_l(w)] = δ_kl ρ^k gives

    K∞ = E_V[Φ Φᵀ]/p = Σ_k μ_k² (X Xᵀ/d)^{∘k}       (∘k: entrywise power),

exactly for every d (not only as d → ∞).  Truncating at order K leaves an
entrywise error of at most Σ_{k>K} μ_k² = E[σ²] − Σ_{k≤K} μ_k², because
|ρ_ij| ≤ 1.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...backend import array_namespace
from .coefficients import hermite_coefficients

__all__ = ["KernelLimit", "kernel_limit"]


class KernelLimit(NamedTuple):
    """``(kernel, error_bound)``: K∞ truncated at order K, and an entrywise bound
    on |K∞ − kernel| (truncation plus stated coefficient errors)."""

    kernel: object
    error_bound: float


def kernel_limit(X, activation="relu+tanh", order: int = 20, *, Y=None, check_sphere: bool = True, sphere_rtol: float = 1e-5, **kwargs) -> KernelLimit:
    """Limiting random-features kernel K∞ = E_V[ΦΦᵀ]/p, truncated at ``order``.

        K∞ = Σ_k μ_k² (X Yᵀ/d)^{∘k}      (Y = X by default; ∘k entrywise power)

    **Rows must lie on the √d-sphere** (‖x_i‖ = √d, d = X.shape[1]): then
    for v ~ N(0, I/d) the pre-activations ⟨v, x_i⟩, ⟨v, y_j⟩ are standard
    normal with correlation ρ_ij = ⟨x_i, y_j⟩/d and Mehler's formula gives
    the series, exactly for every d.  The diagonal of K∞(X, X) is E[σ(g)²].
    Off the sphere the formula is wrong, so by default rows whose ‖x‖²/d
    differs from 1 by more than ``sphere_rtol`` raise ValueError
    (``check_sphere=False`` skips the check).

    Returns
    -------
    KernelLimit
        ``(kernel, error_bound)``: an n×m array of X's module (NumPy or
        CuPy) and dtype (float64 for integer input), and an entrywise bound
        on |K∞ − kernel|: the truncation error E[σ²] − Σ_{k≤K} μ_k² (since
        |ρ| ≤ 1) plus the stated numeric errors of the coefficients (twice
        :attr:`HermiteExpansion.truncation_error_bound`).  Extra ``kwargs``
        go to :func:`hermite_coefficients`.
    """
    from ...validation import check_matrix  # noqa: PLC0415

    X = check_matrix(X, "X")
    d = X.shape[1]
    Y = X if Y is None else check_matrix(Y, "Y", cols=d, cols_name="d (columns of X)")
    xp = array_namespace(X, Y)
    dtype = X.dtype if X.dtype.kind == "f" else np.float64
    X = xp.asarray(X, dtype=dtype)
    Y = xp.asarray(Y, dtype=dtype)
    if check_sphere:
        for name, A in (("X", X), ("Y", Y)):
            r = xp.sum(A * A, axis=1) / d
            dev = float(xp.max(xp.abs(r - 1)))
            if not dev <= sphere_rtol:
                raise ValueError(
                    f"rows of {name} must lie on the √d-sphere (‖x‖ = √d = {math.sqrt(d):.6g}) for the "
                    f"Hermite kernel formula; max |‖x‖²/d − 1| = {dev:.3g} > {sphere_rtol:g}. Rescale "
                    "rows by √d/‖x‖, or pass check_sphere=False"
                )
    exp = hermite_coefficients(activation, order, **kwargs)
    rho = xp.clip((X @ Y.T) / d, -1.0, 1.0)
    w = [float(v) for v in exp.kernel_coefficients()]
    K = xp.full(rho.shape, w[-1], dtype=dtype)
    for c in reversed(w[:-1]):  # Horner in the entrywise power
        K = K * rho + c
    bound = max(exp.truncation_error, 0.0) + 2.0 * exp.truncation_error_bound
    return KernelLimit(K, float(bound))
