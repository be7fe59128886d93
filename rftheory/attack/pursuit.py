"""Pursuit starts: build X̂ row by row by matching pursuit on θ, then re-grow its weakest rows.

Random features (docs/design.md): θ = Σ_j α_j φ(x_j), φ(x) = σ(Vx) ∈ R^p.
The attack minimises L(X̂) = ‖θ − P_{rowspan Φ̂} θ‖²/‖θ‖² on the product of
√d-spheres.  Near the counting limit p ≈ n(d + 1) a local optimiser started
from random rows stops at stationary points whose rows mix two true rows.
This module builds the start instead, one row at a time.

**Score.**  Let S be the rows found so far, B an orthonormal basis of fixed
directions (below), Q an orthonormal basis of span(B, φ(x̂) for x̂ ∈ S),
P⊥ = I − QQᵀ and r = P⊥θ the residual.  For a candidate row x with
u(x) = P⊥φ(x),

    s(x) = ⟨r, u⟩² / (‖u‖² ‖r‖²) ∈ [0, 1],

the squared cosine between r and u: adding x to S lowers ‖P⊥θ‖² by exactly
s(x)·‖r‖².  If S held every true row but x_j, r = α_j P⊥φ(x_j) and s(x_j) = 1,
the global maximum.  With a = ⟨r, φ⟩ (= ⟨r, u⟩, as r ⟂ Q) and b = ‖u‖², the
gradient is (∂a/∂φ = r, ∂b/∂φ = 2u)

    ∂s/∂φ = (2a / (b‖r‖²)) (r − (a/b) u),
    ∂s/∂x = Vᵀ (σ'(Vx) ⊙ ∂s/∂φ),

and its tangent part on the sphere, ∇s − (⟨∇s, x⟩/d) x, is the Riemannian
gradient (:func:`pursuit_score`).  For m candidates C (m×d) one evaluation
costs the two products CVᵀ and (·)V (4mdp flops) and two with Q (4mpk).

**Fixed directions.**  Every φ(x) shares its Hermite components of degree 0
and 1 in the pre-activations, μ·1 + c₁·Vx (up to the spread of the row norms
of V).  Without removing them the score prefers a mixture x ∝ Σ_j α_j x_j,
which collects the degree-1 part of every row, to any single true row.  B is
therefore an orthonormal basis of span{1, Ve_1, …, Ve_d} (:func:`low_order_basis`,
d + 1 directions); the score and the refits below see only the part of θ and
of the features orthogonal to it, where distinct rows are nearly orthogonal
and the maxima of s sit near single true rows.

**Growth** (:func:`pursuit_start`).  Repeat until n rows: maximise s by batched
Riemannian gradient ascent from ``starts`` random sphere points at once (one
step size per point, one evaluation of all points per iteration), add the
best point (or the ``block`` best pairwise distinct ones), and re-optimise all
rows jointly on the *deflated* loss ‖P⊥_{[B, Φ̂]}θ‖²/‖P_B⊥θ‖², the projection loss
of θ_B = P_B⊥θ against the features P_B⊥φ (:class:`DeflatedFeatures`).  Finally
all n rows are polished on the same deflated loss.

**Re-growth** (:func:`pursuit_move`, :func:`regrow`, :func:`pursuit_search`).  The rows found
last are often not true rows: by then the residual is dominated by the error
of the earlier, approximate rows.  After the joint refit on the true loss, a
move drops the m rows of least leave-one-out cost
(:func:`rftheory.attack.moves.leave_one_out_losses`), grows back to n rows by
pursuit from the others and refits; the caller keeps the result if L falls.
m is drawn uniformly from 1..⌊n/2⌋ per move (the same m from the same state
proposes the same rows again).  A move that drops a single row is a fixed
point at a stationary X̂ (the dropped row is the pursuit maximum given the
others), hence the random m.

Everything here uses only what the attacker knows (θ, V, σ, n̂).  A vector θ
(p,) of a random-features model is required (a multi-output Θ is refused).
Memory: V in full (a model with streamed weights regenerates it whole), B and Q
(p×(d + 1 + n̂) float64), and the m×p features of the candidates.  The
scoring runs in float32, the refits in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


from ..backend import array_namespace, to_numpy
from ..linalg import gram_solve
from ..optim.lbfgs import riemannian_lbfgs
from ..optim.sphere import random_sphere, retract_to_sphere, riemannian_gradient
from ..validation import check_count, check_matrix, check_vector
from . import moves as _moves
from .loss import blas_for, fused_value_and_derivative, projection_loss

__all__ = ["pursuit_score", "low_order_basis", "span_basis", "best_rows", "DeflatedFeatures", "pursuit_start",
           "pursuit_move", "regrow", "pursuit_search", "PursuitResult", "random_drop"]

STARTS = 64  # candidate points per pursuit ascent (most of them reach the same few maxima)
ASCENT_ITERATIONS = 60  # gradient-ascent iterations per pursuit ascent
REFIT_ITERATIONS = 100  # joint deflated refit after each added row
POLISH_ITERATIONS = 2000  # joint deflated refit of the n grown rows
DISTINCT_COS = 0.9  # an added row has |cos| ≤ this with the kept rows and the other added rows
TINY_RESIDUAL = 1e-24  # ‖r‖²/‖θ‖² below this: θ is in the span already, nothing left to pursue


def low_order_basis(model):
    """Orthonormal basis B (p, d + 1) of span{1, Ve_1, …, Ve_d}: the degree-0 and degree-1 feature directions.

    Float64, on the model's backend (one QR factorisation of the p×(d + 1) matrix [1, V]).
    """
    xp = model.xp
    V = xp.asarray(model.weights, dtype=np.float64)
    Q, _ = xp.linalg.qr(xp.concatenate([xp.ones((model.p, 1)), V], axis=1))
    return Q


def span_basis(model, X, base=None, rtol: float = 1e-8):
    """Orthonormal basis (p, k) of span(columns of ``base``, φ(x̂_i) for the rows of X), float64.

    ``base`` (p, b) is orthonormal or None; it is returned as the first b
    columns.  The features are orthogonalised against ``base`` (twice, which
    suffices in floating point: Kahan–Parlett), then QR-factorised; columns whose
    pivot |R_ii| is below rtol·max|R_ii| (dependent rows) are dropped.
    """
    xp = model.xp
    if X is None or X.shape[0] == 0:
        return base if base is not None else xp.zeros((model.p, 0))
    F = xp.asarray(model.features(xp.asarray(X, dtype=model.dtype)), dtype=np.float64).T
    if base is not None:
        F = F - base @ (base.T @ F)
        F = F - base @ (base.T @ F)
    Q, R = xp.linalg.qr(F)
    diag = xp.abs(xp.diag(R))
    Q = Q[:, diag > rtol * max(float(xp.max(diag)), 1e-300)]
    return Q if base is None else xp.concatenate([base, Q], axis=1)


class _Scorer:
    """The pursuit score of candidate rows against a fixed residual r ⟂ Q (:func:`pursuit_score`)."""

    def __init__(self, r, Q, model, dtype=np.float32):
        xp = model.xp
        self.xp, self.model, self.dtype = xp, model, np.dtype(dtype)
        self.V = xp.asarray(model.weights).astype(self.dtype, copy=False)
        self.Q = xp.ascontiguousarray(Q.astype(self.dtype)) if Q is not None and Q.shape[1] else None
        self.r = xp.asarray(r).astype(self.dtype)
        self.rr = float(xp.sum(xp.asarray(r, dtype=np.float64) ** 2))

    def __call__(self, C, with_grad=True):
        xp, dt = self.xp, self.dtype
        Z = xp.ascontiguousarray(C.astype(dt, copy=False) @ self.V.T)
        if with_grad:
            F, D = fused_value_and_derivative(self.model.activation, Z)
        else:
            F, D = self.model.activation.fn(Z), None
        U = F - (F @ self.Q) @ self.Q.T if self.Q is not None else F.copy()  # u = P⊥φ
        a = (U @ self.r).astype(np.float64)  # ⟨r, u⟩ = ⟨r, φ⟩
        b = xp.maximum(xp.sum(U.astype(np.float64) ** 2, axis=1), 1e-300)  # ‖u‖²
        s = a * a / (b * self.rr)
        if not with_grad:
            return s, None
        U *= (-(a / b)).astype(dt)[:, None]
        U += self.r[None, :]
        U *= (2.0 * a / (b * self.rr)).astype(dt)[:, None]  # ∂s/∂φ = (2a/(b‖r‖²)) (r − (a/b) u)
        U *= D
        G = U @ self.V  # ∂s/∂x = Vᵀ(σ'(Vx) ⊙ ∂s/∂φ), one row per candidate
        return s, riemannian_gradient(C, G.astype(C.dtype, copy=False))


def pursuit_score(C, r, Q, model, *, with_grad: bool = True, dtype=np.float32):
    """The pursuit score s(c) = ⟨r, P⊥φ(c)⟩² / (‖P⊥φ(c)‖² ‖r‖²) of every row c of C, and its Riemannian gradient.

    Parameters
    ----------
    C : array (m, d)
        Candidate rows (on the √d-sphere for the gradient to be tangent there).
    r : array (p,)
        The residual; must be orthogonal to the columns of Q (r = P⊥θ).
    Q : array (p, k) or None
        Orthonormal basis of the span projected off (P⊥ = I − QQᵀ); k = 0 or None: no projection.
    model : RandomFeatures
        Supplies V and σ.
    with_grad : bool
        Also return the Riemannian gradient (m, d): the tangent part, per row, of
        ∂s/∂c = Vᵀ(σ'(Vc) ⊙ (2a/(b‖r‖²))(r − (a/b)P⊥φ(c))), a = ⟨r, φ(c)⟩, b = ‖P⊥φ(c)‖².
    dtype : float32 or float64
        Precision of the products with V and Q (a, b and s are float64).

    Returns
    -------
    (s, grad) : array (m,) float64 in [0, 1], and array (m, d) in C's dtype or None.
    """
    return _Scorer(r, Q, model, dtype)(C, with_grad)


def _ascend(r, Q, model, starts, rng, iters, step0=0.3, cull=None):
    """Maximise the score from ``starts`` random sphere points at once: (C (m, d) float64, s (m,)).

    Normalised Riemannian gradient ascent, one step size η per point: the trial
    R(c + η√d·g/‖g‖) replaces c where it raises s (then η ← min(1.5η, 1)), else
    η ← η/2.  One evaluation of all points per iteration.  ``cull`` = (t, k):
    after t iterations only the k points of largest s go on.
    """
    xp = model.xp
    score = _Scorer(r, Q, model)
    C = random_sphere(starts, model.d, rng, xp, np.float64)
    s, g = score(C)
    eta = xp.full(starts, step0)
    root_d = math.sqrt(model.d)
    for it in range(iters):
        if cull is not None and it == cull[0] and cull[1] < C.shape[0]:
            top = xp.argsort(-s)[: cull[1]]
            C, s, g, eta = C[top], s[top], g[top], eta[top]
        norm = xp.maximum(xp.linalg.norm(g, axis=1), 1e-300)
        T = retract_to_sphere(C + (eta * root_d / norm)[:, None] * g)
        sT, gT = score(T)
        up = sT > s
        C = xp.where(up[:, None], T, C)
        g = xp.where(up[:, None], gT, g)
        s = xp.where(up, sT, s)
        eta = xp.where(up, xp.minimum(1.5 * eta, 1.0), 0.5 * eta)
    return C, s


def _distinct(C, s, k, cos_max, exclude=None):
    """Up to k rows of C by decreasing s, pairwise |cos| ≤ cos_max and |cos| ≤ cos_max to every row of ``exclude``."""
    Ch, sh = to_numpy(C).astype(np.float64), to_numpy(s)
    Eh = None if exclude is None or exclude.shape[0] == 0 else to_numpy(exclude).astype(np.float64)
    d = Ch.shape[1]
    chosen = []
    for i in np.argsort(-sh):
        c = Ch[i]
        if Eh is not None and float(np.max(np.abs(Eh @ c))) / d > cos_max:
            continue
        if any(abs(float(Ch[j] @ c)) / d > cos_max for j in chosen):
            continue
        chosen.append(int(i))
        if len(chosen) == k:
            break
    idx = array_namespace(C).asarray(chosen, dtype=np.int64)
    return C[idx], s[idx]


def best_rows(theta, model, S, base, k, rng, *, starts=STARTS, iters=ASCENT_ITERATIONS, cos_max=DISTINCT_COS):
    """Up to k pairwise distinct rows of largest pursuit score given the rows S and the directions ``base``.

    Q = :func:`span_basis`(S, base), r = θ − QQᵀθ, then :func:`pursuit_score` is
    maximised from ``starts`` random points; returns (rows (≤ k, d) float64, their
    scores).  None found (θ already in the span, or all maxima repeat S): zero rows.
    """
    xp = model.xp
    Q = span_basis(model, S, base)
    r = theta - Q @ (Q.T @ theta)
    if float(xp.sum(r * r)) <= TINY_RESIDUAL * float(xp.sum(theta * theta)):
        return xp.zeros((0, model.d)), xp.zeros(0)
    with blas_for(4.0 * starts * model.p * (model.d + Q.shape[1])):  # the engine's thread rule, per evaluation
        C, s = _ascend(r, Q, model, starts, rng, iters)
    return _distinct(C, s, k, cos_max, exclude=S)


class DeflatedFeatures:
    """The feature map x ↦ P_B⊥σ(Vx), B orthonormal (p, b), in the feature-map protocol of :mod:`.loss`.

    Float64.  With θ_B = P_B⊥θ its projection loss (:func:`rftheory.attack.loss.feature_map_loss`)
    is ‖P⊥_{[B, Φ̂]}θ‖² / ‖P_B⊥θ‖²; ``features_vjp(X, G)`` = ((G P_B⊥) ⊙ σ'(XVᵀ)) V.
    """

    def __init__(self, model, B):
        self.model, self.B = model, B
        self.p, self.d, self.xp = model.p, model.d, model.xp
        self.dtype = np.dtype(np.float64)
        self.V = model.xp.asarray(model.weights, dtype=np.float64)

    def features(self, X):
        F = self.model.activation.fn(X @ self.V.T)
        return F - (F @ self.B) @ self.B.T

    def features_vjp(self, X, G):
        G = G - (G @ self.B) @ self.B.T
        return (G * self.model.activation.deriv(X @ self.V.T)) @ self.V

    def loss(self, X, theta_B):
        """(L, ∂L/∂X) of :func:`rftheory.attack.loss.feature_map_loss` on this map, with three products.

        With F = σ(XVᵀ), C = FB and θ_B ⟂ B: the Gram of the deflated features is
        A = FFᵀ − CCᵀ, and F_Bθ_B = Fθ_B, so α = A⁻¹Fθ_B; r = θ_B − Fᵀα + B(Cᵀα) is ⟂ B,
        L = ‖r‖²/‖θ_B‖², and since P_B⊥r = r the gradient is
        ∂L/∂X = ((−2/‖θ_B‖²) αrᵀ ⊙ σ'(XVᵀ)) V.  Products XVᵀ, FB and (·)V, against seven
        through ``features``/``features_vjp`` (the refits' hot spot).
        """
        Z = X @ self.V.T
        F, D = fused_value_and_derivative(self.model.activation, Z)
        C = F @ self.B
        alpha = gram_solve(F @ F.T - C @ C.T, F @ theta_B)
        r = theta_B - F.T @ alpha + self.B @ (C.T @ alpha)
        theta_sq = float(theta_B @ theta_B)
        grad = ((-2.0 / theta_sq) * alpha[:, None] * r[None, :] * D) @ self.V
        return float(r @ r) / theta_sq, grad


def _deflated_refit(X, theta_B, feats, iters, stop=None):
    """The package's Riemannian L-BFGS on the deflated loss from X: (X, L); ``stop()`` True ends it early."""

    def objective(Xs):
        loss, grad = feats.loss(Xs[0], theta_B)
        return (loss,), riemannian_gradient(Xs[0], grad)[None]

    flops = 2.0 * X.shape[0] * feats.p * (2 * feats.d + feats.B.shape[1])  # products with V (two) and with B
    with blas_for(flops):  # small refits on one BLAS thread: threads oversubscribe a shared machine
        res = riemannian_lbfgs(objective, X[None], max_iter=iters, tol=0.0, memory=20,
                               callback=None if stop is None else (lambda k, Xk, fk: bool(stop())))
    return res.X[0], float(res.f[0])


def _check(theta, model, n):
    if not hasattr(model, "weights") or not hasattr(model, "activation"):
        raise TypeError("pursuit needs a random-features model (V and σ); got " + type(model).__name__)
    check_count(n, "n")
    theta = check_vector(theta, "theta", length=model.p, length_name="p")
    if n > model.p:
        raise ValueError(f"n̂={n} > p={model.p}: the features of more than p samples are always linearly dependent")
    return model.xp.asarray(theta, dtype=np.float64)


def pursuit_start(theta, model, n: int, *, keep=None, starts: int = STARTS, iters: int = ASCENT_ITERATIONS,
                  refit_iter: int = REFIT_ITERATIONS, polish_iter: int = POLISH_ITERATIONS, block: int = 1,
                  seed: int = 0, rng=None, deflate: bool = True, stop=None):
    """A start X̂ (n, d) for the attack, grown row by row by matching pursuit (module docstring).

    Parameters
    ----------
    theta : array (p,)
        The attacked vector θ (or Δθ).
    model : RandomFeatures
        The attacker's model (V, σ).
    n : int
        Rows to return (n̂).
    keep : array (k, d), optional
        Rows to start from (k < n), e.g. the kept rows of a re-growth move.
    starts, iters : int
        Random points and iterations of each pursuit ascent.
    refit_iter : int
        L-BFGS iterations of the joint deflated refit after each addition (0: none;
        the next residual is then taken before any refit).
    polish_iter : int
        L-BFGS iterations of the final joint deflated refit of the n rows (0: none).
    block : int
        Rows added per ascent (the ``block`` best pairwise distinct maxima).
    seed, rng
        The random points come from ``rng``, or from ``np.random.default_rng(seed)``.
    deflate : bool
        Project off the degree-0 and degree-1 directions B (:func:`low_order_basis`);
        False scores and refits against θ itself.
    stop : callable, optional
        ``stop()`` is asked after every added row and every refit iteration; True ends the
        growth at once (the missing rows are random sphere points, the polish is skipped).

    Returns
    -------
    X : array (n, d) on the √d-sphere, in the model's dtype and backend.
    """
    theta = _check(theta, model, n)
    check_count(starts, "starts")
    check_count(block, "block")
    xp = model.xp
    rng = np.random.default_rng(seed) if rng is None else rng
    B = low_order_basis(model) if deflate else xp.zeros((model.p, 0))
    feats = DeflatedFeatures(model, B)
    theta_B = theta - B @ (B.T @ theta)
    if keep is None:
        S = xp.zeros((0, model.d))
    else:
        S = retract_to_sphere(xp.asarray(check_matrix(keep, "keep", cols=model.d, cols_name="d"), dtype=np.float64))
        if S.shape[0] >= n:
            raise ValueError(f"keep has {S.shape[0]} rows; give fewer than n = {n}")
    stopped = False
    while S.shape[0] < n:
        if stop is not None and stop():
            stopped = True
            S = xp.concatenate([S, random_sphere(n - S.shape[0], model.d, rng, xp, np.float64)], axis=0)
            break
        rows, _ = best_rows(theta, model, S, B if deflate else None, min(block, n - S.shape[0]), rng,
                            starts=starts, iters=iters)
        if rows.shape[0] == 0:  # nothing left to explain: fill with random rows
            rows = random_sphere(n - S.shape[0], model.d, rng, xp, np.float64)
        S = xp.concatenate([S, rows], axis=0)
        if refit_iter > 0:
            S, _ = _deflated_refit(S, theta_B, feats, refit_iter, stop)
    if polish_iter > 0 and not stopped:
        S, _ = _deflated_refit(S, theta_B, feats, polish_iter, stop)
    return retract_to_sphere(S.astype(model.dtype))


def random_drop(n: int, rng) -> int:
    """m, the rows a re-growth move drops: uniform on 1..max(1, ⌊n/2⌋)."""
    return int(rng.integers(1, max(1, n // 2) + 1))


def pursuit_move(fun, local, theta, model, X, rng, *, drop=None, max_iter: int = 3000, **start_options):
    """One re-growth proposal from X (n rows): (X', L', iterations, acceptable).

    Drops the m rows of least leave-one-out cost (m = ``drop``, or
    :func:`random_drop`), grows back to n rows by :func:`pursuit_start` from the
    others and re-optimises all n rows with ``local``.  The calling conventions are
    those of :mod:`rftheory.attack.moves`: ``fun(X, with_grad=False).loss`` is L
    (a stack (k, n, d) gives k values), ``local(X, iters)`` returns (X, L,
    iterations, stop reason).  ``acceptable`` is False when X' holds a
    near-duplicate pair (|cos| > 0.99); the caller accepts X' only if it is
    acceptable and L' < L(X).
    """
    n = X.shape[0]
    m = random_drop(n, rng) if drop is None else max(1, min(int(drop), n))
    xp = array_namespace(X)
    loo = _moves.leave_one_out_losses(fun, X, True)
    keep = X[xp.asarray(np.argsort(loo)[m:], dtype=np.int64)] if m < n else None
    Y = pursuit_start(theta, model, n, keep=keep, rng=rng, **start_options)
    Y, L, it, _ = local(Y.astype(X.dtype), max_iter)
    return Y, L, it, _moves.near_duplicate_pair(Y, 0.99) is None


def regrow(fun, local, theta, model, X, L, rng, *, moves: int, tol: float, max_iter: int, drop=None,
           max_fruitless=None, halt=None, on_move=None, **start_options):
    """Re-growth moves from X (loss L): (X, L, iterations, moves made, moves kept).

    While L > tol, fewer than ``moves`` were made, fewer than ``max_fruitless`` (None: no
    limit) were rejected in a row and ``halt(X, L)`` is not True: draw m (``drop``, or
    :func:`random_drop`), make :func:`pursuit_move` and keep its rows if they are acceptable
    and lower L.  ``on_move(done, m, X, L, L_trial, kept)`` follows every move (X, L: the
    state after it).  ``fun``, ``local``, ``max_iter`` and ``start_options`` go to
    :func:`pursuit_move`.
    """
    n = X.shape[0]
    iterations = done = kept_moves = fruitless = 0
    while (L > tol and done < moves and (max_fruitless is None or fruitless < max_fruitless)
           and not (halt is not None and halt(X, L))):
        done += 1
        m = random_drop(n, rng) if drop is None else int(drop)
        Y, LY, it, ok = pursuit_move(fun, local, theta, model, X, rng, drop=m, max_iter=max_iter, **start_options)
        iterations += it
        kept = bool(ok and LY < L)
        if kept:
            X, L, kept_moves, fruitless = Y, LY, kept_moves + 1, 0
        else:
            fruitless += 1
        if on_move is not None:
            on_move(done, m, X, L, LY, kept)
    return X, L, iterations, done, kept_moves


@dataclass
class PursuitResult:
    """Outcome of :func:`pursuit_search`: the rows, their loss L (model dtype), moves tried and accepted, and L
    after the first joint refit and after every move."""

    X_hat: object
    loss: float
    moves: int = 0
    accepted: int = 0
    history: list = field(default_factory=list)


def _reconstruct_local(theta, model):
    """``local(X, iters)`` = one restart of :func:`rftheory.attack.reconstruct.reconstruct` from X, no re-seeding."""
    from .reconstruct import reconstruct  # noqa: PLC0415  (reconstruct may import this module)

    def local(X, iters):
        res = reconstruct(theta, model, X.shape[0], init=X, restarts=1, strategy="restarts", reseed=False,
                          max_iter=iters)
        return res.X_hat, float(res.loss), res.iterations, res.stop_reason

    return local


def pursuit_search(theta, model, n: int, *, moves: int = 50, drop=None, tol: float = 1e-10, max_iter: int = 3000,
                   seed: int = 0, callback=None, local=None, progress=None, **start_options) -> PursuitResult:
    """The attack from a pursuit start: :func:`pursuit_start`, a joint refit, then re-growth moves.

    Parameters
    ----------
    theta : array (p,)
        The attacked vector θ (or Δθ).
    model : RandomFeatures
        The attacker's model (V, σ).
    n : int
        Rows to reconstruct (n̂).
    moves : int
        At most this many re-growth moves (:func:`pursuit_move`); they run while
        L > ``tol``, and each is kept only when it lowers L.
    drop : int, optional
        Rows dropped per move; None: drawn per move by :func:`random_drop`.
    tol : float
        Stop once L ≤ tol.
    max_iter : int
        Iteration cap of every joint refit.
    seed : int
        Seed of all random draws (starting points, m).
    callback : callable, optional
        ``callback(X, L)`` after the first joint refit and after every move;
        True stops the search (a move under way is finished first).
    local : callable, optional
        The joint refit ``local(X, iters) -> (X, L, iterations, stop reason)``;
        default: one restart of :func:`~rftheory.attack.reconstruct.reconstruct`
        from X without re-seeding, in its working precision.
    progress : callable, optional
        ``progress(move, m, L, L_trial)`` after every move.
    **start_options
        Passed to :func:`pursuit_start` (starts, iters, refit_iter, polish_iter, block, deflate).

    Returns
    -------
    PursuitResult
        The rows (model dtype), their loss L, the moves tried and kept, and L
        after the first refit and after every move.
    """
    theta = _check(theta, model, n)
    rng = np.random.default_rng(seed)
    local = _reconstruct_local(theta, model) if local is None else local

    def fun(Y, with_grad=False):
        return projection_loss(Y, theta, model, with_grad=with_grad)

    X = pursuit_start(theta, model, n, rng=rng, **start_options)
    X, L, _, _ = local(X, max_iter)
    history = [L]

    def on_move(done, m, X, L, LY, kept):
        history.append(L)
        if progress is not None:
            progress(done, m, L, LY)

    X, L, _, done, accepted = regrow(fun, local, theta, model, X, L, rng, moves=moves, tol=tol, max_iter=max_iter,
                                     drop=drop, halt=callback, on_move=on_move, **start_options)
    return PursuitResult(X_hat=X, loss=float(L), moves=done, accepted=accepted, history=history)
