"""The reconstruction attack: minimise the projection loss over X̂ on the
product of √d-spheres.

Problem (docs/design.md): given θ (or Δθ), V (through the model) and n̂, find
X̂ ∈ R^{n̂×d} with ‖x̂_i‖ = √d minimising

    L(X̂) = ‖θ − Φ̂ᵀ(Φ̂Φ̂ᵀ)⁻¹Φ̂θ‖² / ‖θ‖²,    Φ̂ = σ(X̂Vᵀ).

Optimisers (both Riemannian: the Euclidean gradient G is replaced by its
tangent part g_i = G_i − (⟨G_i, x̂_i⟩/d) x̂_i, and every step is followed by the
retraction x̂_i ← √d x̂_i/‖x̂_i‖; geometry in :mod:`rftheory.optim.sphere`):

* ``"lbfgs"`` (default): the package's one Riemannian L-BFGS
  (:func:`rftheory.optim.lbfgs.riemannian_lbfgs`, memory LBFGS_MEMORY, Armijo
  back-tracking from the unit step, no row moved farther than √d/2 by a first
  trial step); no learning rate to tune.
* ``"momentum"``: heavy-ball projected gradient, b ← β·P(b) + g,
  X̂ ← R(X̂ − η b), with a fixed learning rate η (the original authors'
  scheme, kept for comparison).

Greedy re-seeding (this package's heuristic, attacker-side only): when an
optimiser stalls with L above the tolerance, the candidate whose removal
raises the loss least is dropped and refitted to what the other rows leave
unexplained: among M random sphere points the one whose feature, projected
off the others' row span (P⊥), best aligns with r = P⊥θ, then polished by
L-BFGS on that row alone (the loss as a function of one row).  It uses only
what the attacker knows (θ, V, σ, n̂).  A restart gives up after
MAX_FRUITLESS_RESEEDS consecutive re-seeds that lower its loss by less than 0.1 %.

Global strategy (``options.strategy``): ``"pursuit"``, once the first
restart has ended above tol, grows a fresh start row by row by matching
pursuit on θ, refits it jointly and keeps the better of it and the restart,
then makes up to ``moves`` re-growth moves (drop the m least useful rows,
grow them back by pursuit, refit), ending after MAX_FRUITLESS_MOVES rejected
proposals in a row (:mod:`rftheory.attack.pursuit`; a vector θ of a
random-features model, else birth-death moves per restart); the other
restarts run only if it too ends above tol.  It follows the first failure
rather than the last: near the counting limit random restarts end on the
same kind of mixed-row stationary point, and at image scale (d in the
thousands) each one costs minutes.  ``"birthdeath"`` follows each restart
that ends above tol by up to ``moves`` birth-death moves (add a random row,
re-optimise jointly, drop the least useful row or one of a near-duplicate
pair; :mod:`rftheory.attack.moves`); ``"restarts"`` does nothing more
(independent random starts only); ``"overparam"`` starts each restart from
n̂ + k rows optimised jointly and pruned to n̂.  A proposal is kept only if
L falls.  The moves draw after all starts are drawn, so a first restart
that reaches tol is the same run under "pursuit", "birthdeath" and
"restarts".

Stopping words: ``loss_at_tol`` says only that L ≤ tol; ``stop_reason`` says
why the optimiser stopped; :meth:`ReconstructionResult.verdict_words` states
what a loss at tolerance is evidence of, from p, d and n̂ alone.

Settings come in one record, :class:`rftheory.attack.options.AttackOptions`.
Nothing here reads the true X.  L = 0 does not mean success: below
p ≈ dn many wrong X̂ reach L = 0 (see :mod:`rftheory.attack.metrics`).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..backend import array_namespace
from ..linalg import gram_solve
from ..optim.lbfgs import riemannian_lbfgs, stalled
from ..optim.sphere import random_sphere, retract_to_sphere, riemannian_gradient, step_on_sphere
from .loss import PreparedProjectionLoss, blas_for, projection_loss  # blas_for: the engine's thread rule
from . import moves as _moves
from . import pursuit as _pursuit
from .options import NETWORK_OPTIONS, OPTIMIZERS, AttackOptions
from ..validation import check_count, check_finite, check_matrix, check_vector

__all__ = ["ReconstructionResult", "reconstruct", "random_sphere", "OPTIMIZERS", "stopping_words"]

MAX_FRUITLESS_RESEEDS = 4  # stop a restart after this many re-seeds in a row that lower L by < 0.1 %
LBFGS_MEMORY = 20  # curvature pairs: enough for the n̂·d-dimensional problems here, cheap next to an evaluation
MOMENTUM_STALL_WINDOW = 200  # momentum creeps: judge a stall over many more steps than L-BFGS's 10
REFIT_ITERATIONS = 100  # L-BFGS iterations polishing a re-seeded row (a d-dimensional problem)
MAX_FRUITLESS_MOVES = 25  # rejected moves in a row that end the pursuit (runs of 8 preceded successes; 10 cut some)


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
        L after every iteration of the best restart, then after each accepted move
        (the moves' own re-optimisations are not recorded).
    iterations : int
        Optimiser iterations of the best restart (all re-seeding rounds).
    evaluations : int
        Loss/gradient evaluations over all restarts.
    restarts : list of float
        Final loss of every restart run.
    reseeds : int
        Greedy re-seeding steps in the best restart.
    loss_at_tol : bool
        Whether the best restart reached L ≤ tol.  Only that: up to the
        counting limit p = nd (inputs on the sphere) wrong X̂ reach L = 0 too
        (see :meth:`verdict_words`).
    wall_time : float
        Seconds for the whole call.
    options : AttackOptions
        The settings used.
    stop_reason : str
        Why the best restart's last optimiser round stopped: one of
        :data:`rftheory.optim.lbfgs.STOP_REASONS` ("tol", "stalled", "max_iter",
        "line_search", "callback", ...), or "moves" when the moves of strategy
        "pursuit" or "birthdeath" ran out above tol.
    p, d : int
        Features and input dimension of the attacked model (for :meth:`verdict_words`).
    outputs : int
        C, the columns of the attacked Θ (1 for a vector θ).
    moves : int
        Accepted proposals of the global strategy (the pursuit start and re-growth
        moves, or the best restart's birth-death moves).
    """

    X_hat: object
    loss: float
    loss_history: list = field(default_factory=list)
    iterations: int = 0
    evaluations: int = 0
    restarts: list = field(default_factory=list)
    reseeds: int = 0
    loss_at_tol: bool = False
    wall_time: float = 0.0
    options: AttackOptions | None = None
    stop_reason: str = ""
    p: int = 0
    d: int = 0
    moves: int = 0
    outputs: int = 1

    @property
    def converged(self) -> bool:
        """Deprecated alias of :attr:`loss_at_tol` (a loss at tolerance is not a recovery)."""
        warnings.warn("ReconstructionResult.converged is deprecated: it only says L ≤ tol; use loss_at_tol, "
                      "stop_reason and verdict_words()", DeprecationWarning, stacklevel=2)
        return self.loss_at_tol

    def verdict_words(self) -> str:
        """What the stop means, from what the attacker knows (p, d, n̂): :func:`stopping_words`."""
        tol = self.options.tol if self.options is not None else None
        return stopping_words(self.loss, tol, self.loss_at_tol, self.stop_reason, self.p, self.d,
                              int(self.X_hat.shape[0]), self.outputs)


