"""The reconstruction attack: minimise the projection loss over X̂ on the
product of √d-spheres.

Problem (DESIGN.md): given θ (or Δθ), V (through the model) and n̂, find
X̂ ∈ R^{n̂×d} with ‖x̂_i‖ = √d minimising

    L(X̂) = ‖θ − Φ̂ᵀ(Φ̂Φ̂ᵀ)⁻¹Φ̂θ‖² / ‖θ‖²,    Φ̂ = σ(X̂Vᵀ).

Optimisers (both Riemannian: the Euclidean gradient G is replaced by its
tangent part g_i = G_i − (⟨G_i, x̂_i⟩/d) x̂_i, and every step is followed by the
retraction x̂_i ← √d x̂_i/‖x̂_i‖):

* ``"lbfgs"`` (default): limited-memory BFGS (two-loop recursion, memory m)
  on the tangent gradients with an Armijo back-tracking line search starting
  at the unit step; no learning rate to tune.
* ``"momentum"``: heavy-ball projected gradient, b ← β·P(b) + g,
  X̂ ← R(X̂ − η b), with a fixed learning rate η (the original authors'
  scheme, kept for comparison).

Greedy re-seeding (this package's heuristic, attacker-side only): when an
optimiser stalls with L above the tolerance, the candidate whose removal
raises the loss least is dropped and refitted to what the other rows leave
unexplained: among M random sphere points the one whose feature, projected
off the others' row span (P⊥), best aligns with r = P⊥θ, then polished by
L-BFGS on that row alone (the loss as a function of one row).  It uses only what the attacker knows (θ, V, σ, n̂).  A
restart gives up after MAX_FRUITLESS_RESEEDS consecutive re-seeds that lower
its loss by less than 0.1 %.

Nothing here reads the true X.  L = 0 does not mean success: below
p ≈ dn many wrong X̂ reach L = 0 (see :mod:`rftheory.attack.metrics`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from threadpoolctl import threadpool_limits

from ..backend import array_namespace
from .._engine.kernels import curvature_ring, lbfgs_advance, rows_kernel_applies
from ..linalg import gram_solve
from .loss import PreparedProjectionLoss, projection_loss, retract_to_sphere, riemannian_gradient, step_on_sphere
from .._engine.panel_loss import kernel_threads, panel_model_applicable, panel_threads
from ..validation import check_count, check_finite, check_matrix, check_vector

__all__ = ["ReconstructionResult", "reconstruct", "random_sphere", "OPTIMIZERS"]

OPTIMIZERS = ("lbfgs", "momentum")
SMALL_PROBLEM_FLOPS = 2e7  # 4·n·d·p below which the attack runs single-threaded BLAS
MAX_FRUITLESS_RESEEDS = 4  # stop a restart after this many re-seeds in a row that lower L by < 0.1 %


@dataclass
class ReconstructionResult:
    """Outcome of :func:`reconstruct` (best restart, chosen by final loss).

    Attributes
    ----------
    X_hat : array (n̂, d)
        Reconstructed samples on the √d-sphere (same backend as θ).
    loss : float
        Final projection loss L(X̂) of the best restart.
    loss_history : list of float
        L after every iteration of the best restart.
    iterations : int
        Optimiser iterations of the best restart (all re-seeding rounds).
    evaluations : int
        Loss/gradient evaluations over all restarts.
    restarts : list of float
        Final loss of every restart run.
    reseeds : int
        Greedy re-seeding steps in the best restart.
    converged : bool
        Whether the best restart reached L ≤ tol.
    wall_time : float
        Seconds for the whole call.
    """

    X_hat: object
    loss: float
    loss_history: list = field(default_factory=list)
    iterations: int = 0
    evaluations: int = 0
    restarts: list = field(default_factory=list)
    reseeds: int = 0
    converged: bool = False
    wall_time: float = 0.0


def random_sphere(n: int, d: int, rng: np.random.Generator, xp=np, dtype=np.float64):
    """n points uniform on the sphere of radius √d in R^d (drawn on the host)."""
    G = rng.standard_normal((n, d))
    G *= math.sqrt(d) / np.linalg.norm(G, axis=1, keepdims=True)
    return xp.asarray(G, dtype=dtype)


class _Counter:
    """The attack's loss (Riemannian gradient), prepared once for θ and the model, counting its calls."""

    def __init__(self, theta, model, derivative, callback=None):
        self.loss = PreparedProjectionLoss(theta, model, derivative=derivative, tangent=True)
        self.evaluations = 0
        self.callback = callback  # callback(X, L) after each iteration; True stops the attack
        self.stopped = False

    def __call__(self, X, with_grad=True):
        self.evaluations += 1
        return self.loss(X, with_grad=with_grad)


