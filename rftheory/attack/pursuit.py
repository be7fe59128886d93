"""Pursuit starts: build X̂ row by row by matching pursuit on θ, then re-grow its weakest rows.

Random features (docs/design.md): θ = Σ_j α_j φ(x_j), φ(x) = σ(Vx) ∈ R^p.
The attack minimises L(X̂) = ‖θ − P_{rowspan Φ̂} θ‖²/‖θ‖² on the product of
√d-spheres.  Near the counting limit p ≈ n(d + 1) a local optimiser started
from random rows stops at stationary points whose rows mix two true rows.
This module builds the start instead, one row at a time.

**Score.**  Let S be the rows found so far, P_B the projector onto the fixed
directions span{1, V} (below), Q an orthonormal basis of P_B⊥span{φ(x̂) for
x̂ ∈ S}, P⊥ = I − P_B − QQᵀ and r = P⊥θ the residual.  For a candidate row x with
u(x) = P⊥φ(x),

    s(x) = ⟨r, u⟩² / (‖u‖² ‖r‖²) ∈ [0, 1],

the squared cosine between r and u: adding x to S lowers ‖P⊥θ‖² by exactly
s(x)·‖r‖².  If S held every true row but x_j, r = α_j P⊥φ(x_j) and s(x_j) = 1,
the global maximum.  With a = ⟨r, φ⟩ (= ⟨r, u⟩, as P⊥r = r) and b = ‖u‖², the
gradient is (∂a/∂φ = r, ∂b/∂φ = 2u)

    ∂s/∂φ = (2a / (b‖r‖²)) (r − (a/b) u),
    ∂s/∂x = Vᵀ (σ'(Vx) ⊙ ∂s/∂φ),

and its tangent part on the sphere, ∇s − (⟨∇s, x⟩/d) x, is the Riemannian
gradient (:func:`pursuit_score`).  For m candidates C (m×d) one evaluation
costs the products CVᵀ and (·)V, two more with V for P_B (8mdp flops in all)
and two with Q (4mpk).

**Fixed directions.**  Every φ(x) shares its Hermite components of degree 0
and 1 in the pre-activations, μ·1 + c₁·Vx (up to the spread of the row norms
of V).  Without removing them the score prefers a mixture x ∝ Σ_j α_j x_j,
which collects the degree-1 part of every row, to any single true row.  The
projector P_B onto span{1, Ve_1, …, Ve_d} (:class:`LowOrderSpan`, d + 1
directions) removes them; the score and the refits below see only the part of θ and
of the features orthogonal to it, where distinct rows are nearly orthogonal
and the maxima of s sit near single true rows.

**Growth** (:func:`pursuit_start`).  Repeat until n rows: climb s by batched
Riemannian gradient ascent from ``starts`` random sphere points at once (one
step size per point, one evaluation of all points per iteration; the ascent
follows s's numerator ⟨r, φ⟩², whose gradient costs half as much, see
:class:`_Correlation`), add the end point of largest s (or the ``block``
best pairwise distinct ones), and re-optimise all rows jointly on the
*deflated* loss ‖P⊥_{[1, V, Φ̂]}θ‖²/‖P_B⊥θ‖², the projection loss
of θ_B = P_B⊥θ against the features P_B⊥φ (:class:`DeflatedFeatures`).  Finally
all n rows are polished on the same deflated loss (none in the lean settings
that :func:`pursuit_settings` gives a large problem).

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
Memory: V in full (a model with streamed weights regenerates it whole) and
a float32 copy of it for a float64 model, (AᵀA)⁻¹ ((d + 1)² float64), Q
(p×n̂ float64) and the m×p features of the candidates.  The scoring's products
with V run in float32, the deflated refits' in the dtype of P_B (the model's
by default; :func:`pursuit_settings` picks float64 for small problems); the
small Gram matrices, α and the residuals are float64.
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

__all__ = ["pursuit_score", "LowOrderSpan", "span_basis", "best_rows", "DeflatedFeatures", "pursuit_start",
           "pursuit_move", "regrow", "pursuit_search", "PursuitResult", "random_drop", "pursuit_settings"]

STARTS = 64  # candidate points per pursuit ascent (most of them reach the same few maxima)
ASCENT_ITERATIONS = 60  # gradient-ascent iterations per pursuit ascent
REFIT_ITERATIONS = 100  # joint deflated refit after each added row
POLISH_ITERATIONS = 2000  # joint deflated refit of the n grown rows
DISTINCT_COS = 0.9  # an added row has |cos| ≤ this with the kept rows and the other added rows
# The settings of a large problem.  ``stall``: a proposal's refit stops once L falls by less than half over 100
# iterations.  In the true basin L halves every few iterations (8 photographs, d = 3072: 1e-10 within 160
# iterations of a near start); on a wrong plateau it creeps (1.4e-2 to 1.3e-2 in 600 iterations), which the
# optimiser's own test (1e-4 over 10) lets run to max_iter, minutes at image scale.  Small problems keep that
# test: with the lenient one a slow true basin near the counting limit was cut short (n=5, d=40, p/(dn) = 1.25:
# 1 of 4 seeds recovered against 2 of 4).
LEAN = dict(starts=16, iters=30, refit_iter=30, polish_iter=0, dtype=None, stall=(100, 0.5))
# A problem is large when one ascent iteration at STARTS points, 4·STARTS·p·d flops, exceeds this: about a second
# of 2 cores.  Below it the full settings recover more cells at the counting limit (n=10, d=100, p/(dn) = 1.25:
# 2 of 4 seeds against 1 of 4 lean); above it they cost minutes per row (8 photographs, d = 768: lean settings
# recovered in 30–48 s where the full ones took 131 s; at d = 3072 the full ones need about 16 times that).
LEAN_ABOVE_FLOPS = 1e9
TINY_RESIDUAL = 1e-24  # ‖r‖²/‖θ‖² below this: θ is in the span already, nothing left to pursue


class LowOrderSpan:
    """P_B, the orthogonal projector onto span{1, Ve_1, …, Ve_d}: the degree-0 and degree-1 feature directions.

    Held as A = [1, V] (p, d + 1) and M⁻¹ = (AᵀA)⁻¹ (float64, (d + 1)²), so that
    P_B u = A M⁻¹ Aᵀu.  Each projection of k vectors costs two products with V
    (Aᵀu, then A·coefficients); building it costs one product VᵀV and one
    (d + 1)² inverse.  An orthonormal basis of A would instead need a
    p×(d + 1) float64 matrix and a QR factorisation (2p(d + 1)² flops) — at
    d = 3072, p = 2dn, 1.2 GB and most of a pursuit's time.  AᵀA is well
    conditioned (V has i.i.d. rows and p ≫ d), so the explicit inverse loses nothing.

    The products with V run in ``dtype`` (default: the model's; float64 gives P_B
    to rounding, float32 to float32 rounding), their results are float64.
    """

    def __init__(self, model, dtype=None):
        xp = model.xp
        self.xp, self.dtype = xp, np.dtype(model.dtype if dtype is None else dtype)
        self.V = xp.asarray(model.weights).astype(self.dtype, copy=False)
        p, d = self.V.shape
        G = xp.empty((d + 1, d + 1), dtype=np.float64)
        G[0, 0] = p
        G[0, 1:] = G[1:, 0] = xp.sum(self.V, axis=0, dtype=np.float64)
        G[1:, 1:] = (self.V.T @ self.V).astype(np.float64)
        G[1:, 1:] = 0.5 * (G[1:, 1:] + G[1:, 1:].T)  # exactly symmetric for the Cholesky
        self.M_inv = gram_solve(G, xp.eye(d + 1), what="Gram matrix of [1, V]")

    @property
    def size(self) -> int:
        """d + 1, the dimension of the span."""
        return self.M_inv.shape[0]

    def coefficients(self, F):
        """AᵀFᵀ as rows, (k, d + 1) float64, for F (k, p): each row's sum, then FV."""
        xp = self.xp
        out = xp.empty((F.shape[0], self.size), dtype=np.float64)
        out[:, 0] = xp.sum(F, axis=1, dtype=np.float64)
        out[:, 1:] = F.astype(self.dtype, copy=False) @ self.V
        return out

    def expand(self, W):
        """W Aᵀ, (k, p) float64, for W (k, d + 1): the vectors A w of the rows w of W."""
        return W[:, :1] + (W[:, 1:].astype(self.dtype, copy=False) @ self.V.T).astype(np.float64)

    def project(self, F):
        """(P_B F, C) for F (k, p): the projections and the coefficients C = AᵀFᵀ (rows)."""
        C = self.coefficients(F)
        return self.expand(C @ self.M_inv), C

    def project_out(self, F):
        """P_B⊥F = F − P_B F, (k, p) float64; a vector (p,) gives a vector."""
        if F.ndim == 1:
            return self.project_out(F[None])[0]
        return F.astype(np.float64, copy=False) - self.project(F)[0]


