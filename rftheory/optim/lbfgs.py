"""One Riemannian L-BFGS on products of spheres, for R independent runs that share each evaluation.

Problem: minimise f_k(X_k) for k = 1..R, every X_k an (n, d) array whose rows
lie on the sphere of radius ρ = √d (:mod:`rftheory.optim.sphere`), optionally
inside a feasible set given by a constraint hook (below).  The runs share one
objective call per evaluation: ``fun(Xs)`` receives the stack (k, n, d) of
the runs still searching and returns their values (k,) and gradients
(k, n, d).  R = 1 is the single-run case.

Per run and iteration (the same rules for every caller):

* gradient  g = P_X(G), the tangent part of the Euclidean gradient (skipped when
  ``fun`` already returns it, ``gradient="riemannian"``); with a constraint,
  the projected gradient g_p of the active-set rule below.
* direction d = −P_X(H g): H the L-BFGS inverse-Hessian estimate from the last
  ``memory`` curvature pairs s = X − X_old, y = g − g_old (two-loop recursion,
  Nocedal & Wright Alg. 7.4), H₀ = γI with γ = ⟨s, y⟩/⟨y, y⟩ of the newest
  pair, or 1/‖g‖ with no pair (then d = −g/‖g‖, steepest descent).  A pair is
  kept only if ⟨s, y⟩ > 10⁻¹²‖s‖‖y‖ (H stays positive definite).  If ⟨d, g⟩ ≥ 0
  the memory is cleared and steepest descent is used.
* step      first trial t = min(1, max_move / max_i ‖d_i‖) (no row moves farther
  than ``max_move``, default ρ/2: half the radius), trial point R(X + t d)
  (retraction); Armijo back-tracking t ← t/2, at most ``max_backtracks``
  evaluations, accepting f(X_t) ≤ f(X) + c₁·t·⟨d, g⟩ with c₁ = ``armijo``.
  With a constraint the trial point is projected on the feasible set, so the
  decrease is measured along the actual displacement instead:
  f(X_t) ≤ f(X) + c₁·min(⟨g_p, X_t − X⟩, 0) and f(X_t) ≤ f(X).
* failure   a line search that finds no step clears the memory and retries from
  steepest descent at the next iteration; if the failed direction already was
  steepest descent the run stops ("line_search").

Stopping (``LBFGSResult.stop_reason`` per run): "tol" f ≤ tol; "gradient"
‖g_p‖ ≤ grad_tol; "stalled" more than ``stall_window`` accepted steps and f fell
by less than stall_rtol·|f| over the last ``stall_window`` of them; "line_search"
as above; "not_finite" f(X0) is not finite; "callback" ``callback(k, X_k, f_k)``
returned True after an accepted step (every run stops); "peer" another run
reached tol and ``stop_all_at_tol`` is set; "max_iter" after ``max_iter``
iterations (an iteration is one direction and its line search).

Constraint hook (optional; the spherical caps of
:mod:`rftheory.theory.identifiability.search` implement it).  All methods
take stacks (k, n, d) and act row by row:

* ``project(X)``: a feasible point (rows already feasible are left as they are);
* ``boundary(X) -> (ν, on, anchors)``: for every row the unit tangent normal ν
  pointing out of the feasible set, whether the row is on the boundary, and the
  anchors that :meth:`snap` and :meth:`normal_to` need;
* ``snap(X, anchors, mask)``: put the masked rows back on their boundary;
* ``normal_to(X, anchors)``: ν at new points for the same anchors.

Active-set rule: a boundary row whose steepest descent leaves the feasible set
(⟨g_i, ν_i⟩ < 0) is *bound*: its gradient and direction lose their ν part,
and after the step it is snapped back on the same boundary.  A run's memory is
cleared when its set of bound rows changes; its pairs use y = g_p(X) − g_p(X_old)
with the bound set of the step.

Memory lives where it is cheapest: for NumPy float32/float64 iterates with the
row kernels on, in a compiled ring (:func:`rftheory.optim._compiled.lbfgs_advance`:
storing the last pair, the direction, its slope, the step cap and the first trial
point are one call); for any other array (CuPy) in a Python list with every scalar
left on the device (:meth:`_CurvatureMemory.remember`, :meth:`_CurvatureMemory.apply`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..backend import array_namespace, to_numpy
from ._compiled import curvature_ring, lbfgs_advance, remember_pair, rows_kernel_applies
from .sphere import riemannian_gradient, step_on_sphere

__all__ = ["riemannian_lbfgs", "LBFGSResult", "STOP_REASONS", "stalled"]

STOP_REASONS = ("tol", "gradient", "max_iter", "line_search", "stalled", "callback", "peer", "not_finite")
ARMIJO = 1e-4  # sufficient-decrease constant c₁ (the usual choice for quasi-Newton steps)
CURVATURE_RTOL = 1e-12  # keep a pair only if ⟨s, y⟩ > this·‖s‖‖y‖
TINY = 1e-300  # floor of a norm before dividing by it


class LBFGSResult(NamedTuple):
    """Outcome of :func:`riemannian_lbfgs`.

    X : array (R, n, d)
        Final points (same backend and dtype as X0).
    f : array (R,) float64
        Final values (host NumPy).
    iterations : array (R,) int64
        Iterations of each run (directions computed, failed line searches included).
    evaluations : int
        Calls of ``fun`` (each covers every run still searching).
    stop_reason : tuple of str
        Why each run stopped (see the module docstring).
    history : list of lists of float
        f of each run at the start and after every accepted step.
    """

    X: object
    f: object
    iterations: object
    evaluations: int
    stop_reason: tuple
    history: list


def _inner(a, b):
    """⟨a, b⟩ over all entries as a scalar of the arrays' backend (a 0-d CuPy array stays on the device)."""
    return array_namespace(a, b).vdot(a, b)


