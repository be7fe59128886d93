"""The optimiser's private compiled twin: Numba row kernels on the product of spheres.

Each kernel replaces several NumPy calls on an (n, d) iterate (one row per
point on the sphere of radius √d) by one serial compiled pass; sums are
accumulated in float64 and rounded to the iterate's dtype at the end:

* tangent projection   g_i − (⟨g_i, x_i⟩/‖x_i‖²) x_i              (:func:`tangent_rows`)
* retraction           ρ·x_i/‖x_i‖                                 (:func:`retract_rows`)
* retracted step       ρ·(x_i + t d_i)/‖x_i + t d_i‖                (:func:`step_rows`)
* L-BFGS set-up        store the last curvature pair, the two-loop direction, its
                       slope, the capped step and the first trial point in one call
                       (:func:`lbfgs_advance` over a :class:`CurvatureRing`)

They exist because inside the attack every evaluation streams V through the
caches, after which each small NumPy call on the iterate costs as much as a
compiled pass over all of it.  The Python list path of :mod:`rftheory.optim.lbfgs`
(``_CurvatureMemory.remember``/``apply``) computes the same quantities for
every other backend; tests/optim/test_lbfgs.py checks that the two agree to
rounding.  Callers check :func:`rows_kernel_applies` first (NumPy float32/float64
of one dtype, Numba installed and the "rows" switch of
:func:`rftheory.backend.numba_enabled` on).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import numba_available, numba_enabled

__all__ = ["rows_kernel_applies", "tangent_rows", "retract_rows", "step_rows", "two_loop_recursion",
           "CurvatureRing", "curvature_ring", "ring_order", "remember_pair", "lbfgs_advance"]

_HAVE_NUMBA = numba_available()
if _HAVE_NUMBA:  # pragma: no cover - exercised whenever numba is installed
    from numba import njit


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
    per iteration); ρ, ⟨y, y⟩ and every sum are float64, computed from the
    stored values.
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
