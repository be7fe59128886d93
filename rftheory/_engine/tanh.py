"""σ = a·relu + b·tanh in float32: the rational tanh shared by every compiled kernel.

tanh(x) ≈ x·P(x²)/Q(x²) on |x| ≤ TANH_CLAMP, clamped beyond (where tanh = ±1
in float32): the minimax approximation of Eigen's generic_fast_tanh_float.
It vectorises (no libm call); its max |error| against float64 tanh is below
1e-6 (tests/engine/test_kernels.py checks it).  The constants feed both the
scalar formula :func:`relu_tanh_f32` (the fused σ/σ' kernel of
:mod:`rftheory._engine.kernels`) and the vector IR of pass 1 of the panel
loss (:func:`rftheory._engine.panel._make_sigma_row`).
"""
from __future__ import annotations

import numpy as np

from ..backend import numba_available

__all__ = ["TANH_P", "TANH_Q", "TANH_CLAMP", "relu_tanh_f32"]

# numerator x·(p₁ + p₃x² + … + p₁₃x¹²) and denominator q₀ + q₂x² + q₄x⁴ + q₆x⁶ of the rational tanh
TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
          -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
TANH_CLAMP = 7.90531110763549805  # |x| beyond which the float32 tanh is ±1

if numba_available():  # pragma: no cover - exercised whenever numba is installed
    from numba import njit

    _a1, _a3, _a5, _a7, _a9, _a11, _a13 = (np.float32(c) for c in TANH_P)
    _b0, _b2, _b4, _b6 = (np.float32(c) for c in TANH_Q)
    _lim, _zero32, _one32 = np.float32(TANH_CLAMP), np.float32(0), np.float32(1)

    @njit(fastmath=True, error_model="numpy", inline="always")
    def relu_tanh_f32(z, a, b):  # pragma: no cover - compiled
        """(a·relu(z) + b·tanh(z), a·1[z>0] + b·(1 − tanh²z)) for one float32 z (rational tanh)."""
        x = min(max(z, -_lim), _lim)
        x2 = x * x
        p = x * (_a1 + x2 * (_a3 + x2 * (_a5 + x2 * (_a7 + x2 * (_a9 + x2 * (_a11 + x2 * _a13))))))
        q = _b0 + x2 * (_b2 + x2 * (_b4 + x2 * _b6))
        t = p / q
        step = _one32 if z > _zero32 else _zero32
        return a * max(z, _zero32) + b * t, a * step + b * (_one32 - t * t)