def _vdot(a, b) -> float:
    """⟨a, b⟩ as a host float."""
    return float(_inner(a, b))


def stalled(history, window: int, rtol: float, start: int = 1) -> bool:
    """More than ``window`` entries after history[:start], and f fell by less than rtol·|f| over the last ``window``."""
    return len(history) - start > window and history[-window - 1] - history[-1] < rtol * abs(history[-window - 1])


class _CurvatureMemory:
    """The last ``size`` L-BFGS curvature pairs (s, y) of one run, with ρ = 1/⟨s, y⟩ and ⟨y, y⟩ stored once.

    NumPy iterates (row kernels on): a compiled ring of size + 1 slots in the
    iterate's dtype (:func:`rftheory.optim._compiled.curvature_ring`), and
    :meth:`advance` is one compiled call.  Other backends: a list of pairs and
    the two-loop recursion in Python (:meth:`remember`, :meth:`apply`).
    """

    def __init__(self, size: int):
        self.size = size
        self.pairs = []  # list path: (s, y, ρ, ⟨y, y⟩), oldest first
        self.ring = None  # compiled path: CurvatureRing

    def _compiled(self, *arrays) -> bool:
        """Whether the ring serves these arrays (made, empty, for a new size or dtype the row kernels serve).

        The kernel switch is read when a ring is made, not on every step.
        """
        ring = self.ring
        if ring is not None and ring.S.shape[1] == arrays[0].size and all(
                isinstance(a, np.ndarray) and a.dtype == ring.S.dtype for a in arrays):
            return True
        if not rows_kernel_applies(*arrays):
            return False
        self.ring = curvature_ring(self.size, arrays[0].size, arrays[0].dtype)
        return True

    def __bool__(self) -> bool:
        return bool(self.pairs) or (self.ring is not None and bool(self.ring.state[0] > 0))

    def clear(self) -> None:
        self.pairs.clear()
        if self.ring is not None:
            self.ring.state[0] = 0

    def remember(self, X_old, X, g_old, g) -> None:
        """List path: add s = X − X_old, y = g − g_old if ⟨s, y⟩ > 10⁻¹²‖s‖‖y‖, keeping the last ``size``."""
        s_vec, y_vec = X - X_old, g - g_old
        sy, ss, yy = _inner(s_vec, y_vec), _inner(s_vec, s_vec), _inner(y_vec, y_vec)
        xp = array_namespace(s_vec)
        if bool(sy > CURVATURE_RTOL * (xp.sqrt(ss) * xp.sqrt(yy))):
            self.pairs.append((s_vec, y_vec, 1.0 / sy, yy))
            if len(self.pairs) > self.size:
                self.pairs.pop(0)

    def apply(self, g):
        """List path: H·g by the two-loop recursion, H₀ = γI (γ = ⟨s, y⟩/⟨y, y⟩ of the newest pair, or 1/‖g‖)."""
        q = g.copy()
        alphas = []
        for s, y, rho, _ in reversed(self.pairs):
            a = rho * _inner(s, q)
            alphas.append(a)
            q -= a * y
        if self.pairs:
            _, _, rho, yy = self.pairs[-1]
            q *= 1.0 / (rho * yy)
        else:
            q *= 1.0 / max(math.sqrt(_vdot(g, g)), TINY)
        for (s, y, rho, _), a in zip(self.pairs, reversed(alphas)):
            q += (a - rho * _inner(y, q)) * s
        return q

    def advance(self, pair, X, g, max_move: float, radius: float):
        """Remember ``pair`` = (X_old, g_old, g_new) of the last step (g_new None: g), then return
        (d, ⟨d, g⟩, t, R(X + t d)) with d = −P_X(H g) and t = min(1, max_move / max_i ‖d_i‖)."""
        if pair is None:
            arrays = (X, g)
        elif pair[2] is None:
            arrays = (pair[0], X, pair[1], g)
        else:
            arrays = (pair[0], X, pair[1], g, pair[2])
        if self._compiled(*arrays):
            if pair is None:
                return lbfgs_advance(None, X, None, g, self.ring, max_move, radius)
            if pair[2] is None:
                return lbfgs_advance(pair[0], X, pair[1], g, self.ring, max_move, radius)
            remember_pair(pair[0], X, pair[1], pair[2], self.ring)
            return lbfgs_advance(None, X, None, g, self.ring, max_move, radius)
        if pair is not None:
            self.remember(pair[0], X, pair[1], g if pair[2] is None else pair[2])
        direction = -riemannian_gradient(X, self.apply(g))
        t = _first_step(direction, max_move)
        return direction, _vdot(direction, g), t, step_on_sphere(X, t, direction, radius)


