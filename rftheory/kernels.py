"""Numba CPU kernels with NumPy fallbacks: fused σ, σ' and row retraction.

Each kernel computes, in one parallel pass over Z (n×p, C-contiguous NumPy
float32/float64), what the NumPy path computes in several:

    F = σ(Z),  D = σ'(Z)                    (relu, relu+tanh)
    x_i ← √d · x_i / ‖x_i‖                   (retraction on the √d-sphere)

They are used only where ``benchmarks/bench_kernels.py`` measured them
faster than NumPy on this package's reference machine (see
``NUMBA_DEFAULT``); set ``RFTHEORY_NUMBA=1`` to force them on, ``0`` to force
them off.  Without Numba (or for CuPy arrays, other activations, or
non-contiguous input) the NumPy expressions are used, with identical
results up to rounding.
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["numba_available", "fused_value_and_derivative", "retract_rows", "NUMBA_DEFAULT"]

try:  # pragma: no cover - exercised whenever numba is installed
    from numba import njit, prange

    _HAVE_NUMBA = True
except Exception:  # pragma: no cover
    _HAVE_NUMBA = False

# Which kernels are on by default (set from benchmarks/bench_kernels.py).
NUMBA_DEFAULT = {"relu": False, "relu+tanh": False, "retract": False}


def numba_available() -> bool:
    return _HAVE_NUMBA


def _enabled(kind: str) -> bool:
    if not _HAVE_NUMBA:
        return False
    flag = os.environ.get("RFTHEORY_NUMBA", "auto").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return NUMBA_DEFAULT.get(kind, False)


if _HAVE_NUMBA:

    @njit(parallel=True, cache=True)
    def _relu_vd_kernel(Z, F, D):  # pragma: no cover - compiled
        n, p = Z.shape
        for i in prange(n):
            for j in range(p):
                z = Z[i, j]
                if z > 0:
                    F[i, j] = z
                    D[i, j] = 1
                else:
                    F[i, j] = 0
                    D[i, j] = 0

    @njit(parallel=True, cache=True)
    def _relu_tanh_vd_kernel(Z, F, D):  # pragma: no cover - compiled
        n, p = Z.shape
        for i in prange(n):
            for j in range(p):
                z = Z[i, j]
                t = math.tanh(z)
                if z > 0:
                    F[i, j] = z + t
                    D[i, j] = 2 - t * t
                else:
                    F[i, j] = t
                    D[i, j] = 1 - t * t

    @njit(parallel=True, cache=True)
    def _retract_kernel(X, radius):  # pragma: no cover - compiled
        n, d = X.shape
        out = np.empty_like(X)
        for i in prange(n):
            s = 0.0
            for j in range(d):
                s += X[i, j] * X[i, j]
            scale = radius / max(math.sqrt(s), 1e-300)
            for j in range(d):
                out[i, j] = X[i, j] * scale
        return out


_KERNELS = {"relu": "_relu_vd_kernel", "relu+tanh": "_relu_tanh_vd_kernel"}


def _numba_ok(Z) -> bool:
    return isinstance(Z, np.ndarray) and Z.ndim == 2 and Z.dtype in (np.float32, np.float64) and Z.flags.c_contiguous


def fused_value_and_derivative(activation, Z, force: bool | None = None):
    """(σ(Z), σ'(Z)) for an :class:`~rftheory.activations.Activation`.

    Uses the Numba kernel for ``activation.name`` when one exists and is
    enabled (``force`` overrides the default/environment choice), else
    ``activation.value_and_derivative``.
    """
    name = activation.name
    use = (_enabled(name) if force is None else (force and _HAVE_NUMBA)) and name in _KERNELS and _numba_ok(Z)
    if not use:
        return activation.value_and_derivative(Z)
    F = np.empty_like(Z)
    D = np.empty_like(Z)
    globals()[_KERNELS[name]](Z, F, D)
    return F, D


def retract_rows(X, radius: float, force: bool | None = None):
    """x_i ← radius·x_i/‖x_i‖ for every row (Numba for contiguous NumPy input when enabled)."""
    use = (_enabled("retract") if force is None else (force and _HAVE_NUMBA)) and _numba_ok(X)
    if use:
        return _retract_kernel(X, float(radius))
    from .backend import array_namespace  # noqa: PLC0415

    xp = array_namespace(X)
    norms = xp.linalg.norm(X, axis=1, keepdims=True)
    return X * (radius / xp.maximum(norms, 1e-300))
