"""Numba CPU kernels with a NumPy fallback: σ and σ' fused in one pass, and the
small per-iteration steps of the attack's optimiser.

Each activation kernel computes, in one serial, vectorised pass over Z (n×p,
C-contiguous NumPy float32/float64), what the NumPy path computes in several:

    F = σ(Z),  D = σ'(Z)       for σ = a·relu + b·tanh (relu, tanh, relu+tanh, ...)

The scalar formula (``relu_tanh_f32``) is shared with the fused panel loss
(:mod:`rftheory._engine.panel_loss`), which applies it to cache-resident chunks of
X̂Vᵀ right after its packed-panel products (:mod:`rftheory._engine.panel`).

The row kernels ("rows": tangent projection, retraction, a step retracted
to the sphere, the L-BFGS direction with its slope and step cap, the
curvature pair) each replace several NumPy calls on the n̂×d iterate by one
compiled pass.  They matter inside the attack: every evaluation streams V
through the caches, after which each Python/NumPy call costs 10–20 µs
(measured), so an iteration's handful of small steps cost as much as a
tenth of its evaluation.

These kernels are serial; the panel loss runs its pieces on as many threads as
BLAS may use (threadpoolctl's limit), so sweeps that pin BLAS to one thread
per process pin it too (oversubscribed threads were measured 30× slower under
load).

Kernels are used only where ``benchmarks/bench_kernels.py`` measured them
faster than NumPy on this package's reference machine (see
``NUMBA_DEFAULT``: "relu_tanh" for this kernel, "panel" for the panel loss);
set ``RFTHEORY_NUMBA=1`` to force them on, ``0`` to force them off.  Without
Numba (or for CuPy arrays, other activations, or non-contiguous input) the
NumPy/BLAS expressions are used, with identical results up to rounding.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["numba_available", "numba_enabled", "sum_of_squares", "rows_kernel_applies", "tangent_rows",
           "retract_rows", "step_rows", "two_loop_recursion", "CurvatureRing", "curvature_ring", "ring_order",
           "remember_pair", "lbfgs_advance", "fused_value_and_derivative", "kernel_coefficients",
           "relu_tanh_coefficients", "NUMBA_DEFAULT"]

from ..backend import NUMBA_DEFAULT, numba_available, numba_enabled

if numba_available():  # pragma: no cover - exercised whenever numba is installed
    from numba import njit
_HAVE_NUMBA = numba_available()


# float32 tanh: the rational minimax approximation of Eigen's generic_fast_tanh_float,
# x·P(x²)/Q(x²) on |x| ≤ 7.905 (clamped beyond, where tanh = ±1 in float32).  It
# vectorises (no libm call); measured max |error| vs float64 tanh: 6.6e-7
# (tests/test_kernels.py checks ≤ 1e-6).
_TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
           -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
_TANH_CLAMP = 7.90531110763549805

if _HAVE_NUMBA:
    _a1, _a3, _a5, _a7, _a9, _a11, _a13 = (np.float32(c) for c in _TANH_P)
    _b0, _b2, _b4, _b6 = (np.float32(c) for c in _TANH_Q)
    _lim, _zero32, _one32 = np.float32(_TANH_CLAMP), np.float32(0), np.float32(1)

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


if _HAVE_NUMBA:
    @njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
    def _tangent_rows(X, G, out):  # pragma: no cover - compiled
        for i in range(X.shape[0]):
            gx = 0.0
            xx = 0.0
            for k in range(X.shape[1]):
                gx += np.float64(G[i, k]) * X[i, k]
                xx += np.float64(X[i, k]) * X[i, k]
            c = gx / xx
            for k in range(X.shape[1]):
                out[i, k] = G[i, k] - c * X[i, k]

    @njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
    def _step_rows(X, t, Dir, radius, out):  # pragma: no cover - compiled
        for i in range(X.shape[0]):
            xx = 0.0
            for k in range(X.shape[1]):
                z = np.float64(X[i, k]) + t * np.float64(Dir[i, k])
                xx += z * z
            scale = radius / max(np.sqrt(xx), 1e-300)
            for k in range(X.shape[1]):
                out[i, k] = (np.float64(X[i, k]) + t * np.float64(Dir[i, k])) * scale

    @njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
    def _lbfgs_direction(X, g, S, Y, rho, order, scale, max_move, out):  # pragma: no cover - compiled
        n, d = X.shape
        q = np.empty(g.size)
        _two_loop(S, Y, rho, order, scale, g.reshape(g.size), q)
        _tangent_rows(X, q.reshape((n, d)), out)  # H g made tangent; the direction is its negative
        slope, biggest = 0.0, 0.0
        for i in range(n):
            norm2 = 0.0
            for k in range(d):
                out[i, k] = -out[i, k]
                value = np.float64(out[i, k])
                slope += value * g[i, k]
                norm2 += value * value
            biggest = max(biggest, norm2)
        return slope, min(1.0, max_move / max(np.sqrt(biggest), 1e-300))

    @njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
    def _remember_pair(X_old, X, G_old, G, S, Y, rho, yy, state):  # pragma: no cover - compiled
        """s = X − X_old, y = G − G_old (in S's dtype) into the free slot after the newest; kept (state
        advanced, ρ = 1/⟨s, y⟩ and ⟨y, y⟩ stored, in float64 from the stored values) if
        ⟨s, y⟩ > 1e-12‖s‖‖y‖.  state = [count, newest] (CurvatureRing.state)."""
        slots = S.shape[0]
        slot = (state[1] + 1) % slots
        s, y = S[slot], Y[slot]
        n, d = X.shape
        sy, ss, yyy = 0.0, 0.0, 0.0
        for i in range(n):
            for k in range(d):
                s[i * d + k] = np.float64(X[i, k]) - X_old[i, k]
                y[i * d + k] = np.float64(G[i, k]) - G_old[i, k]
                a, c = np.float64(s[i * d + k]), np.float64(y[i * d + k])  # as stored (S, Y may be float32)
                sy += a * c
                ss += a * a
                yyy += c * c
        if sy > 1e-12 * np.sqrt(ss * yyy):
            rho[slot], yy[slot] = 1.0 / sy, yyy
            state[0], state[1] = min(state[0] + 1, slots - 1), slot

    @njit(cache=True, nogil=True, error_model="numpy")
    def _ring_order(state, slots):  # pragma: no cover - compiled
        count, newest = state[0], state[1]
        order = np.empty(count, dtype=np.int64)
        for j in range(count):
            order[j] = (newest - count + 1 + j) % slots
        return order

    @njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
    def _lbfgs_advance(X_old, X, G_old, G, remember, S, Y, rho, yy, state, max_move, radius,
                       direction, trial):  # pragma: no cover - compiled
        if remember:
            _remember_pair(X_old, X, G_old, G, S, Y, rho, yy, state)
        if state[0] > 0:
            scale = 1.0 / (rho[state[1]] * yy[state[1]])
        else:
            gg = 0.0
            for i in range(G.shape[0]):
                for k in range(G.shape[1]):
                    gg += np.float64(G[i, k]) * G[i, k]
            scale = 1.0 / max(np.sqrt(gg), 1e-300)
        slope, t = _lbfgs_direction(X, G, S, Y, rho, _ring_order(state, S.shape[0]), scale, max_move, direction)
        _step_rows(X, t, direction, radius, trial)
        return slope, t

    @njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
    def _two_loop(S, Y, rho, order, scale, g, out):  # pragma: no cover - compiled
        q = g.astype(np.float64)
        alphas = np.empty(order.size)
        for idx in range(order.size - 1, -1, -1):
            s, y = S[order[idx]], Y[order[idx]]
            a = 0.0
            for j in range(q.size):
                a += s[j] * q[j]
            a *= rho[order[idx]]
            alphas[idx] = a
            for j in range(q.size):
                q[j] -= a * y[j]
        for j in range(q.size):
            q[j] *= scale
        for idx in range(order.size):
            s, y = S[order[idx]], Y[order[idx]]
            b = 0.0
            for j in range(q.size):
                b += y[j] * q[j]
            c = alphas[idx] - rho[order[idx]] * b
            for j in range(q.size):
                q[j] += c * s[j]
        for j in range(q.size):
            out[j] = q[j]


def rows_kernel_applies(*arrays) -> bool:
    """True if the Numba row kernels serve these arrays: NumPy float32/float64 of one dtype, "rows" kernel on."""
    dtype = getattr(arrays[0], "dtype", None)
    return (dtype in (np.float32, np.float64) and all(isinstance(a, np.ndarray) and a.dtype == dtype for a in arrays)
            and numba_enabled("rows"))


def _as_rows(A):
    return np.ascontiguousarray(A).reshape(-1, A.shape[-1])


def tangent_rows(X, G):
    """g_i − (⟨g_i, x_i⟩/‖x_i‖²) x_i for every row (last axis), sums in float64; caller checks rows_kernel_applies."""
    out = np.empty(G.shape, dtype=G.dtype)
    _tangent_rows(_as_rows(X), _as_rows(G), out.reshape(-1, G.shape[-1]))
    return out


def retract_rows(X, radius: float):
    """radius · x_i/‖x_i‖ for every row (last axis), norms in float64; caller checks rows_kernel_applies."""
    return step_rows(X, 0.0, X, radius)


def step_rows(X, t: float, direction, radius: float):
    """radius · (x_i + t d_i)/‖x_i + t d_i‖ for every row (last axis), in float64 before the final
    rounding: a step along ``direction`` retracted to the sphere; caller checks rows_kernel_applies."""
    out = np.empty(X.shape, dtype=X.dtype)
    _step_rows(_as_rows(X), float(t), _as_rows(direction), float(radius), out.reshape(-1, X.shape[-1]))
    return out


class CurvatureRing(NamedTuple):
    """Storage of L-BFGS curvature pairs in size + 1 slots (see :func:`curvature_ring`)."""

    S: np.ndarray  # (slots, entries): s of the pair in each slot
    Y: np.ndarray  # (slots, entries): y
    rho: np.ndarray  # (slots,) float64: 1/⟨s, y⟩
    yy: np.ndarray  # (slots,) float64: ⟨y, y⟩
    state: np.ndarray  # int64 [pairs stored, newest slot]


def curvature_ring(size: int, entries: int, dtype=np.float64) -> CurvatureRing:
    """Empty storage for ``size`` L-BFGS pairs of ``entries`` numbers, for :func:`lbfgs_advance`,
    with size + 1 slots: a new pair is written into the slot after the newest, free even when
    ``size`` pairs are stored, and kept only if accepted.

    S and Y hold the pairs in ``dtype`` (the iterate's: float32 halves the
    memory traffic of the two-loop recursion, which streams S and Y twice
    per iteration — 20 pairs of 20×100 are 320 KB in float32); ρ, ⟨y, y⟩
    and every sum are float64, computed from the stored values.
    """
    return CurvatureRing(np.zeros((size + 1, entries), dtype=dtype), np.zeros((size + 1, entries), dtype=dtype),
                         np.zeros(size + 1), np.zeros(size + 1), np.array([0, size], dtype=np.int64))


def ring_order(memory: CurvatureRing):
    """The slots of the stored pairs, oldest first (int64): newest − count + 1 … newest, modulo the slots."""
    return _ring_order(memory.state, memory.S.shape[0])


def remember_pair(X_old, X, G_old, G, memory) -> None:
    """Store the curvature pair s = X − X_old, y = G − G_old in ``memory`` (:func:`curvature_ring`) if
    ⟨s, y⟩ > 1e-12‖s‖‖y‖; the oldest of a full memory is dropped.  (n, d) arrays; caller checks
    rows_kernel_applies."""
    _remember_pair(X_old, X, G_old, G, *memory)


def lbfgs_advance(X_old, X, G_old, G, memory, max_move: float, radius: float):
    """One L-BFGS step's set-up on the product of spheres, in one compiled call.

    If X_old is given, first :func:`remember_pair` (X_old → X, G_old → G).
    Then, with h = H·G (:func:`two_loop_recursion` over the stored pairs,
    H₀ = γI with γ = ⟨s, y⟩/⟨y, y⟩ of the newest pair, or 1/‖G‖ without
    pairs), all in float64 until rounded to X's dtype:

        d_i = −(h_i − (⟨h_i, x_i⟩/‖x_i‖²) x_i)      (tangent part of −H G, per row)
        slope = ⟨d, G⟩,   t = min(1, max_move / max_i ‖d_i‖)
        trial_i = radius · (x_i + t d_i)/‖x_i + t d_i‖

    X, G (and X_old, G_old): (n, d) of one dtype; caller checks
    rows_kernel_applies.  Returns (d, slope, t, trial).
    """
    X, G = np.ascontiguousarray(X), np.ascontiguousarray(G)
    direction, trial = np.empty(X.shape, dtype=X.dtype), np.empty(X.shape, dtype=X.dtype)
    remember = X_old is not None
    slope, t = _lbfgs_advance(X_old if remember else X, X, G_old if remember else G, G, remember, *memory,
                              float(max_move), float(radius), direction, trial)
    return direction, slope, t, trial


def two_loop_recursion(S, Y, rho, order, scale, g):
    """The L-BFGS two-loop recursion H·g in float64 (Nocedal & Wright, Alg. 7.4).

    S, Y: (slots, N) float32 or float64 with the pairs (s_k, y_k) as rows; ``order``
    (int64) lists the slots in use from oldest to newest; ρ_k = 1/⟨y_k, s_k⟩;
    ``scale`` is H₀ = γI's γ.  Returns H·g shaped and typed like g:

        q ← g;  for k newest → oldest: a_k = ρ_k⟨s_k, q⟩, q ← q − a_k y_k
        q ← γ q;  for k oldest → newest: q ← q + (a_k − ρ_k⟨y_k, q⟩) s_k
    """
    out = np.empty(g.shape, dtype=g.dtype)
    _two_loop(S, Y, rho, order, float(scale), np.ascontiguousarray(g).reshape(-1), out.reshape(-1))
    return out


def relu_tanh_coefficients(activation):
    """(a, b) with σ = a·relu + b·tanh, or None if σ is not of that form."""
    parts = activation.parts or ((1.0, activation),)
    coef = {"relu": 0.0, "tanh": 0.0}
    for c, act in parts:
        if act.name not in coef or act.parts:
            return None
        coef[act.name] += float(c)
    return coef["relu"], coef["tanh"]


def _wide_host() -> bool:
    """Whether this host has AVX-512 as Numba sees it (the panel kernels' 16-lane width)."""
    from .panel import VECTOR  # noqa: PLC0415 - panel imports this module's constants lazily

    return VECTOR == 16


def _numba_ok(Z) -> bool:
    return isinstance(Z, np.ndarray) and Z.ndim == 2 and Z.dtype in (np.float32, np.float64) and Z.flags.c_contiguous


def kernel_coefficients(activation, Z, force: bool | None = None):
    """(a, b) if σ(Z), σ'(Z) will be computed by the Numba kernel, else None.

    The kernel serves σ = a·relu + b·tanh on C-contiguous NumPy float32/float64
    when enabled (``force`` overrides the default/environment choice).  By
    default pure tanh in float64 stays on NumPy, whose tanh is faster there,
    and so does any σ with a tanh part in float64 on an AVX-512 host, where
    NumPy's vectorised tanh wins (relu+tanh float64, one thread: NumPy 5.5 ms
    against Numba's libm tanh 7.0 ms; benchmarks/bench_kernels.py).
    """
    coef = relu_tanh_coefficients(activation) if _numba_ok(Z) else None
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