def _first_step(direction, max_move: float) -> float:
    """min(1, max_move / max_i ‖d_i‖)."""
    xp = array_namespace(direction)
    return min(1.0, max_move / max(float(xp.max(xp.linalg.norm(direction, axis=-1))), TINY))


class _Run:
    """State of one run: iterate, value, gradient, memory, the pending curvature pair and the history."""

    __slots__ = ("X", "f", "g", "grad", "memory", "pair", "history", "iterations", "reason", "bind", "bound", "nu",
                 "anchors", "direction", "slope", "t", "trial")

    def __init__(self, X, f, grad, memory):
        self.X, self.f, self.memory = X, f, memory
        self.grad = self.g = grad  # tangent gradient; g: the one the direction uses (projected under a constraint)
        self.pair = None  # (X_old, g_old, g_new or None) of the last accepted step, remembered by the next direction
        self.history = [f]
        self.iterations = 0
        self.reason = None
        self.bind = self.nu = self.anchors = None
        self.bound = False  # whether any row is bound (host flag of ``bind``)

    def search_direction(self, max_move, radius):
        """The L-BFGS direction, its slope, first step and trial point; steepest descent if not a descent direction."""
        pair, self.pair = self.pair, None
        d, slope, t, trial = self.memory.advance(pair, self.X, self.g, max_move, radius)
        if self.bound:
            d, slope, t = self._bound(d, max_move)
        if not slope < 0 and self.memory:
            self.memory.clear()
            d, slope, t, trial = self.memory.advance(None, self.X, self.g, max_move, radius)
            if self.bound:
                d, slope, t = self._bound(d, max_move)
        self.direction, self.slope, self.t, self.trial = d, slope, t, trial

    def _bound(self, d, max_move):
        """Drop the ν part of the bound rows' direction; the slope and first step of the result."""
        xp = array_namespace(d)
        d = d - (self.bind * xp.sum(d * self.nu, axis=-1))[..., None] * self.nu
        return d, _vdot(d, self.g), _first_step(d, max_move)