def _inner(a, b):
    """⟨a, b⟩ over all entries (vdot: no temporary) as a scalar of the arrays' backend and dtype: a
    NumPy scalar, or a 0-d CuPy array that stays on the device.  The two-loop recursion makes
    ≈ 2·memory of these per iteration; as host floats each would wait for the device."""
    return array_namespace(a, b).vdot(a, b)


def _vdot(a, b) -> float:
    """⟨a, b⟩ as a host float (for CuPy one synchronisation)."""
    return float(_inner(a, b))


def _lbfgs(fun, X, max_iter, tol, memory=20, stall_window=10, stall_rtol=1e-4, history=None):
    """Riemannian L-BFGS on the product of spheres; returns (X, loss, iterations).

    Stops when L ≤ tol, after ``max_iter`` iterations, when the line search
    fails, or when L fell by less than ``stall_rtol``·L over the last
    ``stall_window`` iterations (a stall, handed to the re-seeding logic).
    """
    d = X.shape[1]
    max_move = 0.5 * math.sqrt(d)  # cap a step's largest row displacement
    res = fun(X)
    L, g = res.loss, res.grad
    curvature = _CurvatureMemory(memory)
    hist = history if history is not None else []
    hist.append(L)
    h0 = len(hist)  # stall test only over this call's own iterations
    it = 0
    X_old = g_old = None  # the last accepted step's start, remembered by the next direction
    while it < max_iter and L > tol:
        it += 1
        direction, slope, t, X_new = _search_direction(X_old, X, g_old, g, curvature, max_move)
        X_old = g_old = None
        accepted = False
        for _ in range(40):
            res_new = fun(X_new)
            if res_new.loss <= L + 1e-4 * t * slope:
                accepted = True
                break
            t *= 0.5
            X_new = step_on_sphere(X, t, direction)
        if not accepted:
            if curvature:  # drop the curvature memory and try steepest descent once more
                curvature.clear()
                continue
            break
        X_old, g_old = X, g
        X, L, g = X_new, res_new.loss, res_new.grad
        hist.append(L)
        if _should_stop(fun, X, L, hist, h0, stall_window, stall_rtol):
            break
    return X, L, it


class _CurvatureMemory:
    """The last ``size`` L-BFGS curvature pairs (s, y), with ρ = 1/⟨y, s⟩ and ⟨y, y⟩ stored once.

    For NumPy arrays (row kernels on) the pairs live in a compiled ring of
    size + 1 slots in the iterate's dtype (:func:`rftheory._engine.kernels.curvature_ring`: a new
    pair is written into the free slot and kept only if accepted), and
    remembering the last step's pair, the next direction and its first trial
    point are one compiled call (:func:`rftheory._engine.kernels.lbfgs_advance`);
    other backends keep a list of pairs and loop in Python (:meth:`remember`,
    :meth:`apply`).  Either way :meth:`advance` is the one entry point.
    """

    def __init__(self, size: int):
        self.size = size
        self.pairs = []  # other backends: (s, y, ρ, ⟨y, y⟩), oldest first
        self.ring = None  # NumPy: kernels.CurvatureRing

    def _compiled(self, *arrays) -> bool:
        """Whether the ring serves these arrays: NumPy arrays of the ring's dtype and size, or (then it is
        made, empty) of a new size or dtype the row kernels serve.  The kernel switch ("rows",
        :func:`rftheory._engine.kernels.numba_enabled`) is read when a ring is made, not on every step: after
        an evaluation has streamed V through the caches, reading it costs ≈ 30 µs (measured)."""
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
        """List path: add s = X − X_old, y = g − g_old if ⟨s, y⟩ > 1e-12‖s‖‖y‖, keeping the last ``size``.

        ρ = 1/⟨s, y⟩ and ⟨y, y⟩ are kept as scalars of the arrays' backend (:func:`_inner`): on a
        device only the acceptance test comes to the host.
        """
        s_vec, y_vec = X - X_old, g - g_old
        sy, ss, yy = _inner(s_vec, y_vec), _inner(s_vec, s_vec), _inner(y_vec, y_vec)
        xp = array_namespace(s_vec)
        if bool(sy > 1e-12 * (xp.sqrt(ss) * xp.sqrt(yy))):
            self.pairs.append((s_vec, y_vec, 1.0 / sy, yy))
            if len(self.pairs) > self.size:
                self.pairs.pop(0)

    def apply(self, g):
        """List path: H·g by the two-loop recursion (as :func:`rftheory._engine.kernels.two_loop_recursion`), with
        H₀ = γI, γ = ⟨s, y⟩/⟨y, y⟩ of the newest pair, or 1/‖g‖ without pairs.  With pairs, every
        scalar stays on the arrays' backend (no synchronisation of a device)."""
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
            q *= 1.0 / max(math.sqrt(_vdot(g, g)), 1e-300)
        for (s, y, rho, _), a in zip(self.pairs, reversed(alphas)):
            q += (a - rho * _inner(y, q)) * s
        return q

    def advance(self, X_old, X, g_old, g, max_move):
        """Remember the pair of the step X_old → X (if X_old is given), then (d, ⟨d, g⟩, t, trial):
        d = −(H g made tangent), t = min(1, max_move / max_i ‖d_i‖) (no row moves farther than
        max_move) and the first trial point R(X + t d) on the spheres."""
        radius = math.sqrt(X.shape[-1])
        arrays = (X, g) if X_old is None else (X_old, X, g_old, g)
        if self._compiled(*arrays):
            return lbfgs_advance(X_old, X, g_old, g, self.ring, max_move, radius)
        if X_old is not None:
            self.remember(X_old, X, g_old, g)
        direction = -riemannian_gradient(X, self.apply(g))
        xp = array_namespace(direction)
        t = min(1.0, max_move / max(float(xp.max(xp.linalg.norm(direction, axis=-1))), 1e-300))
        return direction, _vdot(direction, g), t, step_on_sphere(X, t, direction, radius)