def stopping_words(loss: float, tol, loss_at_tol: bool, stop_reason: str, p: int, d: int, n_hat: int,
                   outputs: int = 1) -> str:
    """One sentence on a stopped attack that never calls it converged or successful on the loss alone.

    Counting on the √d-sphere (docs/theory.md, "Counting on the sphere";
    :func:`rftheory.theory.identifiability.counting_limits`): a row of X̂ has
    d − 1 freedoms, so θ = Σ α_i φ(x̂_i) is p equations in n̂(d − 1) + n̂ = n̂d
    unknowns and wrong X̂ reach L = 0 up to p = n̂d; a loss at tolerance can
    single out the training set only from p = n̂d + 1, i.e. p/(dn̂) > 1.  With
    C outputs the attacker holds C vectors of the span: C(p − n̂) > n̂(d − 1),
    i.e. p/(dn̂) > 1/d + (d − 1)/(dC)
    (:func:`rftheory.theory.identifiability.counting_ratio`; the same limit at
    C = 1).  The sentence states p/(dn̂) and that limit and, with the true X
    unknown, never more than "evidence".
    """
    from ..theory.identifiability.report import counting_limits, counting_ratio  # noqa: PLC0415

    ratio = p / (d * n_hat) if d and n_hat else math.nan
    limit = counting_ratio(d, outputs) if d else math.nan
    if d and n_hat:
        lim = counting_limits(n_hat, d, p, outputs)
        above = lim["equations"] > lim["unknowns"]
    else:
        above = False
    tol_text = f" ≤ tol {tol:g}" if tol is not None else ""
    formula = ("p/(dn) > 1, i.e. p ≥ nd + 1" if outputs == 1 else
               f"p/(dn) > 1/d + (d − 1)/(dC) = {limit:.3g} with C = {outputs}")
    numbers = f"(here p/(dn) = {ratio:.3g}; counting limit on the sphere {formula})"
    if loss_at_tol:
        side = ("p is above the limit" if above else
                "p is at or below the limit, so wrong X̂ reach this loss too: no evidence of recovery")
        where = "p = nd" if outputs == 1 else "p = n + n(d − 1)/C"
        return (f"loss at tolerance (L = {loss:.2e}{tol_text}); evidence of recovery only above "
                f"{where} {numbers}: {side}")
    return (f"loss above tolerance (L = {loss:.2e}, optimiser stopped: {stop_reason or 'unknown'}); "
            f"no evidence of recovery {numbers}")