def riemannian_lbfgs(
    fun,
    X0,
    *,
    max_iter: int = 300,
    tol: float = 0.0,
    memory: int = 20,
    max_move: float | None = None,
    armijo: float = ARMIJO,
    max_backtracks: int = 40,
    stall_window: int = 10,
    stall_rtol: float = 1e-4,
    grad_tol: float = 0.0,
    gradient: str = "riemannian",
    constraint=None,
    callback=None,
    stop_all_at_tol: bool = False,
) -> LBFGSResult:
    """Minimise R objectives on products of spheres with one batched Riemannian L-BFGS.

    Parameters
    ----------
    fun : callable
        ``fun(Xs) -> (f, G)`` for a stack Xs (k, n, d) of the runs still
        searching (k ≤ R, in run order): values f (k,) and gradients G (k, n, d).
    X0 : array (R, n, d)
        Starting points, used as given (rows on the sphere of radius √d, feasible).
    max_iter, tol, memory, armijo, max_backtracks, stall_window, stall_rtol, grad_tol
        See the module docstring (grad_tol 0: no gradient test).
    max_move : float, optional
        Largest row displacement of a first trial step (default √d/2).
    gradient : "riemannian" or "euclidean"
        What ``fun`` returns: the tangent gradient, or the Euclidean one (then projected here).
    constraint : optional
        The constraint hook of the module docstring; None: the whole product of spheres.
    callback : callable, optional
        ``callback(k, X_k, f_k)`` after every accepted step of run k; True stops every run.
    stop_all_at_tol : bool
        Stop every run once one reaches f ≤ tol (the others with reason "peer").
    """
    if gradient not in ("riemannian", "euclidean"):
        raise ValueError(f"gradient must be 'riemannian' or 'euclidean', got {gradient!r}")
    if X0.ndim != 3:
        raise ValueError(f"X0 must have shape (R, n, d), got {tuple(X0.shape)}")
    xp = array_namespace(X0)
    R, _, d = X0.shape
    radius = math.sqrt(d)
    max_move = 0.5 * radius if max_move is None else float(max_move)  # half the radius: a step never flips a row
    euclidean = gradient == "euclidean"
    f0, G0 = fun(X0)
    if euclidean:
        G0 = riemannian_gradient(X0, G0)
    evaluations = 1
    runs = [_Run(X0[k], float(f0[k]), G0[k], _CurvatureMemory(memory)) for k in range(R)]
    for run in runs:
        if not math.isfinite(run.f):
            run.reason = "not_finite"
        elif run.f <= tol:
            run.reason = "tol"
    active = [k for k in range(R) if runs[k].reason is None]
    if stop_all_at_tol and len(active) < R and any(r.reason == "tol" for r in runs):
        for k in active:
            runs[k].reason = "peer"
        active = []
    it = 0
    backtracks = range(int(max_backtracks))
    while active:
        if constraint is not None:
            _bind(runs, active, constraint, xp)
        if grad_tol > 0:
            for k in active:
                if math.sqrt(max(_vdot(runs[k].g, runs[k].g), 0.0)) <= grad_tol:
                    runs[k].reason = "gradient"
            active = [k for k in active if runs[k].reason is None]
            if not active:
                break
        if it >= max_iter:
            for k in active:
                runs[k].reason = "max_iter"
            break
        it += 1
        for k in active:
            runs[k].iterations += 1
            runs[k].search_direction(max_move, radius)
        accepted = {}
        searching = list(active)
        for _ in backtracks:
            if not searching:
                break
            if constraint is None:
                trial = runs[searching[0]].trial[None] if len(searching) == 1 else xp.stack(
                    [runs[k].trial for k in searching])
            else:
                trial = _feasible_trials(runs, searching, constraint, radius, xp)
            f_t, G_t = fun(trial)
            if euclidean:
                G_t = riemannian_gradient(trial, G_t)
            evaluations += 1
            still = []
            for j, k in enumerate(searching):
                run = runs[k]
                value = float(f_t[j])
                if constraint is None:
                    ok = value <= run.f + armijo * run.t * run.slope
                else:
                    ok = value <= run.f + armijo * min(_vdot(run.g, trial[j] - run.X), 0.0) and value <= run.f
                if ok:
                    accepted[k] = (trial[j], value, G_t[j])
                else:
                    run.t *= 0.5
                    if constraint is None:
                        run.trial = step_on_sphere(run.X, run.t, run.direction, radius)
                    still.append(k)
            searching = still
        stop_all = False
        g_pairs = _pair_gradients(runs, accepted, constraint, xp) if constraint is not None and accepted else None
        for k in active:
            run = runs[k]
            if k not in accepted:
                if run.memory:  # retry from steepest descent
                    run.memory.clear()
                else:
                    run.reason = "line_search"
                continue
            X_new, f_new, g_new = accepted[k]
            run.pair = (run.X, run.g, None if g_pairs is None else g_pairs[k])
            run.X, run.f, run.g, run.grad = X_new, f_new, g_new, g_new
            run.history.append(f_new)
            if callback is not None and not stop_all and callback(k, X_new, f_new):
                run.reason = "callback"
                stop_all = True
            elif f_new <= tol:
                run.reason = "tol"
            elif stalled(run.history, stall_window, stall_rtol):
                run.reason = "stalled"
        if stop_all:
            for k in active:
                if runs[k].reason is None:
                    runs[k].reason = "callback"
        elif stop_all_at_tol and any(runs[k].reason == "tol" for k in active):
            for k in active:
                if runs[k].reason is None:
                    runs[k].reason = "peer"
        active = [k for k in active if runs[k].reason is None]
    X = runs[0].X[None] if R == 1 else xp.stack([run.X for run in runs])
    return LBFGSResult(X, np.array([run.f for run in runs], dtype=np.float64),
                       np.array([run.iterations for run in runs], dtype=np.int64), evaluations,
                       tuple(run.reason for run in runs), [run.history for run in runs])


