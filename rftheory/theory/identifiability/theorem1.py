r"""Theorem 1 (one sample): the single-sample residual and the spurious gap.

Single-sample residual, the relative distance of φ(x̂) from span{φ(x_i)}:

    R(x̂) = ‖P⊥_Φ φ(x̂)‖ / ‖φ(x̂)‖ ∈ [0, 1],

P⊥_Φ the orthogonal projector onto the complement of the row span of Φ
(computed by :mod:`rftheory.theory.span`).  R(x_i) = 0.  Its square is smooth, with

    ∂R²/∂φ = 2 (r − R² φ)/‖φ‖²,  r = P⊥_Φ φ,
    ∂R²/∂x̂ = Vᵀ [σ'(Vx̂) ⊙ ∂R²/∂φ].

Theorem 1 says that for p ≫ dn, with high probability over V, R(x̂) small
forces x̂ close to some ±x_i ("≫" with no explicit constant).  By counting on
the sphere (x̂ has d − 1 freedoms, φ(x̂) ∈ span Φ is p − n conditions) exact
spurious zeros R = 0 far from the data exist for p ≤ n + d − 1 and not from
p = n + d (:func:`~rftheory.theory.identifiability.report.counting_limits`).  The *spurious gap* at radius δ is

    gap(δ) = inf { R(x̂) : ‖x̂‖ = √d, dist(x̂) ≥ δ },

estimated (an upper bound on the infimum) by minimising R² over that set from
many starts with the projected Riemannian L-BFGS of
:mod:`rftheory.theory.identifiability.search`.  Its p → ∞ limit follows from
the kernel: with K∞ = Σ_k μ_k² (XXᵀ/d)^{∘k} and k(x̂)_i = κ(⟨x̂, x_i⟩/d),
κ(ρ) = Σ_k μ_k² ρ^k,

    R∞(x̂)² = 1 − k(x̂)ᵀ K∞⁻¹ k(x̂) / κ(1),

because ΦΦᵀ/p → K∞, Φφ(x̂)/p → k(x̂) and ‖φ(x̂)‖²/p → κ(1) = E[σ²].
:func:`kernel_spurious_gap` minimises R∞ the same way (gradient
∂R∞²/∂x̂ = −(2/κ(1)) Σ_i w_i κ'(ρ_i) x_i/d, w = K∞⁻¹k).
:func:`path_profile` follows R along great circles through the data.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...backend import array_namespace, to_numpy
from ...models.activations import get_activation
from ...optim.sphere import random_sphere, retract_to_sphere
from ...validation import check_matrix
from ..hermite import hermite_coefficients, kernel_limit
from ..span import row_basis, row_residuals
from .common import (
    DEFAULT_ORDER,
    _check_count,
    _check_sphere,
    _features,
    _weights_act,
    cap_cosine,
    sign_aware_distance,
)
from .search import _cap_boundary_points, _ExcludeCaps, riemannian_lbfgs

__all__ = [
    "single_sample_residual",
    "kernel_residual",
    "ResidualMinima",
    "minimize_residual",
    "SpuriousGap",
    "spurious_gap",
    "kernel_spurious_gap",
    "PathProfile",
    "path_profile",
    "PATH_KINDS",
    "DEFAULT_DELTA",
    "attack_starts",
]

DEFAULT_DELTA = 0.3  # far region dist(x̂) ≥ δ, i.e. more than about 17° from every ±x_i


def single_sample_residual(X_hat, X, model, *, basis=None):
    """R(x̂) = ‖P⊥_Φ φ(x̂)‖/‖φ(x̂)‖ for each row of X̂ (Φ = σ(XVᵀ)).

    X̂ and X need not be on the sphere here.  ``basis`` (a
    :func:`rftheory.theory.span.row_basis` of Φ) may be passed to reuse it.
    """
    X = check_matrix(X, "X")
    X_hat = check_matrix(X_hat, "X_hat", cols=X.shape[1], cols_name="d (columns of X)")
    xp = array_namespace(X_hat, X)
    V, act = _weights_act(model, xp, X.shape[1])
    X = xp.asarray(X, dtype=np.float64)
    if basis is None:
        basis = row_basis(_features(X, V, act))
    F = _features(xp.asarray(X_hat, dtype=np.float64), V, act)
    return row_residuals(F, basis=basis).relative


def _residual_objective(Q, V, act):
    """f(X̂) = R(x̂)² per row, and its Euclidean gradient; X̂ of shape (m, 1, d)."""

    def fun(Xb):
        xp = array_namespace(Xb)
        Xr = Xb[:, 0, :]
        Z = Xr @ V.T
        F = act.fn(Z)
        r = F - (F @ Q.T) @ Q
        r = r - (r @ Q.T) @ Q
        ff = xp.sum(F * F, axis=1)
        ff = xp.maximum(ff, 1e-300)
        R2 = xp.sum(r * r, axis=1) / ff
        dF = 2.0 * (r - R2[:, None] * F) / ff[:, None]
        G = (dF * act.deriv(Z)) @ V
        return R2, G[:, None, :]

    return fun


def _kernel_parts(X, activation, order):
    exp = hermite_coefficients(activation, order)
    w = np.asarray(exp.kernel_coefficients(), dtype=np.float64)
    K = kernel_limit(X, activation, order).kernel
    return w, K


def _poly(w, rho, xp, derivative=False):
    if derivative:
        c = [k * w[k] for k in range(1, len(w))]
    else:
        c = list(w)
    out = xp.full(rho.shape, c[-1], dtype=np.float64)
    for a in reversed(c[:-1]):
        out = out * rho + a
    return out


def kernel_residual(X_hat, X, activation="relu+tanh", order: int = DEFAULT_ORDER):
    """Kernel-limit (p → ∞) residual R∞(x̂) = (1 − k(x̂)ᵀK∞⁻¹k(x̂)/κ(1))^{1/2}.

    Rows of X̂ and X must be on the √d-sphere; K∞ and k use the Hermite series
    truncated at ``order`` (:func:`rftheory.theory.hermite.kernel_limit`).  Negative
    values of R∞² caused by the truncation are clipped to 0.
    """
    X, xp = _check_sphere(X, "X")
    X_hat, _ = _check_sphere(X_hat, "X_hat")
    w, K = _kernel_parts(X, activation, order)
    k = kernel_limit(X_hat, activation, order, Y=X).kernel
    kappa1 = float(np.sum(w))
    sol = xp.linalg.solve(K, k.T).T
    R2 = 1.0 - xp.sum(k * sol, axis=1) / kappa1
    return xp.sqrt(xp.clip(R2, 0.0, 1.0))


def _kernel_objective(X, w, K):
    xp = array_namespace(X)
    d = X.shape[1]
    kappa1 = float(np.sum(w))
    Kinv = xp.linalg.inv(K)

    def fun(Xb):
        Xr = Xb[:, 0, :]
        rho = xp.clip(Xr @ X.T / d, -1.0, 1.0)
        k = _poly(w, rho, xp)
        wv = k @ Kinv
        R2 = 1.0 - xp.sum(k * wv, axis=1) / kappa1
        dk = -2.0 * wv / kappa1
        G = (dk * _poly(w, rho, xp, derivative=True)) @ X / d
        return R2, G[:, None, :]

    return fun


class ResidualMinima(NamedTuple):
    """Local minima of R found from ``starts`` starting points.

    X_hat (m, d), residual R (m,), distance (m,) sign-aware to the data,
    nearest (m,) index of the nearest ±x_i, feasible (m,) bool (dist ≥ δ up
    to 1e-9 when a δ was given, else all True), iterations (m,), evaluations.
    """

    X_hat: object
    residual: object
    distance: object
    nearest: object
    feasible: object
    iterations: object
    evaluations: int


def minimize_residual(
    X,
    model,
    *,
    starts: int = 64,
    delta: float | None = None,
    boundary_fraction: float = 0.5,
    max_iter: int = 300,
    tol: float = 1e-26,
    seed: int = 0,
    init=None,
) -> ResidualMinima:
    """Minimise R(x̂)² over the √d-sphere (optionally over dist(x̂) ≥ δ) from many starts.

    Starts are uniform on the sphere; with ``delta``, a ``boundary_fraction``
    of them are placed on the boundaries of the excluded caps around ±x_i
    (where the constrained infimum tends to sit) and every iterate is
    projected out of the caps.  ``init`` (m×d) replaces the random starts.
    Rows of X must be on the √d-sphere.
    """
    X, xp = _check_sphere(X)
    starts = _check_count("starts", starts)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    Phi = _features(X, V, act)
    Q = row_basis(Phi).basis
    rng = np.random.default_rng([seed, 7121])
    constraint, c = None, None
    if delta is not None:
        c = cap_cosine(delta)
        constraint = _ExcludeCaps(X, c)
    if init is not None:
        X0 = xp.asarray(check_matrix(init, "init", cols=d, cols_name="d"), dtype=np.float64)
    else:
        nb = int(round(boundary_fraction * starts)) if delta is not None else 0
        parts = [random_sphere(starts - nb, d, rng, xp)]
        if nb:
            parts.append(_cap_boundary_points(X, c, nb, rng, xp))
        X0 = xp.concatenate(parts, axis=0)
    res = riemannian_lbfgs(_residual_objective(Q, V, act), X0[:, None, :], constraint=constraint, max_iter=max_iter, tol=tol)
    Xh = res.X[:, 0, :]
    R = row_residuals(_features(Xh, V, act), basis=row_basis(Phi)).relative
    dist = sign_aware_distance(Xh, X)
    feasible = dist.distance >= (float(delta) - 1e-9) if delta is not None else xp.ones(Xh.shape[0], dtype=bool)
    return ResidualMinima(Xh, R, dist.distance, dist.index, feasible, res.iterations, res.evaluations)


class SpuriousGap(NamedTuple):
    """Theorem 1 figures for one (X, V).

    gap : min R(x̂) found over dist(x̂) ≥ δ (inf if no feasible point).
    x_hat : the minimiser found (d,).
    delta : the radius δ.
    truth_residual : max_i R(x_i) (round-off floor; 0 in exact arithmetic).
    free_recovered : fraction of unconstrained runs ending within δ of some ±x_i.
    free_spurious : min R over unconstrained local minima farther than δ (inf if none).
    n, d, p, ratio : sizes and p/(dn).
    """

    gap: float
    x_hat: object
    delta: float
    truth_residual: float
    free_recovered: float
    free_spurious: float
    n: int
    d: int
    p: int
    ratio: float


def spurious_gap(
    X,
    model,
    *,
    delta: float = DEFAULT_DELTA,
    starts: int = 64,
    free_starts: int | None = None,
    max_iter: int = 300,
    seed: int = 0,
    extra_starts=None,
) -> SpuriousGap:
    """gap(δ) = min R(x̂) over ‖x̂‖ = √d, dist(x̂) ≥ δ, plus unconstrained minima statistics.

    ``starts`` constrained runs (half on the cap boundaries) estimate the
    gap (an upper bound on the infimum); ``extra_starts`` (m×d, any norm:
    retracted to the sphere and projected out of the caps) are added to
    them, e.g. the far rows of the attack's zero-loss wrong reconstructions
    (:func:`attack_starts`); ``free_starts`` (default ``starts``)
    unconstrained runs from uniform starts tell how often a plain descent
    lands on a true ±x_i and how low far (spurious) minima go.
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    cons = minimize_residual(X, model, starts=starts, delta=delta, max_iter=max_iter, seed=seed)
    if extra_starts is not None and len(extra_starts):
        init = retract_to_sphere(xp.asarray(check_matrix(extra_starts, "extra_starts", cols=d, cols_name="d"),
                                            dtype=np.float64))
        more = minimize_residual(X, model, starts=int(init.shape[0]), delta=delta, max_iter=max_iter, seed=seed,
                                 init=init)
        cons = ResidualMinima(*(xp.concatenate([a, b]) if k < 6 else a + b
                                for k, (a, b) in enumerate(zip(cons, more))))
    feas = to_numpy(cons.feasible).astype(bool)
    R = to_numpy(cons.residual)
    if feas.any():
        j = int(np.flatnonzero(feas)[np.argmin(R[feas])])
        gap, x_hat = float(R[j]), cons.X_hat[j]
    else:
        gap, x_hat = math.inf, None
    free_starts = starts if free_starts is None else free_starts
    free = minimize_residual(X, model, starts=free_starts, delta=None, max_iter=max_iter, seed=seed + 1)
    fd = to_numpy(free.distance)
    fR = to_numpy(free.residual)
    far = fd >= delta
    truth = float(xp.max(single_sample_residual(X, X, model)))
    return SpuriousGap(
        gap=gap,
        x_hat=x_hat,
        delta=float(delta),
        truth_residual=truth,
        free_recovered=float(np.mean(~far)),
        free_spurious=float(fR[far].min()) if far.any() else math.inf,
        n=n,
        d=d,
        p=p,
        ratio=p / (d * n),
    )