def _search_direction(X_old, X, g_old, g, memory: _CurvatureMemory, max_move):
    """Remember the last step's pair, then the L-BFGS direction, its slope ⟨d, g⟩, the first trial
    step t and the trial point (see :meth:`_CurvatureMemory.advance`).

    If it is not a descent direction the memory is cleared in place and
    steepest descent (−g/‖g‖, the direction of an empty memory) is used.
    """
    direction, slope, t, trial = memory.advance(X_old, X, g_old, g, max_move)
    if not slope < 0 and memory:
        memory.clear()
        direction, slope, t, trial = memory.advance(None, X, None, g, max_move)
    return direction, slope, t, trial


def _stalled(hist, start, window, rtol) -> bool:
    """L fell by less than rtol·L over the last ``window`` entries of hist[start:]."""
    return len(hist) - start > window and hist[-window - 1] - hist[-1] < rtol * hist[-window - 1]


def _should_stop(fun, X, L, hist, start, window, rtol) -> bool:
    """After an accepted step: the user's callback asked to stop, or the run stalled."""
    if fun.callback is not None and fun.callback(X, L):
        fun.stopped = True
        return True
    return _stalled(hist, start, window, rtol)


def _lbfgs_batched(fun, X, max_iter, tol, stop_at_tol, memory=20, stall_window=10, stall_rtol=1e-4):
    """R independent Riemannian L-BFGS runs whose evaluations are batched.

    ``X`` is (R, n, d); ``fun(Xs)`` evaluates a stack (k, n, d) in one pass
    over V and returns losses (k,) and Riemannian gradients (k, n, d).  Each
    run keeps its own curvature memory, step and Armijo line search (same
    rules as :func:`_lbfgs`); a trial evaluation covers every run still
    searching.  Returns (X, losses, iterations, histories).
    """
    xp = array_namespace(X)
    R, _, d = X.shape
    max_move = 0.5 * math.sqrt(d)
    res = fun(X)
    L = [float(v) for v in res.loss]
    G = [res.grad[k] for k in range(R)]
    X = [X[k] for k in range(R)]
    curvature = [_CurvatureMemory(memory) for _ in range(R)]
    last_step = [(None, None)] * R  # (X_old, g_old) of each run's last accepted step, remembered by its next direction
    hist = [[L[k]] for k in range(R)]
    active = [L[k] > tol for k in range(R)]
    it = 0
    while it < max_iter and any(active):
        it += 1
        dirs, slopes, steps, trials = {}, {}, {}, {}
        for k in (k for k in range(R) if active[k]):
            X_old, g_old = last_step[k]
            last_step[k] = (None, None)
            dirs[k], slopes[k], steps[k], trials[k] = _search_direction(X_old, X[k], g_old, G[k], curvature[k],
                                                                         max_move)
        searching = list(dirs)
        accepted = {}
        for _ in range(40):
            if not searching:
                break
            trial = xp.stack([trials[k] for k in searching])
            out = fun(trial)
            still = []
            for j, k in enumerate(searching):
                if float(out.loss[j]) <= L[k] + 1e-4 * steps[k] * slopes[k]:
                    accepted[k] = (trial[j], float(out.loss[j]), out.grad[j])
                else:
                    steps[k] *= 0.5
                    trials[k] = step_on_sphere(X[k], steps[k], dirs[k])
                    still.append(k)
            searching = still
        for k in dirs:
            if k not in accepted:
                if curvature[k]:
                    curvature[k].clear()
                else:
                    active[k] = False
                continue
            X_new, L_new, g_new = accepted[k]
            last_step[k] = (X[k], G[k])
            X[k], L[k], G[k] = X_new, L_new, g_new
            hist[k].append(L_new)
            if L_new <= tol or _stalled(hist[k], 0, stall_window, stall_rtol):
                active[k] = False
        if stop_at_tol and min(L) <= tol:
            break
    return xp.stack(X), L, it, hist