def span_basis(model, X, low=None, rtol: float = 1e-8):
    """Orthonormal basis Q (p, k) of P_B⊥ span{φ(x̂_i) for the rows of X}, float64.

    ``low`` is the :class:`LowOrderSpan` P_B (None: P_B = 0, Q spans the features
    themselves).  The features are projected off it twice (which suffices in
    floating point: Kahan–Parlett), then QR-factorised; columns whose pivot |R_ii|
    is below rtol·max|R_ii| (dependent rows) are dropped.  Q ⟂ span{1, V}, so the
    projector off span{1, V, φ(X)} is I − P_B − QQᵀ.
    """
    xp = model.xp
    if X is None or X.shape[0] == 0:
        return xp.zeros((model.p, 0))
    F = xp.asarray(model.features(xp.asarray(X, dtype=model.dtype)), dtype=np.float64)
    if low is not None:
        F = low.project_out(low.project_out(F))
    Q, R = xp.linalg.qr(F.T)
    diag = xp.abs(xp.diag(R))
    return Q[:, diag > rtol * max(float(xp.max(diag)), 1e-300)]


class _Scorer:
    """The pursuit score of candidate rows against a fixed residual r ⟂ span{1, V, Q} (:func:`pursuit_score`)."""

    def __init__(self, r, Q, model, low=None, dtype=np.float32):
        xp = model.xp
        self.xp, self.model, self.dtype, self.low = xp, model, np.dtype(dtype), low
        same = low is not None and low.dtype == self.dtype
        self.V = low.V if same else xp.asarray(model.weights).astype(self.dtype, copy=False)
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
        U = F.copy() if self.low is None else F - self.low.project(F)[0].astype(dt)  # u = P⊥φ
        if self.Q is not None:
            U -= (F @ self.Q) @ self.Q.T  # Q ⟂ span{1, V}: Qᵀ P_B⊥φ = Qᵀφ
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