class _Counter:
    """The attack's loss (Riemannian gradient), prepared once for θ and the model, counting its calls.

    ``fun(X)`` evaluates one (n̂, d) candidate; :meth:`single` and :meth:`stack`
    are the optimiser's objective (values and gradients of a stack of runs).
    """

    def __init__(self, theta, model, derivative, callback=None):
        self.loss = PreparedProjectionLoss(theta, model, derivative=derivative, tangent=True)
        self.evaluations = 0
        self.callback = callback  # callback(X, L) after each iteration; True stops the attack
        self.stopped = False

    def __call__(self, X, with_grad=True):
        self.evaluations += 1
        return self.loss(X, with_grad=with_grad)

    def single(self, Xs):
        """One run: Xs is (1, n̂, d)."""
        self.evaluations += 1
        res = self.loss(Xs[0])
        return (res.loss,), res.grad[None]

    def stack(self, Xs):
        """k runs in one pass over V: Xs is (k, n̂, d)."""
        self.evaluations += 1
        res = self.loss(Xs)
        return res.loss, res.grad

    def on_step(self, run, X, L) -> bool:
        """The optimiser's callback: the user's, remembering that it asked to stop."""
        if self.callback(X, L):
            self.stopped = True
        return self.stopped


def _pursue(fun, theta, model, X, L, rng, o: AttackOptions, history, step=None):
    """Strategy "pursuit" from the first restart that ended above tol (X, loss L): (X, L, iterations, accepted).

    First a fresh pursuit start (:func:`rftheory.attack.pursuit.pursuit_start`, rows grown one at
    a time against what the others leave unexplained) refitted jointly by L-BFGS; then up to
    ``o.moves`` re-growth moves (:func:`rftheory.attack.pursuit.pursuit_move`: drop the m least
    useful rows, grow them back by pursuit, refit), ending early after MAX_FRUITLESS_MOVES
    rejected proposals in a row.  Each proposal replaces X only if it lowers L and holds no
    near-duplicate pair; the moves start from the better of the restart and the pursuit start.
    ``step(L)`` (optional) follows the start and every move, with the loss of the state kept.
    """

    # max_iter caps the pursuit's own deflated refits as well (a short run stays short)
    caps = _pursuit.pursuit_settings(model)  # full, or lean for a large problem
    stall = caps.pop("stall")
    caps.update(refit_iter=min(caps["refit_iter"], o.max_iter), polish_iter=min(caps["polish_iter"], o.max_iter),
                low=_pursuit.LowOrderSpan(model, dtype=caps.pop("dtype")))  # P_B once for the start and every move

    def local(Y, iters):  # the proposals' refits: their losses are not the attack's history
        Y, LY, it, why = _lbfgs(fun, Y, iters, o.tol, [], stall=stall)
        if (stall is not None and why == "stalled" and LY < best[1] and it < iters
                and not fun.stopped):  # a winner stopped by the lenient test: polish it to the end
            Y, LY, more, why = _lbfgs(fun, Y, iters - it, o.tol, [])
            it += more
        return Y, LY, it, why
    best = [X, L]  # the state the user's callback is asked with

    def stop():  # the user's callback, asked with the best state so far while the pursuit grows rows
        if not fun.stopped and fun.callback is not None and fun.callback(*best):
            fun.stopped = True
        return fun.stopped

    def on_move(done, m, X, L, LY, kept):
        best[:] = X, L
        if kept:
            history.append(L)  # the history records the accepted states only
        if step is not None:
            step(float(L))

    accepted = 0
    Y = _pursuit.pursuit_start(theta, model, X.shape[0], rng=rng, stop=stop, **caps)
    Y, LY, iters, _ = local(Y, o.max_iter)
    if LY < L and _moves.near_duplicate_pair(Y, o.merge_cos) is None:
        X, L, accepted = Y, LY, 1
        best[:] = X, L
        history.append(L)
    if step is not None:
        step(float(L))
    X, L, it, _, kept = _pursuit.regrow(fun, local, theta, model, X, L, rng, moves=o.moves, tol=o.tol,
                                        max_iter=o.max_iter, max_fruitless=MAX_FRUITLESS_MOVES,
                                        halt=lambda X, L: fun.stopped, on_move=on_move, stop=stop, **caps)
    return X, L, iters + it, accepted + kept