def attack_starts(X, model, *, delta: float = DEFAULT_DELTA, theta=None, restarts: int = 2, seed: int = 0):
    """Far rows of the attack's own reconstructions, as starting points of the Theorem 1 search.

    For p ≤ nd the reconstruction attack on θ can reach loss ≈ 0 with wrong
    X̂ (θ identifiability fails there by counting on the sphere: θ = Φ̂ᵀα is
    p equations in n(d − 1) + n unknowns,
    :func:`~rftheory.theory.identifiability.report.counting_limits`); rows of such an X̂ far from every
    ±x_i are points whose features the attack could fit with span Φ's help,
    good starts for the constrained search at larger d.  θ is ``theta`` or,
    if None, the minimum-norm interpolator Φᵀ(ΦΦᵀ)⁻¹y of labels
    y ~ N(0, I_n) drawn from ``numpy.random.default_rng([seed, 7125])``.  The
    attack is :func:`rftheory.attack.reconstruct.reconstruct` with n̂ = n,
    ``restarts`` restarts, seeded by ``seed``, in float64.  Returns an
    (m, d) NumPy array of the rows with dist(x̂) ≥ δ (m = 0 when p > nd,
    when none is far, or when ``model`` is not a RandomFeatures, which the
    attack needs).
    """
    from ...attack.options import AttackOptions  # noqa: PLC0415
    from ...attack.reconstruct import reconstruct  # noqa: PLC0415
    from ...models.random_features import RandomFeatures  # noqa: PLC0415

    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    if p > n * d or p < n or not isinstance(model, RandomFeatures):
        return np.empty((0, d))
    if theta is None:
        Phi = _features(X, V, act)
        y = xp.asarray(np.random.default_rng([seed, 7125]).standard_normal(n))
        theta = Phi.T @ xp.linalg.solve(Phi @ Phi.T, y)
    res = reconstruct(xp.asarray(theta, dtype=np.float64), model, n,
                      AttackOptions(restarts=restarts, seed=seed, dtype="float64"))
    Xh = res.X_hat
    far = to_numpy(sign_aware_distance(Xh, X).distance) >= delta
    return to_numpy(Xh)[far]