def pursuit_score(C, r, Q, model, *, low=None, with_grad: bool = True, dtype=np.float32):
    """The pursuit score s(c) = ⟨r, P⊥φ(c)⟩² / (‖P⊥φ(c)‖² ‖r‖²) of every row c of C, and its Riemannian gradient.

    Parameters
    ----------
    C : array (m, d)
        Candidate rows (on the √d-sphere for the gradient to be tangent there).
    r : array (p,)
        The residual; must be orthogonal to span{1, V} (when ``low`` is given) and to the columns of Q.
    Q : array (p, k) or None
        Orthonormal basis, orthogonal to span{1, V} when ``low`` is given (:func:`span_basis`);
        P⊥ = I − P_B − QQᵀ.  k = 0 or None: no columns.
    model : RandomFeatures
        Supplies V and σ.
    low : LowOrderSpan, optional
        P_B, the projector onto span{1, V}; None: P_B = 0.
    with_grad : bool
        Also return the Riemannian gradient (m, d): the tangent part, per row, of
        ∂s/∂c = Vᵀ(σ'(Vc) ⊙ (2a/(b‖r‖²))(r − (a/b)P⊥φ(c))), a = ⟨r, φ(c)⟩, b = ‖P⊥φ(c)‖².
    dtype : float32 or float64
        Precision of the products with V and Q (a, b and s are float64).

    Returns
    -------
    (s, grad) : array (m,) float64 in [0, 1], and array (m, d) in C's dtype or None.
    """
    return _Scorer(r, Q, model, low, dtype)(C, with_grad)


class _Correlation:
    """c(x) = ⟨r, σ(Vx)⟩²/‖r‖², the numerator of the pursuit score, and its Riemannian gradient.

    s(x) = c(x)/b(x) with b(x) = ‖P⊥φ(x)‖², and b barely moves over the sphere: the
    pre-activations Vx of any x are p draws of about N(0, 1), so ‖φ(x)‖² and ‖P_Bφ(x)‖²
    vary by O(1/√p) relatively, and QᵀΦ is large only near the rows S, where c vanishes
    too.  The ascent therefore climbs c: ∂c/∂x = (2a/‖r‖²) Vᵀ(σ'(Vx) ⊙ r), a = ⟨r, φ(x)⟩,
    two products with V per evaluation against four for s (P_B and P⊥φ need two more).
    """

    def __init__(self, scorer):
        self.scorer = scorer

    def __call__(self, C):
        sc = self.scorer
        F, D = fused_value_and_derivative(sc.model.activation, sc.xp.ascontiguousarray(C.astype(sc.dtype) @ sc.V.T))
        a = (F @ sc.r).astype(np.float64)
        G = D * sc.r[None, :]
        G *= (2.0 * a / sc.rr).astype(sc.dtype)[:, None]
        return a * a / sc.rr, riemannian_gradient(C, (G @ sc.V).astype(C.dtype, copy=False))