def _momentum(fun, X, max_iter, tol, lr, beta=0.9, stall_window=200, stall_rtol=1e-4, history=None):
    """Heavy-ball Riemannian gradient descent with fixed learning rate ``lr``."""
    res = fun(X)
    L = res.loss
    buf = array_namespace(res.grad).zeros_like(res.grad)
    hist = history if history is not None else []
    hist.append(L)
    h0 = len(hist)  # stall test only over this call's own iterations
    it = 0
    while it < max_iter and L > tol:
        it += 1
        buf = beta * riemannian_gradient(X, buf) + res.grad
        X = step_on_sphere(X, -lr, buf)
        res = fun(X)
        L = res.loss
        if not math.isfinite(L):
            raise FloatingPointError("momentum diverged (loss is not finite); lower the learning rate")
        hist.append(L)
        if _should_stop(fun, X, L, hist, h0, stall_window, stall_rtol):
            break
    return X, L, it


def _least_useful_row(fun, X, L) -> int:
    """Index of the candidate whose removal increases the loss least."""
    xp = array_namespace(X)
    n = X.shape[0]
    if n == 1:
        return 0
    increases = []
    for i in range(n):
        keep = xp.asarray([j for j in range(n) if j != i])
        increases.append(fun(X[keep], with_grad=False).loss - L)
    return int(np.argmin(increases))


class _OneRow:
    """The loss as a function of row ``i`` of X̂ alone (the other rows frozen)."""

    callback = None
    stopped = False

    def __init__(self, fun, X, i):
        self.fun, self.X, self.i = fun, X, i

    def __call__(self, x, with_grad=True):
        X = self.X.copy()
        X[self.i] = x[0]
        res = self.fun(X, with_grad=with_grad)
        if with_grad:
            res.grad = res.grad[self.i : self.i + 1]
        return res


def _refit_row(fun, model, X, i, theta, rng, n_candidates, iters, chunk=128):
    """Replace row i of X̂ by the best fit of what the other rows leave unexplained.

    With Φ_o the features of the other rows and P⊥ the projection onto the
    complement of their row span, the loss as a function of row i alone is
    minimised where P⊥φ(x) is most aligned with r = P⊥θ, i.e. where
    ⟨P⊥φ(x), r⟩²/‖P⊥φ(x)‖² is largest.  That score is evaluated on
    ``n_candidates`` random sphere points (in chunks), and the best one is
    polished by L-BFGS on row i with the other rows frozen.
    """
    xp = array_namespace(X)
    n = X.shape[0]
    keep = xp.asarray([j for j in range(n) if j != i])
    F_o = model.features(X[keep]).astype(np.float64) if n > 1 else None
    if F_o is not None:
        A_o = F_o @ F_o.T
        resid = theta - F_o.T @ gram_solve(A_o, F_o @ theta)
    else:
        resid = theta
    best_score, best_x = -1.0, None
    for lo in range(0, n_candidates, chunk):
        C = random_sphere(min(chunk, n_candidates - lo), model.d, rng, xp, model.dtype)
        F = model.features(C).astype(np.float64)
        if F_o is not None:
            F = F - gram_solve(A_o, F_o @ F.T).T @ F_o  # P⊥ φ(c) for every candidate
        proj = F @ resid
        proj = proj * proj if proj.ndim == 1 else xp.sum(proj * proj, axis=1)
        score = proj / xp.maximum(xp.sum(F * F, axis=1), 1e-300)
        k = int(xp.argmax(score))
        if float(score[k]) > best_score:
            best_score, best_x = float(score[k]), C[k]
    X = X.copy()
    X[i] = best_x
    one = _OneRow(fun, X, i)
    x, _, _ = _lbfgs(one, X[i : i + 1], iters, tol=0.0)
    X[i] = x[0]
    return X