def _lbfgs(fun, X, max_iter, tol, history, stall=None):
    """One run of the package's L-BFGS from X; appends to ``history``; returns (X, L, iterations, stop reason).

    ``stall`` = (window, rtol) replaces the optimiser's own stall test (L fell by less than rtol·L over
    the last ``window`` iterations)."""
    extra = {} if stall is None else dict(stall_window=stall[0], stall_rtol=stall[1])
    res = riemannian_lbfgs(fun.single, X[None], max_iter=max_iter, tol=tol, memory=LBFGS_MEMORY,
                           callback=fun.on_step if fun.callback is not None else None, **extra)
    history.extend(res.history[0])
    return res.X[0], float(res.f[0]), int(res.iterations[0]), res.stop_reason[0]


def _momentum(fun, X, max_iter, tol, lr, beta, history, stall_rtol=1e-4):
    """Heavy-ball Riemannian gradient descent with fixed learning rate ``lr``; same return as :func:`_lbfgs`."""
    res = fun(X)
    L = res.loss
    buf = array_namespace(res.grad).zeros_like(res.grad)
    history.append(L)
    h0 = len(history)  # stall test only over this call's own iterations
    it = 0
    while it < max_iter and L > tol:
        it += 1
        buf = beta * riemannian_gradient(X, buf) + res.grad
        X = step_on_sphere(X, -lr, buf)
        res = fun(X)
        L = res.loss
        if not math.isfinite(L):
            raise FloatingPointError("momentum diverged (loss is not finite); lower the learning rate")
        history.append(L)
        if fun.callback is not None and fun.on_step(0, X, L):
            return X, L, it, "callback"
        if stalled(history, MOMENTUM_STALL_WINDOW, stall_rtol, start=h0):
            return X, L, it, "stalled"
    return X, L, it, "tol" if L <= tol else "max_iter"


