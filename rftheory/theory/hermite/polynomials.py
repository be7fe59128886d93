r"""Hermite polynomials and the constants the other modules share.

``He_k`` are the probabilists' Hermite polynomials (He_0 = 1, He_1 = x,
He_{k+1} = x He_k − k He_{k−1}) and ``h_k = He_k / √(k!)`` the orthonormal
ones: E[h_j(g) h_k(g)] = δ_jk for g ~ N(0, 1).  :func:`orthonormal_hermite`
evaluates h_0..h_K by the stable recurrence
h_{k+1} = (x h_k − √k h_{k−1})/√(k+1).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import array_namespace
from ...validation import check_count

__all__ = ["orthonormal_hermite", "check_order", "EPS", "INV_SQRT2PI"]

EPS = float(np.finfo(np.float64).eps)  # float64 unit roundoff: the rounding part of every stated error bound
INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)  # normalisation of the standard normal density φ


def check_order(order) -> int:
    """The expansion order K as an int ≥ 0 (ValueError otherwise)."""
    return check_count(order, "order", minimum=0)


def orthonormal_hermite(x, order: int):
    """h_0(x)..h_K(x) (h_k = He_k/√k!) stacked on a new last axis.

    Stable three-term recurrence h_{k+1} = (x h_k − √k h_{k−1})/√(k+1).
    Works on NumPy and CuPy arrays.
    """
    K = check_order(order)
    xp = array_namespace(x)
    x = xp.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    out = xp.empty(tuple(x.shape) + (K + 1,), dtype=x.dtype)
    out[..., 0] = 1.0
    if K >= 1:
        out[..., 1] = x
    for k in range(1, K):
        out[..., k + 1] = (x * out[..., k] - math.sqrt(k) * out[..., k - 1]) / math.sqrt(k + 1)
    return out