def _ascend(r, Q, model, low, starts, rng, iters, step0=0.3):
    """Maximise the score from ``starts`` random sphere points at once: (C (m, d) float64, s (m,)).

    Normalised Riemannian gradient ascent on the score's numerator c (:class:`_Correlation`),
    one step size η per point: the trial R(c + η√d·g/‖g‖) replaces c where it raises c
    (then η ← min(1.5η, 1)), else η ← η/2.  One evaluation of all points per iteration;
    the end points are returned with their score s (:func:`pursuit_score`, no gradient).
    """
    xp = model.xp
    score = _Scorer(r, Q, model, low)
    climb = _Correlation(score)
    C = random_sphere(starts, model.d, rng, xp, np.float64)
    c, g = climb(C)
    eta = xp.full(starts, step0)
    root_d = math.sqrt(model.d)
    for _ in range(iters):
        norm = xp.maximum(xp.linalg.norm(g, axis=1), 1e-300)
        T = retract_to_sphere(C + (eta * root_d / norm)[:, None] * g)
        cT, gT = climb(T)
        up = cT > c
        C = xp.where(up[:, None], T, C)
        g = xp.where(up[:, None], gT, g)
        c = xp.where(up, cT, c)
        eta = xp.where(up, xp.minimum(1.5 * eta, 1.0), 0.5 * eta)
    return C, score(C, with_grad=False)[0]


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


def best_rows(theta, model, S, low, k, rng, *, starts=STARTS, iters=ASCENT_ITERATIONS, cos_max=DISTINCT_COS):
    """Up to k pairwise distinct rows of largest pursuit score given the rows S and P_B = ``low``.

    θ_B = P_B⊥θ (θ when ``low`` is None), Q = :func:`span_basis`(S, low),
    r = θ_B − QQᵀθ_B, then :func:`pursuit_score` is maximised from ``starts``
    random points; returns (rows (≤ k, d) float64, their scores).  None found (θ
    already in the span, or all maxima repeat S): zero rows.
    """
    xp = model.xp
    theta = xp.asarray(theta, dtype=np.float64)
    theta_B = theta if low is None else low.project_out(theta)
    Q = span_basis(model, S, low)
    r = theta_B - Q @ (Q.T @ theta_B)
    if float(xp.sum(r * r)) <= TINY_RESIDUAL * float(xp.sum(theta * theta)):
        return xp.zeros((0, model.d)), xp.zeros(0)
    with blas_for(4.0 * starts * model.p * model.d):  # the engine's thread rule, per evaluation (CVᵀ and (·)V)
        C, s = _ascend(r, Q, model, low, starts, rng, iters)
    return _distinct(C, s, k, cos_max, exclude=S)


class DeflatedFeatures:
    """The feature map x ↦ P_B⊥σ(Vx), P_B = ``low`` (a :class:`LowOrderSpan`, or None: no deflation).

    In the feature-map protocol of :mod:`.loss` (float64 features).  With θ_B = P_B⊥θ its
    projection loss (:func:`rftheory.attack.loss.feature_map_loss`) is
    ‖P⊥_{[1, V, Φ̂]}θ‖² / ‖P_B⊥θ‖²; ``features_vjp(X, G)`` = ((G P_B⊥) ⊙ σ'(XVᵀ)) V.
    The products with V run in ``low.dtype`` (the model's dtype without ``low``).
    """

    def __init__(self, model, low=None):
        self.model, self.low = model, low
        self.p, self.d, self.xp = model.p, model.d, model.xp
        self.dtype = np.dtype(np.float64)
        self._work = low.dtype if low is not None else np.dtype(model.dtype)
        self.V = low.V if low is not None else model.xp.asarray(model.weights)

    def _pre(self, X):
        return X.astype(self._work, copy=False) @ self.V.T

    def features(self, X):
        F = self.model.activation.fn(self._pre(X)).astype(np.float64)
        return F if self.low is None else self.low.project_out(F)

    def features_vjp(self, X, G):
        if self.low is not None:
            G = self.low.project_out(G)
        G = (G * self.model.activation.deriv(self._pre(X))).astype(self._work)
        return (G @ self.V).astype(np.float64)

    def loss(self, X, theta_B):
        """(L, ∂L/∂X) of :func:`rftheory.attack.loss.feature_map_loss` on this map, with four products.

        With F = σ(XVᵀ), C = AᵀFᵀ (rows, A = [1, V]), W = CM⁻¹ and θ_B ⟂ A: the Gram
        of the deflated features is FFᵀ − WCᵀ, and F_Bθ_B = Fθ_B, so α = (FFᵀ − WCᵀ)⁻¹Fθ_B;
        r = θ_B − Fᵀα + A(Wᵀα) is ⟂ A, L = ‖r‖²/‖θ_B‖², and since P_B⊥r = r the gradient is
        ∂L/∂X = ((−2/‖θ_B‖²) αrᵀ ⊙ σ'(XVᵀ)) V.  Products XVᵀ, FV, V(·) and (·)V, against
        seven through ``features``/``features_vjp`` (the refits' hot spot).
        """
        F, D = fused_value_and_derivative(self.model.activation, self._pre(X))
        Fd = F.astype(np.float64)
        gram = Fd @ Fd.T
        if self.low is not None:
            C = self.low.coefficients(F)
            W = C @ self.low.M_inv
            gram = gram - W @ C.T
        alpha = gram_solve(gram, Fd @ theta_B)
        r = theta_B - Fd.T @ alpha
        if self.low is not None:
            r = r + self.low.expand((alpha @ W)[None])[0]
        theta_sq = float(theta_B @ theta_B)
        G = ((-2.0 / theta_sq) * alpha[:, None] * r[None, :]).astype(self._work) * D
        return float(r @ r) / theta_sq, (G @ self.V).astype(np.float64)