def reconstruct(
    theta,
    model,
    n: int,
    *,
    restarts: int = 3,
    max_iter: int = 3000,
    tol: float = 1e-10,
    optimizer: str = "lbfgs",
    lr: float = 0.01,
    momentum: float = 0.9,
    reseed: bool = True,
    reseed_candidates: int = 512,
    seed: int = 0,
    init=None,
    derivative: str = "true",
    stop_at_tol: bool = True,
    progress=None,
    dtype=np.float32,
    batch_restarts: bool = False,
    callback=None,
) -> ReconstructionResult:
    """Run the attack: recover n̂ = ``n`` samples from θ and the model's V, σ.

    Parameters
    ----------
    theta : array (p,) or (p, C)
        Attacked vector θ (or Δθ), NumPy or CuPy; the result uses its backend.
        A matrix Θ (one column per output) is accepted for adapter models.
    model : RandomFeatures or a feature-map model
        The attacker's copy of the feature map (V from its seed, σ), or any
        object following the feature-map protocol of :mod:`rftheory.attack.loss`.
    n : int
        Number of samples to reconstruct (the attacker's n or guess n̂).
    restarts : int
        Independent random initialisations; the lowest final loss wins.
    max_iter : int
        Iteration cap per restart (all re-seeding rounds together).
    tol : float
        Stop a restart once L ≤ tol.
    optimizer : "lbfgs" or "momentum"
    lr, momentum : float
        Learning rate and β of the momentum optimiser (ignored by lbfgs).
    reseed : bool
        Greedy re-seeding of stalled restarts (see module docstring).
    seed : int
        Seed of the initialisations and re-seeding draws.
    init : array (n, d), optional
        Starting point of the first restart (rows are put on the sphere).
    derivative : "true" or "relu"
        σ' in the gradient (true derivative by default).
    stop_at_tol : bool
        Skip the remaining restarts once one reaches L ≤ tol.
    progress : callable, optional
        Called as ``progress(restart, loss)`` after each restart.
    batch_restarts : bool
        Solve the restarts together (L-BFGS only, random-features models):
        their R·n̂ candidates share one pass over V per evaluation, each
        restart keeping its own memory and line search; the best one then
        continues alone with re-seeding if it has not reached ``tol``.
        Sequential restarts (default) stop early once one succeeds, which is
        cheaper when the first restart usually does.
    callback : callable, optional
        ``callback(X_hat, loss)`` after every accepted iteration of the
        sequential optimisers (X̂ in the working dtype); returning True stops
        the whole attack at once (e.g. to measure time to recovery against
        known data in a benchmark).
    dtype : float32 (default), float64 or None
        Working precision of the big products X̂Vᵀ and (·)V.  The Gram
        matrix, α, r and L are always accumulated in float64; the reported
        ``loss`` is re-evaluated in the model's own dtype at the end.  None
        keeps the model's dtype.  (Random-features models only; adapters
        run in their own dtype.)
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    check_count(n, "n")
    if n > model.p:
        raise ValueError(f"n̂={n} > p={model.p}: the features of more than p samples are always linearly dependent")
    for name, val in (("restarts", restarts), ("max_iter", max_iter)):
        if int(val) < 1:
            raise ValueError(f"{name} must be at least 1, got {val}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if getattr(theta, "ndim", 1) == 2 and not hasattr(model, "weight_blocks"):
        theta = check_matrix(theta, "theta", rows=model.p, rows_name="p")  # multi-output head Θ (p×C)
    else:
        theta = check_vector(theta, "theta", length=model.p, length_name="p")
    xp = array_namespace(theta)
    if xp is not model.xp:
        theta = model.xp.asarray(theta)
        xp = model.xp
    if init is not None:
        init = check_matrix(init, "init", rows=n, rows_name="n", cols=model.d, cols_name="d")
        init = retract_to_sphere(xp.asarray(init, dtype=model.dtype))

    # Small problems gain nothing from threads and lose a lot on a busy machine
    # (oversubscribed OpenBLAS threads spin): one thread below SMALL_PROBLEM_FLOPS
    # per evaluation.  When the fused panel kernels do the products
    # (rftheory._engine.panel_loss) they get the threads and BLAS gets one, because
    # OpenBLAS threads left spinning after a threaded call would compete with them.
    flops = 4.0 * n * model.d * model.p * (int(restarts) if batch_restarts else 1)
    threads = 1 if flops < SMALL_PROBLEM_FLOPS else kernel_threads()
    panel = panel_model_applicable(model, dtype) and xp is np
    with threadpool_limits(limits=1 if (threads == 1 or panel) else None, user_api="blas"), panel_threads(threads):
        return _reconstruct(theta, model, n, restarts, max_iter, tol, optimizer, lr, momentum, reseed,
                            reseed_candidates, seed, init, derivative, stop_at_tol, progress, dtype,
                            batch_restarts, callback, xp)


def _reconstruct(theta, model, n, restarts, max_iter, tol, optimizer, lr, momentum, reseed,
                 reseed_candidates, seed, init, derivative, stop_at_tol, progress, dtype,
                 batch_restarts, callback, xp):
    start = time.perf_counter()
    caller_model = model
    if dtype is not None and hasattr(model, "astype"):
        model = model.astype(dtype)
        if init is not None:
            init = init.astype(model.dtype)
    rng = np.random.default_rng(seed)
    fun = _Counter(theta, model, derivative, callback)
    best = None
    finals = []
    starts = [init if (r == 0 and init is not None) else random_sphere(n, model.d, rng, xp, model.dtype)
              for r in range(int(restarts))]
    histories = [None] * len(starts)
    if batch_restarts and optimizer == "lbfgs" and len(starts) > 1 and hasattr(model, "weight_blocks"):
        # phase 1 together; phase 2 (re-seeding) per restart, best first
        Xs, Ls, _, hists = _lbfgs_batched(fun, xp.stack(starts), int(max_iter), tol, stop_at_tol)
        order = sorted(range(len(Ls)), key=lambda k: Ls[k])
        starts = [Xs[k] for k in order]
        histories = [hists[k] for k in order]
    for r, X in enumerate(starts):
        history: list = []
        iters_left, reseeds, total_iters = int(max_iter), 0, 0
        L = math.inf
        if histories[r] is not None:
            history = list(histories[r])
            total_iters = len(history) - 1
            iters_left -= total_iters
            L = history[-1]
            if L <= tol:
                iters_left = 0
        best_round, fruitless, best_X = math.inf, 0, None
        while iters_left > 0:
            if optimizer == "lbfgs":
                X, L, it = _lbfgs(fun, X, iters_left, tol, history=history)
            else:
                X, L, it = _momentum(fun, X, iters_left, tol, lr, momentum, history=history)
            total_iters += it
            iters_left -= it
            if L < best_round * (1 - 1e-3):
                fruitless = 0
            else:
                fruitless += 1
            if L < best_round:  # re-seeding may make things worse: keep the best X̂ seen
                best_round, best_X = L, X
            if L <= tol or not reseed or iters_left <= 0 or fruitless > MAX_FRUITLESS_RESEEDS or fun.stopped:
                break
            # greedy re-seeding of the least useful candidate
            i = _least_useful_row(fun, X, L)
            X = _refit_row(fun, model, X, i, theta, rng, reseed_candidates, 100)
            reseeds += 1
        if best_X is not None and best_round < L:
            X, L = best_X, best_round
            history.append(L)  # the returned X̂ is the best round's, not the last
        check_finite(X, "X_hat")
        finals.append(float(L))
        if best is None or L < best.loss:
            best = ReconstructionResult(
                X_hat=X, loss=float(L), loss_history=history, iterations=total_iters,
                reseeds=reseeds, converged=bool(L <= tol),
            )
        if progress is not None:
            progress(r, float(L))
        if (stop_at_tol and L <= tol) or fun.stopped:
            break
    if model is not caller_model:  # report X̂ and L in the caller's precision
        best.X_hat = retract_to_sphere(best.X_hat.astype(caller_model.dtype))
        best.loss = projection_loss(best.X_hat, theta, caller_model, with_grad=False).loss
        best.converged = bool(best.loss <= tol)
    best.restarts = finals
    best.evaluations = fun.evaluations
    best.wall_time = time.perf_counter() - start
    return best

