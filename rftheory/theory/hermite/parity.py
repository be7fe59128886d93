r"""Hermite parities of σ and the sign-ambiguity verdict: :func:`parity_report`.

μ_0 and μ_1 are the coordinates of σ on span{1, z}; their contribution to
the features lies in col([1, V]).  What decides the sign symmetry is which
*nonlinear* parities are present: even k ≥ 2 and odd k ≥ 3.  The four
verdict words are the module constants below; see :class:`ParityReport`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .coefficients import hermite_coefficients
from .expansion import HermiteExpansion
from .polynomials import check_order

__all__ = [
    "ParityReport",
    "parity_report",
    "SIGN_SYMMETRIC",
    "AMBIGUOUS_AFFINE",
    "IDENTIFIABLE",
    "DEGENERATE_AFFINE",
]

SIGN_SYMMETRIC = "exact per-sample sign symmetry"
AMBIGUOUS_AFFINE = "ambiguous modulo col([1, V])"
IDENTIFIABLE = "identifiable"
DEGENERATE_AFFINE = "degenerate (affine σ)"


@dataclass(frozen=True)
class ParityReport:
    """Which nonlinear Hermite parities σ has, and the sign-ambiguity prediction.

    ``even_nonzero``: the even k ≥ 2 with |μ_k| > tol + error_bound_k;
    ``odd_nonzero``: the odd k ≥ 3 likewise (up to ``order``).  μ_0 and μ_1
    are reported separately: their part of σ, μ_0 + μ_1 z, puts the features'
    component in col([1, V]).  ``prediction`` is one of

    * ``SIGN_SYMMETRIC`` — "exact per-sample sign symmetry": σ is purely even
      (no odd k ≥ 1, e.g. abs) or purely odd (no even k, μ_0 = 0, e.g. tanh,
      erf): σ(−z) = ±σ(z), so φ(−x) = ±φ(x) and flipping any sample leaves
      span{φ(x_i)} unchanged.
    * ``AMBIGUOUS_AFFINE`` — "ambiguous modulo col([1, V])": only one
      nonlinear parity, but the other parity's affine coefficient (μ_1 for
      an even nonlinear part, μ_0 for an odd one) is non-zero, so
      σ(−z) = ±σ(z) + (a + b z) and φ(−x) = ±φ(x) + (a·1 + b·Vx) ∈
      ±φ(x) + col([1, V]).  E.g. relu (relu(z) − relu(−z) = z), leaky_relu
      (even part (1−a)/2·|z|), gelu, silu, softplus, and sigmoid / step
      (σ(−z) = 2μ_0 − σ(z): the constant lies in col([1, V]) too).  The
      sign is nearly invisible when p ≫ d.
    * ``IDENTIFIABLE`` — some even k ≥ 2 and some odd k ≥ 3 (relu + tanh).
    * ``DEGENERATE_AFFINE`` — no nonlinear coefficient at all: σ is affine
      and every feature lies in col([1, V]).

    All statements are about orders ≤ ``order`` and the tolerance ``tol``.
    """

    activation: str
    order: int
    tol: float
    even_nonzero: tuple
    odd_nonzero: tuple
    mu0_nonzero: bool
    mu1_nonzero: bool
    prediction: str
    explanation: str

    @property
    def has_even(self) -> bool:
        return len(self.even_nonzero) > 0

    @property
    def has_odd(self) -> bool:
        return len(self.odd_nonzero) > 0


def parity_report(activation, order: int = 20, tol: float = 1e-10, **kwargs) -> ParityReport:
    """Which nonlinear Hermite parities σ has, and the sign-ambiguity prediction.

    A coefficient counts as non-zero when |μ_k| > tol + error_bound_k.
    ``activation`` may also be a :class:`HermiteExpansion` (then ``order``
    is capped at its order and ``kwargs`` are ignored); other ``kwargs`` go to
    :func:`hermite_coefficients`.  See :class:`ParityReport` for the
    predictions and how μ_0, μ_1 (the part in col([1, V])) are treated.
    """
    if not (isinstance(tol, (int, float, np.floating)) and tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    if isinstance(activation, HermiteExpansion):
        exp = activation.truncate(min(check_order(order), activation.order))
    else:
        exp = hermite_coefficients(activation, order, **kwargs)
    K = exp.order
    nz = np.abs(exp.coefficients) > tol + exp.error_bounds
    even = tuple(k for k in range(2, K + 1, 2) if nz[k])
    odd = tuple(k for k in range(3, K + 1, 2) if nz[k])
    mu0 = bool(nz[0]) if K >= 0 else False
    mu1 = bool(nz[1]) if K >= 1 else False
    upto = f"(coefficients up to order {K}, tol {tol:g})"
    if even and odd:
        pred = IDENTIFIABLE
        why = (
            f"non-zero even (k={even[0]}) and odd (k={odd[0]}) coefficients of order ≥ 2/3: "
            "σ(−z) is not ±σ(z) modulo affine functions, so sample signs are identifiable "
        )
    elif even:
        if mu1:
            pred = AMBIGUOUS_AFFINE
            why = (
                "odd part is linear (all odd μ_k with k ≥ 3 vanish, μ_1 ≠ 0): σ(z) − σ(−z) = 2μ_1 z, "
                "so φ(−x) = φ(x) − 2μ_1·Vx: a sign flip is invisible modulo col([1, V]) "
            )
        else:
            pred = SIGN_SYMMETRIC
            why = "σ is even (no odd coefficient): φ(−x) = φ(x), a per-sample sign flip is an exact symmetry "
    elif odd:
        if mu0:
            pred = AMBIGUOUS_AFFINE
            why = (
                "σ is odd plus a constant (even μ_k with k ≥ 2 vanish, μ_0 ≠ 0): σ(−z) = 2μ_0 − σ(z), "
                "so φ(−x) = 2μ_0·1 − φ(x): a sign flip is exact modulo the constant direction in col([1, V]) "
            )
        else:
            pred = SIGN_SYMMETRIC
            why = "σ is odd (no even coefficient): φ(−x) = −φ(x), a per-sample sign flip is an exact symmetry "
    else:
        pred = DEGENERATE_AFFINE
        why = "σ is affine (no coefficient of order ≥ 2): every feature lies in col([1, V]) "
    return ParityReport(
        activation=exp.activation,
        order=K,
        tol=float(tol),
        even_nonzero=even,
        odd_nonzero=odd,
        mu0_nonzero=mu0,
        mu1_nonzero=mu1,
        prediction=pred,
        explanation=why + upto,
    )