def _deflated_refit(X, theta_B, feats, iters, stop=None):
    """The package's Riemannian L-BFGS on the deflated loss from X: (X, L); ``stop()`` True ends it early."""

    def objective(Xs):
        loss, grad = feats.loss(Xs[0], theta_B)
        return (loss,), riemannian_gradient(Xs[0], grad)[None]

    flops = 2.0 * X.shape[0] * feats.p * feats.d * (2 if feats.low is None else 4)  # products with V
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
                  seed: int = 0, rng=None, deflate: bool = True, low=None, stop=None):
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
        Project off the degree-0 and degree-1 directions span{1, V} (:class:`LowOrderSpan`);
        False scores and refits against θ itself.
    low : LowOrderSpan, optional
        That projector, built once by the caller for many starts (default: built here when ``deflate``).
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
    low = (LowOrderSpan(model) if low is None else low) if deflate else None
    feats = DeflatedFeatures(model, low)
    theta_B = theta if low is None else low.project_out(theta)
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
        rows, _ = best_rows(theta, model, S, low, min(block, n - S.shape[0]), rng,
                            starts=starts, iters=iters)
        if rows.shape[0] == 0:  # nothing left to explain: fill with random rows
            rows = random_sphere(n - S.shape[0], model.d, rng, xp, np.float64)
        S = xp.concatenate([S, rows], axis=0)
        if refit_iter > 0:
            S, _ = _deflated_refit(S, theta_B, feats, refit_iter, stop)
    if polish_iter > 0 and not stopped:
        S, _ = _deflated_refit(S, theta_B, feats, polish_iter, stop)
    return retract_to_sphere(S.astype(model.dtype))


def pursuit_settings(model) -> dict:
    """The growth settings (starts, iters, refit_iter, polish_iter) of :func:`pursuit_start` for this model,
    ``dtype``, the precision of its :class:`LowOrderSpan` (hence of the deflated refits), and ``stall``, the
    (window, rtol) stall test of the proposals' refits (None: the optimiser's own).

    The module defaults with float64 products, or :data:`LEAN` with the model's dtype when one ascent
    iteration, 4·STARTS·p·d flops, exceeds :data:`LEAN_ABOVE_FLOPS`.  Float64 below that limit because
    precision decides cells at the counting limit and costs little there: n=20, d=40, p/(dn) = 1.5, seed 0,
    the float32 polish stopped at L = 5e-9 with one row wrong, the float64 one recovered all 20 in 2.7 s.
    """
    full = dict(starts=STARTS, iters=ASCENT_ITERATIONS, refit_iter=REFIT_ITERATIONS, polish_iter=POLISH_ITERATIONS,
                dtype=np.float64, stall=None)
    return dict(LEAN) if 4.0 * STARTS * model.p * model.d > LEAN_ABOVE_FLOPS else full


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
        Passed to :func:`pursuit_start` (starts, iters, refit_iter, polish_iter, block, deflate, low).

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

    if start_options.get("deflate", True) and start_options.get("low") is None:
        start_options["low"] = LowOrderSpan(model)  # P_B once for the start and every move
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
