"""Numba CPU kernels with a NumPy fallback: σ and σ' fused in one pass, and Σx².

Each activation kernel computes, in one serial, vectorised pass over Z (n×p,
C-contiguous NumPy float32/float64), what the NumPy path computes in several:

    F = σ(Z),  D = σ'(Z)       for σ = a·relu + b·tanh (relu, tanh, relu+tanh, ...)

σ states its decomposition itself (``Activation.relu_tanh``); any other σ
takes ``Activation.value_and_derivative``.  The float32 scalar formula
(:func:`rftheory._engine.tanh.relu_tanh_f32`) is the one the fused panel loss
(:mod:`rftheory._engine.panel_loss`) applies, vectorised, to cache-resident
chunks of X̂Vᵀ.

These kernels are serial.  They are used where ``benchmarks/bench_kernels.py``
finds them faster than NumPy (``NUMBA_DEFAULT``: "relu_tanh" for this kernel,
"panel" for the panel loss); set ``RFTHEORY_NUMBA=1`` to force them on, ``0``
to force them off.  Without Numba (or for CuPy arrays, other activations, or
non-contiguous input) the NumPy expressions are used, with identical results
up to rounding.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["numba_available", "numba_enabled", "sum_of_squares", "fused_value_and_derivative",
           "kernel_coefficients", "NUMBA_DEFAULT"]

from ..backend import NUMBA_DEFAULT, numba_available, numba_enabled
from .target import VECTOR

if numba_available():  # pragma: no cover - exercised whenever numba is installed
    from numba import njit
_HAVE_NUMBA = numba_available()


if _HAVE_NUMBA:
    from .tanh import relu_tanh_f32

    @njit(fastmath=True, error_model="numpy", cache=True)
    def _relu_tanh_f32_kernel(Z, F, D, a, b):  # pragma: no cover - compiled
        """F = a·relu(z) + b·tanh(z), D = a·1[z>0] + b·(1 − tanh²z), float32, one pass."""
        n = Z.size
        Zf, Ff, Df = Z.reshape(n), F.reshape(n), D.reshape(n)
        for i in range(n):
            Ff[i], Df[i] = relu_tanh_f32(Zf[i], a, b)

    @njit(error_model="numpy", cache=True)
    def _relu_tanh_f64_kernel(Z, F, D, a, b):  # pragma: no cover - compiled
        """Same in float64 with libm tanh (full precision)."""
        n = Z.size
        Zf, Ff, Df = Z.reshape(n), F.reshape(n), D.reshape(n)
        for i in range(n):
            z = Zf[i]
            t = math.tanh(z) if b != 0.0 else 0.0
            step = 1.0 if z > 0.0 else 0.0
            Ff[i] = a * max(z, 0.0) + b * t
            Df[i] = a * step + b * (1.0 - t * t)


if _HAVE_NUMBA:
    @njit(fastmath=True, nogil=True, cache=True)
    def _sum_of_squares(x):  # pragma: no cover - compiled
        s = 0.0
        for i in range(x.size):
            s += x[i] * x[i]
        return s


def sum_of_squares(x) -> float:
    """Σ x² over all entries: compiled, without a temporary, for a 1-D float64 NumPy array; else (x·x).sum().

    Not BLAS: a threaded ddot would leave OpenBLAS threads spinning beside
    the panel kernels' threads.
    """
    if _HAVE_NUMBA and isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype == np.float64:
        return float(_sum_of_squares(x))
    return float((x * x).sum())


def _wide_host() -> bool:
    """Whether this host has AVX-512 as Numba sees it (the panel kernels' 16-lane width)."""
    return VECTOR == 16


def _numba_ok(Z) -> bool:
    return isinstance(Z, np.ndarray) and Z.ndim == 2 and Z.dtype in (np.float32, np.float64) and Z.flags.c_contiguous


def kernel_coefficients(activation, Z, force: bool | None = None):
    """(a, b) if σ(Z), σ'(Z) will be computed by the Numba kernel, else None.

    The kernel serves σ = a·relu + b·tanh (``activation.relu_tanh``) on
    C-contiguous NumPy float32/float64 when enabled (``force`` overrides the
    default/environment choice).  By default pure tanh in float64 stays on
    NumPy, whose tanh is faster there, and so does any σ with a tanh part in
    float64 on an AVX-512 host, where NumPy's vectorised tanh beats the
    kernel's libm tanh (benchmarks/bench_kernels.py compares them).
    """
    coef = getattr(activation, "relu_tanh", None) if _numba_ok(Z) else None
    if coef is None:
        return None
    if force is None:
        if Z.dtype == np.float64 and (coef[0] == 0.0 or (coef[1] != 0.0 and _wide_host())):
            return None
        return coef if numba_enabled("relu_tanh") else None
    return coef if (force and _HAVE_NUMBA) else None


def fused_value_and_derivative(activation, Z, force: bool | None = None):
    """(σ(Z), σ'(Z)) for an :class:`~rftheory.models.activations.Activation`: the one-pass
    Numba kernel where :func:`kernel_coefficients` says so, else
    ``activation.value_and_derivative``."""
    coef = kernel_coefficients(activation, Z, force)
    if coef is None:
        return activation.value_and_derivative(Z)
    F = np.empty_like(Z)
    D = np.empty_like(Z)
    kernel = _relu_tanh_f32_kernel if Z.dtype == np.float32 else _relu_tanh_f64_kernel
    kernel(Z, F, D, Z.dtype.type(coef[0]), Z.dtype.type(coef[1]))
    return F, D