def kernel_spurious_gap(
    X,
    activation="relu+tanh",
    *,
    delta: float = DEFAULT_DELTA,
    order: int = DEFAULT_ORDER,
    starts: int = 64,
    max_iter: int = 300,
    seed: int = 0,
) -> float:
    """The p → ∞ prediction gap∞(δ) = min R∞(x̂) over dist(x̂) ≥ δ (same optimiser).

    R∞ is :func:`kernel_residual` (Hermite kernel truncated at ``order``).
    """
    X, xp = _check_sphere(X)
    starts = _check_count("starts", starts)
    n, d = X.shape
    c = cap_cosine(delta)
    w, K = _kernel_parts(X, activation, order)
    rng = np.random.default_rng([seed, 7122])
    nb = starts // 2
    X0 = xp.concatenate([random_sphere(starts - nb, d, rng, xp), _cap_boundary_points(X, c, nb, rng, xp)], axis=0)
    res = riemannian_lbfgs(_kernel_objective(X, w, K), X0[:, None, :], constraint=_ExcludeCaps(X, c), max_iter=max_iter)
    Xh = res.X[:, 0, :]
    dist = to_numpy(sign_aware_distance(Xh, X).distance)
    R = to_numpy(kernel_residual(Xh, X, activation, order))
    ok = dist >= delta - 1e-9
    return float(R[ok].min()) if ok.any() else math.inf