class _OneRow:
    """The loss as a function of row ``i`` of X̂ alone (the other rows frozen), as the optimiser's objective."""

    def __init__(self, fun, X, i):
        self.fun, self.X, self.i = fun, X, i

    def __call__(self, xs):
        """xs is (1, 1, d): row i of one run."""
        X = self.X.copy()
        X[self.i] = xs[0, 0]
        res = self.fun(X)
        return (res.loss,), res.grad[None, self.i : self.i + 1]


def _refit_row(fun, model, X, i, theta, rng, n_candidates, iters, chunk=128):
    """Replace row i of X̂ by the best fit of what the other rows leave unexplained.

    With Φ_o the features of the other rows and P⊥ the projection onto the
    complement of their row span, the loss as a function of row i alone is
    minimised where P⊥φ(x) is most aligned with r = P⊥θ, i.e. where
    ⟨P⊥φ(x), r⟩²/‖P⊥φ(x)‖² is largest.  That score is evaluated on
    ``n_candidates`` random sphere points (in chunks of ``chunk``, bounding
    the memory of their features), and the best one is polished by L-BFGS on
    row i with the other rows frozen.  The scoring's products follow the
    engine's thread rule for an evaluation of the attack (``blas_for``, through :mod:`rftheory.attack.loss`).
    """
    xp = array_namespace(X)
    n = X.shape[0]
    with blas_for(4.0 * n * model.d * model.p):
        best_x = _best_candidate(model, X, i, theta, rng, n_candidates, chunk, xp)
    X = X.copy()
    X[i] = best_x
    res = riemannian_lbfgs(_OneRow(fun, X, i), X[None, i : i + 1], max_iter=iters, tol=0.0, memory=LBFGS_MEMORY)
    X[i] = res.X[0, 0]
    return X


def _best_candidate(model, X, i, theta, rng, n_candidates, chunk, xp):
    """The random sphere point of largest score ⟨P⊥φ(c), r⟩²/‖P⊥φ(c)‖² (see :func:`_refit_row`)."""
    F_o = model.features(_moves.delete_row(X, i)).astype(np.float64) if X.shape[0] > 1 else None
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
    return best_x