def _bind(runs, active, constraint, xp):
    """Active-set rule at the current points: bound rows, their normals and the projected gradients."""
    X = xp.stack([runs[k].X for k in active])
    g = xp.stack([runs[k].grad for k in active])
    nu, on, anchors = constraint.boundary(X)
    gnu = xp.sum(g * nu, axis=-1)
    bind = on & (gnu < 0)  # −g points out of the feasible set
    gp = g - (bind * gnu)[..., None] * nu
    bound = to_numpy(xp.any(bind, axis=-1))
    if runs[active[0]].bind is not None:
        changed = to_numpy(xp.any(bind != xp.stack([runs[k].bind for k in active]), axis=-1))
    for j, k in enumerate(active):
        run = runs[k]
        if run.bind is not None and changed[j]:
            run.memory.clear()
            run.pair = None
        run.bind, run.bound, run.nu, run.anchors, run.g = bind[j], bool(bound[j]), nu[j], anchors[j], gp[j]


def _pair_gradients(runs, accepted, constraint, xp):
    """g_p at each accepted point with the bound set of the step and the normals there (the y of the pair)."""
    keys = list(accepted)
    X = xp.stack([accepted[k][0] for k in keys])
    g = xp.stack([accepted[k][2] for k in keys])
    bind = xp.stack([runs[k].bind for k in keys])
    nu = constraint.normal_to(X, xp.stack([runs[k].anchors for k in keys]))
    gp = g - (bind * xp.sum(g * nu, axis=-1))[..., None] * nu
    return {k: gp[j] for j, k in enumerate(keys)}


def _feasible_trials(runs, searching, constraint, radius, xp):
    """R(X + t d) of every searching run, its bound rows snapped back on their boundary, then projected."""
    Xt = xp.stack([step_on_sphere(runs[k].X, runs[k].t, runs[k].direction, radius) for k in searching])
    anchors = xp.stack([runs[k].anchors for k in searching])
    bind = xp.stack([runs[k].bind for k in searching])
    return constraint.project(constraint.snap(Xt, anchors, bind))