class PathProfile(NamedTuple):
    """R along a great circle: t (points,), X_path (points, d), residual (points,),
    distance (points,) sign-aware to the data, kind, and the kernel-limit R∞ (points,)."""

    t: object
    X_path: object
    residual: object
    distance: object
    kind: str
    kernel_residual: object


PATH_KINDS = ("pair", "random", "antipodal")


def _great_circle(a, b, t, xp):
    d = a.shape[0]
    cosw = float(xp.clip(a @ b / d, -1.0, 1.0))
    w = math.acos(cosw)
    if math.sin(w) < 1e-8:
        raise ValueError("great circle undefined: endpoints are equal or antipodal")
    tt = xp.asarray(t)[:, None]
    return (xp.sin((1 - tt) * w) * a + xp.sin(tt * w) * b) / math.sin(w)


def path_profile(
    X,
    model,
    kind: str = "pair",
    *,
    i: int = 0,
    j: int = 1,
    points: int = 41,
    seed: int = 0,
    order: int = DEFAULT_ORDER,
) -> PathProfile:
    """R(x̂) along a great circle of the √d-sphere starting at x_i.

    kind "pair": x_i → x_j (shortest arc); "random": x_i → a uniform random
    sphere point; "antipodal": x_i → −x_i through a random direction u ⊥ x_i,
    x(t) = cos(πt)·x_i + sin(πt)·√d·u.  t runs over ``points`` values in [0, 1].
    """
    if kind not in PATH_KINDS:
        raise ValueError(f"kind must be one of {PATH_KINDS}, got {kind!r}")
    X, xp = _check_sphere(X)
    n, d = X.shape
    points = _check_count("points", points, 2)
    for name, v in (("i", i), ("j", j)):
        if not 0 <= v < n:
            raise ValueError(f"{name}={v} outside 0..{n - 1}")
    rng = np.random.default_rng([seed, 7123])
    t = np.linspace(0.0, 1.0, points)
    a = X[i]
    if kind == "pair":
        if i == j:
            raise ValueError("kind='pair' needs i ≠ j")
        P = _great_circle(a, X[j], t, xp)
    elif kind == "random":
        P = _great_circle(a, random_sphere(1, d, rng, xp)[0], t, xp)
    else:
        u = xp.asarray(rng.standard_normal(d))
        u = u - (u @ a) / d * a
        u = u / xp.linalg.norm(u)
        tt = xp.asarray(t)[:, None]
        P = xp.cos(math.pi * tt) * a + xp.sin(math.pi * tt) * math.sqrt(d) * u
    P = retract_to_sphere(P)
    R = single_sample_residual(P, X, model)
    dist = sign_aware_distance(P, X).distance
    act = get_activation(model.activation)
    Rk = kernel_residual(P, X, act, order)
    return PathProfile(xp.asarray(t), P, R, dist, kind, Rk)