def reconstruct(theta, model, n: int, options: AttackOptions | None = None, *, init=None, progress=None,
                callback=None, **overrides) -> ReconstructionResult:
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
    options : AttackOptions, optional
        The attack's settings (default ``AttackOptions()`` for a random-features model,
        :data:`rftheory.attack.options.NETWORK_OPTIONS` for a network adapter, whose
        products run in the model's own dtype whatever ``dtype`` says): restarts, max_iter,
        tol, optimizer, lr, momentum, reseed, reseed_candidates, seed,
        derivative, stop_at_tol, dtype, batch_restarts, strategy, extra_rows,
        moves, merge_cos; see
        :class:`rftheory.attack.options.AttackOptions`.
    **overrides
        Any of those fields by name (e.g. ``restarts=5``, ``dtype=np.float64``
        or ``dtype=None`` for the model's dtype), applied as
        ``options.replace(**overrides)`` and checked there.
    init : array (n, d), optional
        Starting point of the first restart (rows are put on the sphere).
    progress : callable, optional
        Called as ``progress(restart, loss)`` after each restart; during the pursuit (strategy
        "pursuit") as ``progress(options.restarts, loss)`` after its start and after every move,
        with the loss of the state kept so far.
    callback : callable, optional
        ``callback(X_hat, loss)`` after every accepted iteration (X̂ in the
        working dtype; with ``batch_restarts`` also in the joint phase, for each
        restart); returning True stops the whole attack at once (e.g. to
        measure time to recovery against known data in a benchmark).

    With ``batch_restarts`` (strategy "restarts", L-BFGS, random-features models) the restarts are
    solved together: their R·n̂ candidates share one pass over V per
    evaluation, each restart keeping its own memory and line search; the best
    one then continues alone with re-seeding if it has not reached ``tol``.
    Sequential restarts (default) stop early once one succeeds, which is
    cheaper when the first restart usually does.  The big products, X̂Vᵀ and
    the gradient's product with V, run in ``options.dtype``; the Gram matrix, α, r and L are float64, and
    the reported ``loss`` is re-evaluated in the model's own dtype at the end.
    """
    if options is None:  # networks (no V, no engine) have their own record: see NETWORK_OPTIONS
        options = AttackOptions() if hasattr(model, "weight_blocks") else NETWORK_OPTIONS
    if overrides:
        options = options.replace(**overrides)
    check_count(n, "n")
    if n > model.p:
        raise ValueError(f"n̂={n} > p={model.p}: the features of more than p samples are always linearly dependent")
    if getattr(theta, "ndim", 1) == 2:
        theta = check_matrix(theta, "theta", rows=model.p, rows_name="p")  # multi-output Θ (p×C), RF or adapter
    else:
        theta = check_vector(theta, "theta", length=model.p, length_name="p")
    xp = array_namespace(theta)
    if xp is not model.xp:
        theta = model.xp.asarray(theta)
        xp = model.xp
    if init is not None:
        init = check_matrix(init, "init", rows=n, rows_name="n", cols=model.d, cols_name="d")
        init = retract_to_sphere(xp.asarray(init, dtype=model.dtype))

    # Threads are the loss's business: each evaluation picks its own thread count and
    # pins BLAS for its duration only (rftheory.attack.loss), so nothing stays pinned.
    return _reconstruct(theta, model, n, options, init, progress, callback, xp)


def _reconstruct(theta, model, n, options: AttackOptions, init, progress, callback, xp) -> ReconstructionResult:
    start = time.perf_counter()
    o = options
    caller_model = model
    dtype = o.working_dtype
    if dtype is not None and hasattr(model, "astype"):
        model = model.astype(dtype)
        if init is not None:
            init = init.astype(model.dtype)
    rng = np.random.default_rng(o.seed)
    fun = _Counter(theta, model, o.derivative, callback)
    best = None
    finals = []
    pursued = False
    starts = [init if (r == 0 and init is not None) else random_sphere(n, model.d, rng, xp, model.dtype)
              for r in range(o.restarts)]
    histories = [None] * len(starts)
    reasons = [""] * len(starts)
    stacked = hasattr(model, "weight_blocks")  # the loss takes stacks (k, m, d): leave-one-out in one evaluation
    pursuable = stacked and getattr(theta, "ndim", 1) == 1  # pursuit scores one θ against V (else: birth-death)
    if o.strategy == "overparam":
        k_extra = _moves.extra_rows_for(n, model.d, model.p, o.extra_rows)
        starts = [None] * o.restarts  # made per restart below (their draws follow the previous restart's)
    if (o.strategy == "restarts" and o.batch_restarts and o.optimizer == "lbfgs" and len(starts) > 1
            and stacked):
        # phase 1 together; phase 2 (re-seeding) per restart, best first
        res = riemannian_lbfgs(fun.stack, xp.stack(starts), max_iter=o.max_iter, tol=o.tol, memory=LBFGS_MEMORY,
                               stop_all_at_tol=o.stop_at_tol,
                               callback=fun.on_step if fun.callback is not None else None)
        order = sorted(range(len(starts)), key=lambda k: res.f[k])
        starts = [res.X[k] for k in order]
        histories = [res.history[k] for k in order]
        reasons = [res.stop_reason[k] for k in order]
    for r, X in enumerate(starts):
        history: list = []
        iters_left, reseeds, total_iters, accepted_moves = o.max_iter, 0, 0, 0
        L = math.inf
        reason = reasons[r]

        def local(Y, iters):  # the moves' re-optimisations: their losses are not the restart's history
            return _lbfgs(fun, Y, iters, o.tol, [])

        if X is None:  # "overparam": n + k rows optimised together, pruned to n
            first = init if (r == 0 and init is not None) else None
            X, L, it, reason = _moves.overparameterised_start(fun, local, model, n, k_extra, rng, o.max_iter,
                                                              o.merge_cos, stacked, first=first)
            total_iters += it
            history.append(L)
            if L <= o.tol or fun.stopped:
                iters_left = 0
        if histories[r] is not None:
            history = list(histories[r])
            total_iters = len(history) - 1
            iters_left -= total_iters
            L = history[-1]
            if L <= o.tol or fun.stopped:
                iters_left = 0
        best_round, fruitless, best_X = math.inf, 0, None
        while iters_left > 0:
            if o.optimizer == "lbfgs":
                X, L, it, reason = _lbfgs(fun, X, iters_left, o.tol, history)
            else:
                X, L, it, reason = _momentum(fun, X, iters_left, o.tol, o.lr, o.momentum, history)
            total_iters += it
            iters_left -= it
            if L < best_round * (1 - 1e-3):
                fruitless = 0
            else:
                fruitless += 1
            if L < best_round:  # re-seeding may make things worse: keep the best X̂ seen
                best_round, best_X = L, X
            if L <= o.tol or not o.reseed or iters_left <= 0 or fruitless > MAX_FRUITLESS_RESEEDS or fun.stopped:
                break
            # greedy re-seeding of the least useful candidate
            i = _moves.least_useful_row(fun, X, stacked=False)  # one evaluation per reduced set, as re-seeding always did
            X = _refit_row(fun, model, X, i, theta, rng, o.reseed_candidates, REFIT_ITERATIONS)
            reseeds += 1
        if best_X is not None and best_round < L:
            X, L = best_X, best_round
            history.append(L)  # the returned X̂ is the best round's, not the last
        if ((o.strategy == "birthdeath" or (o.strategy == "pursuit" and not pursuable)) and o.optimizer == "lbfgs"
                and L > o.tol and not fun.stopped):
            for _ in range(o.moves):
                Z, LZ, it, ok = _moves.birth_death_move(fun, local, model, X, rng, o.merge_cos, stacked,
                                                        iters=min(_moves.MOVE_ITERATIONS, o.max_iter))
                total_iters += it
                if ok and LZ < L:
                    X, L, accepted_moves = Z, LZ, accepted_moves + 1
                    history.append(L)  # the history records the accepted states only
                if L <= o.tol or fun.stopped:
                    break
            reason = "tol" if L <= o.tol else ("callback" if fun.stopped else "moves")
        pursue = (o.strategy == "pursuit" and pursuable and o.optimizer == "lbfgs" and not pursued
                  and L > o.tol and not fun.stopped)
        if pursue:  # the one global search, from the first restart that ended above tol
            pursued = True
            if progress is not None:
                progress(r, float(L))
            step = None if progress is None else (lambda loss: progress(o.restarts, loss))
            X, L, it, accepted_moves = _pursue(fun, theta, model, X, L, rng, o, history, step)
            total_iters += it
            reason = "tol" if L <= o.tol else ("callback" if fun.stopped else "moves")
        if fun.stopped and L > o.tol:
            reason = "callback"
        check_finite(X, "X_hat")
        finals.append(float(L))
        if best is None or L < best.loss:
            best = ReconstructionResult(
                X_hat=X, loss=float(L), loss_history=history, iterations=total_iters,
                reseeds=reseeds, loss_at_tol=bool(L <= o.tol), stop_reason=reason, moves=accepted_moves,
            )
        if progress is not None and not pursue:  # the pursuit reports its own steps
            progress(r, float(L))
        if (o.stop_at_tol and L <= o.tol) or fun.stopped:
            break
    if model is not caller_model:  # report X̂ and L in the caller's precision
        best.X_hat = retract_to_sphere(best.X_hat.astype(caller_model.dtype))
        best.loss = projection_loss(best.X_hat, theta, caller_model, with_grad=False).loss
        best.loss_at_tol = bool(best.loss <= o.tol)
    best.restarts = finals
    best.p, best.d = int(model.p), int(model.d)
    best.outputs = int(theta.shape[1]) if getattr(theta, "ndim", 1) == 2 else 1
    best.evaluations = fun.evaluations
    best.options = options
    best.wall_time = time.perf_counter() - start
    return best
