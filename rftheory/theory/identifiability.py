r"""Numerical identifiability checks: Theorem 1, Theorem 2 and the supporting lemmas.

Conventions (DESIGN.md): data X ∈ R^{n×d} with rows on the sphere of radius
√d (‖x_i‖ = √d; the checks raise ValueError otherwise), weights V ∈ R^{p×d}
with i.i.d. N(0, 1/d) entries, features φ(x) = σ(Vx) ∈ R^p and
Φ = σ(XVᵀ) ∈ R^{n×p} (no 1/√p).  A "model" is a
:class:`rftheory.models.random_features.RandomFeatures` or any object with
``weights`` (V, p×d) and ``activation``; :class:`FixedWeights` wraps an
explicit V.  Every function takes NumPy or CuPy arrays (the backend of X,
see :func:`rftheory.backend.array_namespace`) and returns the same kind.
Features are recomputed here in float64 (V is promoted whatever the model's
dtype), because the quantities of interest reach round-off level (R(x_i) ≈
1e-16).  The random starts of the searches are drawn on the host from
``numpy.random.default_rng([seed, tag])``, so NumPy and CuPy runs start alike.

Distances
---------
Sign-aware relative distance of x̂ to the data:
``dist(x̂) = min_i min_{s=±1} ‖x̂ − s·x_i‖/‖x_i‖``.  On the √d-sphere
``dist(x̂) ≥ δ  ⇔  |⟨x̂, x_i⟩|/d ≤ c(δ) = 1 − δ²/2`` for every i.

Theorem 1 (one sample)
----------------------
Single-sample residual, the relative distance of φ(x̂) from span{φ(x_i)}:

    R(x̂) = ‖P⊥_Φ φ(x̂)‖ / ‖φ(x̂)‖ ∈ [0, 1],

P⊥_Φ the orthogonal projector onto the complement of the row span of Φ
(computed by :mod:`rftheory.theory.span`).  R(x_i) = 0.  Its square is smooth, with

    ∂R²/∂φ = 2 (r − R² φ)/‖φ‖²,  r = P⊥_Φ φ,
    ∂R²/∂x̂ = Vᵀ [σ'(Vx̂) ⊙ ∂R²/∂φ].

Theorem 1 says that for p ≫ dn, with high probability over V, R(x̂) small
forces x̂ close to some ±x_i.  The *spurious gap* at radius δ is

    gap(δ) = inf { R(x̂) : ‖x̂‖ = √d, dist(x̂) ≥ δ },

estimated (an upper bound on the infimum) by minimising R² over that set from
many starts with a projected Riemannian L-BFGS (below).  Its p → ∞ limit
follows from the kernel: with K∞ = Σ_k μ_k² (XXᵀ/d)^{∘k} and
k(x̂)_i = κ(⟨x̂, x_i⟩/d), κ(ρ) = Σ_k μ_k² ρ^k,

    R∞(x̂)² = 1 − k(x̂)ᵀ K∞⁻¹ k(x̂) / κ(1),

because ΦΦᵀ/p → K∞, Φφ(x̂)/p → k(x̂) and ‖φ(x̂)‖²/p → κ(1) = E[σ²].
:func:`kernel_spurious_gap` minimises R∞ the same way (gradient
∂R∞²/∂x̂ = −(2/κ(1)) Σ_i w_i κ'(ρ_i) x_i/d, w = K∞⁻¹k).

Theorem 2 (n = 2, distinctness)
-------------------------------
For X = (x_1, x_2) and a candidate pair X̂ = (x̂_1, x̂_2) with features Φ̂, the
span mismatch is the relative residual of the true features on span Φ̂,

    M(X̂) = ‖P⊥_Φ̂ Φᵀ‖_F / ‖Φ‖_F  (0 iff span Φ ⊂ span Φ̂).

Its square is a variable-projection loss: α = (Φ̂Φ̂ᵀ)⁻¹Φ̂Φᵀ,
Rm = Φ − αᵀΦ̂, M² = ‖Rm‖²/‖Φ‖², ∂M²/∂Φ̂ = −2 α Rm/‖Φ‖², chained through
σ'(X̂Vᵀ) and V.  :func:`distinctness_check` minimises M over pairs with both
points within distance ε of x_1 (‖x̂_k − x_1‖/√d ≤ ε); Theorem 2 says this
minimum stays away from 0 as p/d grows.

Riemannian optimiser
--------------------
The package's one batched Riemannian L-BFGS
(:func:`rftheory.optim.lbfgs.riemannian_lbfgs`, called through
:func:`riemannian_lbfgs` with this module's settings): m independent
problems, each a (k×d) block of points, are optimised at once with
per-problem memory (10 pairs), step sizes and Armijo back-tracking (at most
25 trial steps).  Directions are projected on the tangent space
(g − ⟨g, x⟩x/‖x‖²) and every step is retracted (x ← √d·x/‖x‖).  Spherical-cap
constraints (caps cut out for Theorem 1, a cap kept for Theorem 2) plug into
the optimiser's constraint hook, an active-set rule: a point on a cap
boundary whose steepest descent leaves the feasible set is *bound* — its
gradient and direction lose the component along the boundary normal ν and
after the step it is put back on the same boundary — and every trial point
is projected on the feasible set.  With g_p the gradient so projected, a
step is accepted when f(x_t) ≤ f(x) + 10⁻⁴·min(⟨g_p, x_t − x⟩, 0) and
f(x_t) ≤ f(x).  A problem stops at f ≤ tol, ‖g_p‖ ≤ 10⁻¹⁰, a stall
(relative decrease below 10⁻⁷ over 10 accepted steps), a failed line search
from the steepest-descent direction, or ``max_iter``
(``stop_reason`` of the result says which).  The result is a local minimum
from each start; the minimum over starts is an upper bound on the global infimum.

Lemmas
------
* Kernel concentration: E = ΦΦᵀ/p − K∞.  Entry (i, j) of ΦΦᵀ/p is a mean of
  p i.i.d. terms φ_ik φ_jk, so E[‖E‖_F²] = Σ_ij v_ij/p (v_ij their
  variance, estimated from the same features).  Predicted ceilings:
  ‖E‖_op ≤ ‖E‖_F ≤ t·(Σ v_ij/p)^{1/2} with probability ≥ 1 − 1/t²
  (Markov), and max|E_ij| ≤ z·max_ij(v_ij/p)^{1/2} with
  z = (2 ln(n(n+1)/α))^{1/2} (Gaussian tail, union over the n(n+1)/2
  entries, level α), both plus the truncation bound of K∞.
* λ_min: by Weyl |λ_min(ΦΦᵀ)/p − λ_min(K∞)| ≤ ‖E‖_op, so the same ceiling
  applies, and λ_min(ΦΦᵀ)/p ≥ λ_min(K∞)/2 once that ceiling is below
  λ_min(K∞)/2.
* Feature norm: for ‖x‖ = √d, ⟨v_k, x⟩ ~ N(0, 1) exactly, so ‖φ(x)‖²/p is a
  mean of p i.i.d. σ(g)² with mean E[σ²] and s.d. ((E[σ⁴] − E[σ²]²)/p)^{1/2}
  (moments by quadrature, independently of V).
* Rank: Φ has full rank min(n, p) (distinct samples, non-polynomial σ),
  numerically by the tolerance rule of :mod:`rftheory.theory.span`.
* Sign lemma: relu(z) − relu(−z) = z, so φ(x) − φ(−x) = Vx exactly for
  ReLU; modulo col([1, V]) the features are even.  The residual of φ(−x) on
  span{φ(x), 1, columns of V} is 0 for σ whose parity report is "exact
  per-sample sign symmetry" or "ambiguous modulo col([1, V])", and positive
  for an identifiable (mixed-parity) σ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..models.activations import Activation, get_activation
from ..backend import array_namespace, to_numpy
from .hermite import hermite_coefficients, kernel_limit, parity_report
from .span import numerical_rank, principal_angles, row_basis, row_residuals
from ..optim.lbfgs import LBFGSResult
from ..optim.lbfgs import riemannian_lbfgs as _lbfgs
from ..optim.sphere import random_sphere, retract_to_sphere
from ..validation import check_count, check_matrix

__all__ = [
    "FixedWeights",
    "Check",
    "sign_aware_distance",
    "cap_cosine",
    "single_sample_residual",
    "kernel_residual",
    "riemannian_lbfgs",
    "OptimResult",
    "ResidualMinima",
    "minimize_residual",
    "SpuriousGap",
    "spurious_gap",
    "kernel_spurious_gap",
    "PathProfile",
    "path_profile",
    "DistinctnessResult",
    "span_mismatch",
    "distinctness_check",
    "KernelConcentration",
    "kernel_concentration",
    "FeatureNorms",
    "feature_norms",
    "activation_moments",
    "feature_rank",
    "SignLemma",
    "sign_lemma",
    "gaussian_union_z",
    "identifiability_checks",
    "CheckReport",
    "Distance",
    "ROUNDOFF_RESIDUAL",
    "GAP_FRACTION",
    "MISMATCH_FLOOR",
    "SIGN_VISIBLE",
    "DEFAULT_ORDER",
    "DEFAULT_DELTA",
    "DEFAULT_EPS",
]

DEFAULT_ORDER = 60  # Hermite order of the kernel predictions (tail ≤ 1e-4 for relu+tanh)
DEFAULT_DELTA = 0.3  # Theorem 1: far region dist(x̂) ≥ δ
DEFAULT_EPS = 0.3  # Theorem 2: both candidates within ε of x_1
SPHERE_RTOL = 1e-6


# =============================================================================
# Models, verdicts, distances
# =============================================================================


class FixedWeights:
    """Feature map φ(x) = σ(Vx) for an explicit weight matrix V (p×d).

    Useful for transformed weights (e.g. V Qᵀ for a rotation Q) that no seed
    produces.  Has the attributes the checks need: ``p, d, weights,
    activation, xp, dtype`` and ``features(X)``.
    """

    def __init__(self, V, activation="relu+tanh"):
        V = check_matrix(V, "V")
        self.xp = array_namespace(V)
        self.dtype = np.dtype(V.dtype) if V.dtype.kind == "f" else np.dtype(np.float64)
        self.weights = self.xp.asarray(V, dtype=self.dtype)
        self.p, self.d = (int(s) for s in V.shape)
        self.activation: Activation = get_activation(activation)

    def features(self, X):
        """Φ = σ(X Vᵀ)."""
        return self.activation.fn(self.xp.asarray(X, dtype=self.dtype) @ self.weights.T)

    def __repr__(self) -> str:
        return f"FixedWeights(p={self.p}, d={self.d}, activation={self.activation.name!r})"


def _weights_act(model, xp, d):
    if not (hasattr(model, "weights") and hasattr(model, "activation")):
        raise TypeError(
            f"model must be a RandomFeatures or FixedWeights (with .weights and .activation), got {type(model).__name__}"
        )
    V = model.weights
    if V.shape[1] != d:
        raise ValueError(f"model has d={V.shape[1]} but the samples have d={d} columns")
    return xp.asarray(V, dtype=np.float64), get_activation(model.activation)


def _features(X, V, act):
    return act.fn(X @ V.T)


def _check_sphere(X, name="X", rtol=SPHERE_RTOL):
    X = check_matrix(X, name)
    xp = array_namespace(X)
    X = xp.asarray(X, dtype=np.float64)
    d = X.shape[1]
    dev = float(xp.max(xp.abs(xp.sum(X * X, axis=1) / d - 1.0)))
    if not dev <= rtol:
        raise ValueError(
            f"rows of {name} must lie on the √d-sphere (‖x‖ = √d = {math.sqrt(d):.6g}); max |‖x‖²/d − 1| = "
            f"{dev:.3g} > {rtol:g}. Rescale them, e.g. with rftheory.data.synthetic.project_to_sphere"
        )
    return X, xp


@dataclass(frozen=True)
class Check:
    """One verdict: ``measured`` compared with a stated ``threshold``.

    ``relation`` is "<=", ">=" or "==" and reads "measured RELATION
    threshold"; ``passed`` is computed from the numbers (NaN fails).
    """

    quantity: str
    measured: float
    threshold: float
    relation: str
    detail: str = ""

    def __post_init__(self):
        if self.relation not in ("<=", ">=", "=="):
            raise ValueError(f"relation must be '<=', '>=' or '==', got {self.relation!r}")

    @property
    def passed(self) -> bool:
        m, t = float(self.measured), float(self.threshold)
        if math.isnan(m) or math.isnan(t):
            return False
        if self.relation == "<=":
            return m <= t
        if self.relation == ">=":
            return m >= t
        return m == t

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


class Distance(NamedTuple):
    """``distance`` min_{i,s} ‖x̂ − s x_i‖/‖x_i‖, with the minimising ``index`` and ``sign``."""

    distance: object
    index: object
    sign: object


def sign_aware_distance(X_hat, X) -> Distance:
    """Sign-aware relative distance of each row of X̂ to the nearest ±x_i.

    dist(x̂) = min_i min_{s=±1} ‖x̂ − s x_i‖/‖x_i‖ (any norms; on the
    √d-sphere it is √(2 − 2|⟨x̂, x_i⟩|/d)).
    """
    X_hat = check_matrix(X_hat, "X_hat")
    X = check_matrix(X, "X", cols=X_hat.shape[1], cols_name="d (columns of X_hat)")
    xp = array_namespace(X_hat, X)
    A = xp.asarray(X_hat, dtype=np.float64)
    B = xp.asarray(X, dtype=np.float64)
    nb = xp.sum(B * B, axis=1)
    na = xp.sum(A * A, axis=1)
    G = A @ B.T
    d2 = na[:, None] + nb[None, :] - 2.0 * xp.abs(G)
    rel = xp.sqrt(xp.maximum(d2, 0.0) / nb[None, :])
    idx = xp.argmin(rel, axis=1)
    ar = xp.arange(A.shape[0])
    sign = xp.where(G[ar, idx] >= 0, 1.0, -1.0)
    return Distance(rel[ar, idx], idx, sign)


def cap_cosine(delta: float) -> float:
    """c(δ) = 1 − δ²/2: on the sphere, ‖x̂ − x‖/‖x‖ ≥ δ ⇔ ⟨x̂, x⟩/d ≤ c(δ)."""
    if not (isinstance(delta, (int, float, np.floating)) and 0 < delta < math.sqrt(2)):
        raise ValueError(f"the distance threshold must lie in (0, √2), got {delta!r}")
    return 1.0 - 0.5 * float(delta) ** 2


# =============================================================================
# Theorem 1: single-sample residual
# =============================================================================


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


# =============================================================================
# Batched Riemannian L-BFGS on products of spheres
# =============================================================================


OptimResult = LBFGSResult  # the record of rftheory.optim.lbfgs: X, f, iterations, evaluations, stop_reason, history


def riemannian_lbfgs(
    fun,
    X0,
    *,
    constraint=None,
    max_iter: int = 300,
    tol: float = -math.inf,
    grad_tol: float = 1e-10,
    memory: int = 10,
    stall_window: int = 10,
    stall_rtol: float = 1e-7,
    max_backtracks: int = 25,
) -> OptimResult:
    """Minimise m independent objectives on products of √d-spheres at once, with this module's settings.

    The package's one optimiser (:func:`rftheory.optim.lbfgs.riemannian_lbfgs`)
    with a Euclidean-gradient objective; the starts are retracted to the
    √d-sphere and projected on the feasible set first.

    Parameters
    ----------
    fun : callable
        ``fun(X) -> (f, G)`` for X of shape (m', k, d): values f (m',) and
        Euclidean gradients G (m', k, d), problem by problem (the same
        function for every problem; it is called on subsets of problems).
    X0 : array (m, k, d)
        Starting points.
    constraint : optional
        A spherical-cap constraint (``_ExcludeCaps`` or ``_KeepCap``), the
        optimiser's constraint hook (active-set rule on the cap boundaries);
        None: no constraint.
    tol : float
        A problem stops once f ≤ tol (default −inf: no target value).
    max_iter, grad_tol, memory, stall_window, stall_rtol, max_backtracks
        See the module docstring.  The defaults: 10 pairs suffice for the
        k·d-dimensional problems here; the stall test is finer (10⁻⁷) than the
        attack's because these searches estimate minima, not just reach a tolerance.
    """
    xp = array_namespace(X0)
    X = xp.asarray(X0, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"X0 must have shape (m, k, d), got {tuple(X.shape)}")
    X = retract_to_sphere(X)
    if constraint is not None:
        X = constraint.project(X)
    res = _lbfgs(fun, X, max_iter=max_iter, tol=tol, grad_tol=grad_tol, memory=memory, stall_window=stall_window,
                 stall_rtol=stall_rtol, max_backtracks=max_backtracks, gradient="euclidean", constraint=constraint)
    return res._replace(f=xp.asarray(res.f), iterations=xp.asarray(res.iterations))


# =============================================================================
# Constraint sets: caps cut out (Theorem 1) or kept (Theorem 2)
# =============================================================================

ACTIVE_TOL = 1e-9  # a point is on a cap boundary when its cosine is within this of c


def _orthogonal_unit(U, a, xp):
    """Unit vectors along the part of U's rows orthogonal to the unit rows of a."""
    w = U - xp.sum(U * a, axis=-1, keepdims=True) * a
    wn = xp.linalg.norm(w, axis=-1, keepdims=True)
    # degenerate (U = ±a): use the basis vector least aligned with a
    e = xp.eye(U.shape[-1])[xp.argmin(xp.abs(a), axis=-1)]
    e = e - xp.sum(e * a, axis=-1, keepdims=True) * a
    e = e / xp.maximum(xp.linalg.norm(e, axis=-1, keepdims=True), 1e-300)
    return xp.where(wn > 1e-12, w / xp.maximum(wn, 1e-300), e)


class _Caps:
    """Common part of the spherical-cap constraints.

    A cap around the unit vector a is {x : ⟨x, a⟩/‖x‖ ≥ c}.  ``snap`` puts
    x on its boundary along the great circle through a:
    x ← ‖x‖(c·a + √(1 − c²)·u), u the unit part of x orthogonal to a.
    ``outward`` is +1 when the cap is the infeasible side (excluded caps)
    and −1 when it is the feasible side (kept cap); ν, the unit tangent
    normal pointing out of the feasible set, is outward·(a − ⟨a, x̂⟩x̂)/‖·‖.
    """

    outward = 1.0

    def _setup(self, xp, c):
        self.xp = xp
        self.c = float(c)
        self.s = math.sqrt(max(1.0 - self.c**2, 0.0))

    def snap(self, Xb, anchors, mask):
        xp = self.xp
        shape = Xb.shape
        Xr = Xb.reshape(-1, shape[-1])
        A = anchors.reshape(-1, shape[-1])
        radius = xp.linalg.norm(Xr, axis=1, keepdims=True)
        U = Xr / radius
        new = (self.c * A + self.s * _orthogonal_unit(U, A, xp)) * radius
        return xp.where(mask.reshape(-1)[:, None], new, Xr).reshape(shape)  # unmasked rows untouched

    def normal_to(self, Xb, anchors):
        xp = self.xp
        U = Xb / xp.linalg.norm(Xb, axis=-1, keepdims=True)
        nu = anchors - xp.sum(anchors * U, axis=-1, keepdims=True) * U
        return self.outward * nu / xp.maximum(xp.linalg.norm(nu, axis=-1, keepdims=True), 1e-300)


class _ExcludeCaps(_Caps):
    """Feasible set {x : |⟨x, x_i⟩|/(‖x‖‖x_i‖) ≤ c ∀i} (distance ≥ δ from every ±x_i).

    ``project`` moves a point inside a cap to the boundary of that cap along
    the great circle through its centre, most violated cap first, repeated
    until no cap is violated (at most 2n + 2 rounds).
    """

    outward = 1.0

    def __init__(self, X, c):
        xp = array_namespace(X)
        self._setup(xp, c)
        self.anchors = X / xp.linalg.norm(X, axis=1, keepdims=True)
        self.rounds = 2 * X.shape[0] + 2

    def _worst(self, U):
        xp = self.xp
        C = U @ self.anchors.T
        A = xp.abs(C)
        worst = xp.argmax(A, axis=1)
        ar = xp.arange(U.shape[0])
        sign = xp.where(C[ar, worst] >= 0, 1.0, -1.0)
        return A[ar, worst], self.anchors[worst] * sign[:, None]

    def project(self, Xb):
        xp = self.xp
        shape = Xb.shape
        Xr = Xb.reshape(-1, shape[-1])
        for _ in range(self.rounds):
            U = Xr / xp.linalg.norm(Xr, axis=1, keepdims=True)
            cw, a = self._worst(U)
            viol = cw > self.c
            if not bool(xp.any(viol)):
                break
            Xr = self.snap(Xr, a, viol)
        return Xr.reshape(shape)

    def boundary(self, Xb):
        """(ν, on-boundary mask, signed anchor of the nearest cap) per point."""
        xp = self.xp
        shape = Xb.shape
        U = Xb.reshape(-1, shape[-1])
        U = U / xp.linalg.norm(U, axis=1, keepdims=True)
        cw, a = self._worst(U)
        a = a.reshape(shape)
        return self.normal_to(Xb, a), (cw >= self.c - ACTIVE_TOL).reshape(shape[:-1]), a


class _KeepCap(_Caps):
    """Feasible set {x : ⟨x, a⟩/(‖x‖‖a‖) ≥ c} (every point within δ of the anchor a)."""

    outward = -1.0

    def __init__(self, anchor, c):
        xp = array_namespace(anchor)
        self._setup(xp, c)
        self.a = anchor / xp.linalg.norm(anchor)

    def project(self, Xb):
        xp = self.xp
        U = Xb / xp.linalg.norm(Xb, axis=-1, keepdims=True)
        A = xp.broadcast_to(self.a, Xb.shape)
        return self.snap(Xb, A, (xp.sum(U * A, axis=-1) < self.c))

    def boundary(self, Xb):
        xp = self.xp
        U = Xb / xp.linalg.norm(Xb, axis=-1, keepdims=True)
        A = xp.broadcast_to(self.a, Xb.shape)
        return self.normal_to(Xb, A), xp.sum(U * A, axis=-1) <= self.c + ACTIVE_TOL, A


def _cap_boundary_points(X, c, m, rng, xp):
    """m points on the boundaries {|cos(x, x_i)| = c}, cycling through ±x_i."""
    n, d = X.shape
    Xh = to_numpy(X)
    out = np.empty((m, d))
    for j in range(m):
        i = j % n
        sgn = 1.0 if (j // n) % 2 == 0 else -1.0
        a = sgn * Xh[i] / np.linalg.norm(Xh[i])
        u = rng.standard_normal(d)
        u -= (u @ a) * a
        u /= np.linalg.norm(u)
        out[j] = math.sqrt(d) * (c * a + math.sqrt(1 - c * c) * u)
    return xp.asarray(out)


# =============================================================================
# Theorem 1: minimisation and spurious gap
# =============================================================================


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


def _check_count(name, v, lo=1):
    return check_count(v, name, minimum=lo)


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
) -> SpuriousGap:
    """gap(δ) = min R(x̂) over ‖x̂‖ = √d, dist(x̂) ≥ δ, plus unconstrained minima statistics.

    ``starts`` constrained runs (half on the cap boundaries) estimate the
    gap (an upper bound on the infimum); ``free_starts`` (default
    ``starts``) unconstrained runs from uniform starts tell how often a plain
    descent lands on a true ±x_i and how low far (spurious) minima go.
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    cons = minimize_residual(X, model, starts=starts, delta=delta, max_iter=max_iter, seed=seed)
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


# =============================================================================
# Theorem 2: distinctness for n = 2
# =============================================================================


def _mismatch_objective(T, V, act):
    """M(X̂)² = ‖P⊥_Φ̂ Tᵀ‖²/‖T‖² per problem (X̂: (m, k, d)) and its gradient."""
    xp = array_namespace(T)
    tt = float(xp.sum(T * T))

    def fun(Xb):
        Z = Xb @ V.T  # (m, k, p)
        F = act.fn(Z)
        A = F @ xp.swapaxes(F, 1, 2)  # (m, k, k)
        B = F @ T.T  # (m, k, C)
        try:
            alpha = xp.linalg.solve(A, B)
        except Exception:  # exactly singular Gram (coincident candidates)
            alpha = xp.linalg.pinv(A) @ B
        Rm = T[None] - xp.swapaxes(alpha, 1, 2) @ F  # (m, C, p)
        L = xp.sum(Rm * Rm, axis=(1, 2)) / tt
        dF = (-2.0 / tt) * (alpha @ Rm)  # (m, k, p)
        G = (dF * act.deriv(Z)) @ V
        return L, G

    return fun


def span_mismatch(X_hat, X, model):
    """M(X̂) = ‖P⊥_Φ̂ Φᵀ‖_F/‖Φ‖_F: relative residual of the true features on span σ(X̂Vᵀ)."""
    X = check_matrix(X, "X")
    X_hat = check_matrix(X_hat, "X_hat", cols=X.shape[1], cols_name="d (columns of X)")
    xp = array_namespace(X_hat, X)
    V, act = _weights_act(model, xp, X.shape[1])
    Phi = _features(xp.asarray(X, dtype=np.float64), V, act)
    Phi_hat = _features(xp.asarray(X_hat, dtype=np.float64), V, act)
    r = row_residuals(Phi, Phi_hat)
    return float(xp.sqrt(xp.sum(r.absolute**2) / xp.sum(r.norms**2)))


class DistinctnessResult(NamedTuple):
    """Theorem 2 figures for one (x_1, x_2, V).

    mismatch : min M(x̂_1, x̂_2) found with both candidates within ε of x_1.
    angle : largest principal angle (rad) between span Φ̂ and span Φ at that pair.
    pair : the pair found (2, d).
    distances : ‖x̂_k − x_1‖/√d of both candidates.
    truth_mismatch : M(x_1, x_2) (round-off floor).
    eps, p, d, ratio (= p/d).
    """

    mismatch: float
    angle: float
    pair: object
    distances: object
    truth_mismatch: float
    eps: float
    p: int
    d: int
    ratio: float


def distinctness_check(
    X,
    model,
    *,
    eps: float = DEFAULT_EPS,
    starts: int = 16,
    max_iter: int = 300,
    seed: int = 0,
) -> DistinctnessResult:
    """min M(x̂_1, x̂_2) over pairs with ‖x̂_k − x_1‖/√d ≤ ε (Theorem 2, n = 2).

    X must have exactly two rows on the √d-sphere.  Starts: pairs of
    independent points drawn uniformly in angle inside the cap around x_1.
    """
    X, xp = _check_sphere(X)
    if X.shape[0] != 2:
        raise ValueError(f"the Theorem 2 check is for n = 2 samples, got n = {X.shape[0]}")
    starts = _check_count("starts", starts)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    c = cap_cosine(eps)
    rng = np.random.default_rng([seed, 7124])
    a = to_numpy(X[0]) / math.sqrt(d)
    theta_max = math.acos(c)
    P0 = np.empty((starts, 2, d))
    for s in range(starts):
        for k in range(2):
            u = rng.standard_normal(d)
            u -= (u @ a) * a
            u /= np.linalg.norm(u)
            th = rng.uniform(0.0, theta_max)
            P0[s, k] = math.sqrt(d) * (math.cos(th) * a + math.sin(th) * u)
    Phi = _features(X, V, act)
    res = riemannian_lbfgs(_mismatch_objective(Phi, V, act), xp.asarray(P0), constraint=_KeepCap(X[0], c), max_iter=max_iter)
    Ms = [span_mismatch(res.X[s], X, model) for s in range(starts)]
    b = int(np.argmin(Ms))
    pair = res.X[b]
    ang = principal_angles(_features(pair, V, act), Phi)
    dist = xp.linalg.norm(pair - X[0][None, :], axis=1) / math.sqrt(d)
    return DistinctnessResult(
        mismatch=float(Ms[b]),
        angle=float(ang[0]) if ang.size else math.pi / 2,
        pair=pair,
        distances=dist,
        truth_mismatch=span_mismatch(X, X, model),
        eps=float(eps),
        p=p,
        d=d,
        ratio=p / d,
    )


# =============================================================================
# Lemmas
# =============================================================================


def gaussian_union_z(count: int, alpha: float = 0.01) -> float:
    """z with count·P(|N(0,1)| > z) ≤ α via the tail bound P(|N| > z) ≤ 2e^{−z²/2}: z = (2 ln(2·count/α))^{1/2}."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return math.sqrt(2.0 * math.log(2.0 * max(int(count), 1) / alpha))


class KernelConcentration(NamedTuple):
    """Kernel lemma figures for one (X, V).

    op_error, max_error : ‖ΦΦᵀ/p − K∞‖ in operator and max norm.
    fro_scale : (Σ_ij v_ij/p)^{1/2} = (E‖E‖_F²)^{1/2} (v_ij from the features).
    max_scale : max_ij (v_ij/p)^{1/2}.
    kernel_bound : entrywise truncation bound of K∞ (kernel_limit).
    op_ceiling : markov_t·fro_scale + n·kernel_bound (≥ ‖E‖_op w.p. ≥ 1 − 1/t²).
    max_ceiling : z·max_scale + kernel_bound (z = gaussian_union_z(n(n+1)/2, α)).
    lambda_min_emp : λ_min(ΦΦᵀ)/p.   lambda_min_inf : λ_min(K∞).
    n, p.
    """

    op_error: float
    max_error: float
    fro_scale: float
    max_scale: float
    kernel_bound: float
    op_ceiling: float
    max_ceiling: float
    lambda_min_emp: float
    lambda_min_inf: float
    n: int
    p: int


def kernel_concentration(
    X, model, *, order: int = DEFAULT_ORDER, markov_t: float = 10.0, alpha: float = 0.01
) -> KernelConcentration:
    """‖ΦΦᵀ/p − K∞‖ (op and max), its predicted ceilings, and λ_min(ΦΦᵀ)/p vs λ_min(K∞).

    K∞ from :func:`rftheory.theory.hermite.kernel_limit` at ``order``; see the
    module docstring for the ceilings.
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    Phi = _features(X, V, act)
    emp = Phi @ Phi.T / p
    kl = kernel_limit(X, act, order)
    K = xp.asarray(kl.kernel, dtype=np.float64)
    E = emp - K
    op = float(xp.max(xp.abs(xp.linalg.eigvalsh(E))))  # E is symmetric: ‖E‖_op = max |eigenvalue|
    mx = float(xp.max(xp.abs(E)))
    # per-entry variance of φ_ik φ_jk over k (unbiased), without forming n×n×p at once
    var = xp.empty((n, n))
    for i in range(n):
        prod = Phi[i][None, :] * Phi  # (n, p)
        var[i] = xp.var(prod, axis=1, ddof=1) if p > 1 else 0.0
    fro_scale = math.sqrt(float(xp.sum(var)) / p)
    max_scale = math.sqrt(float(xp.max(var)) / p)
    z = gaussian_union_z(n * (n + 1) // 2, alpha)
    lam_emp = float(xp.linalg.eigvalsh(emp)[0])
    lam_inf = float(xp.linalg.eigvalsh(K)[0])
    return KernelConcentration(
        op_error=op,
        max_error=mx,
        fro_scale=fro_scale,
        max_scale=max_scale,
        kernel_bound=kl.error_bound,
        op_ceiling=markov_t * fro_scale + n * kl.error_bound,
        max_ceiling=z * max_scale + kl.error_bound,
        lambda_min_emp=lam_emp,
        lambda_min_inf=lam_inf,
        n=n,
        p=p,
    )


def activation_moments(activation) -> tuple[float, float]:
    """(E[σ(g)²], E[σ(g)⁴]) for g ~ N(0, 1) by adaptive quadrature (scipy.integrate.quad).

    Independent of the Hermite coefficients and of any V.
    """
    from scipy.integrate import quad  # noqa: PLC0415

    act = get_activation(activation)

    def moment(q):
        def f(x):
            return float(act.fn(np.asarray([x]))[0]) ** q * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

        tot = 0.0
        for lo, hi in ((-math.inf, -8.0), (-8.0, 0.0), (0.0, 8.0), (8.0, math.inf)):
            tot += quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        return tot

    return moment(2), moment(4)


class FeatureNorms(NamedTuple):
    """‖φ(x_i)‖²/p per sample, E[σ²], the predicted s.d. ((E σ⁴ − (E σ²)²)/p)^{1/2},
    the max standardised deviation, and its ceiling z = gaussian_union_z(n, α)."""

    norms_sq: object
    second_moment: float
    sd: float
    max_z: float
    ceiling: float


def feature_norms(X, model, *, alpha: float = 0.01, moments=None) -> FeatureNorms:
    """‖φ(x_i)‖²/p vs E[σ²] for rows on the √d-sphere (⟨v_k, x⟩ ~ N(0, 1) exactly)."""
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    m2, m4 = activation_moments(act) if moments is None else moments
    sd = math.sqrt(max(m4 - m2 * m2, 0.0) / p)
    Phi = _features(X, V, act)
    ns = xp.sum(Phi * Phi, axis=1) / p
    max_z = float(xp.max(xp.abs(ns - m2))) / sd if sd > 0 else math.inf
    return FeatureNorms(ns, m2, sd, max_z, gaussian_union_z(n, alpha))


def feature_rank(X, model, *, rtol=None) -> tuple[int, int]:
    """(numerical rank of Φ, predicted min(n, p))."""
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    V, act = _weights_act(model, xp, X.shape[1])
    Phi = _features(xp.asarray(X, dtype=np.float64), V, act)
    return numerical_rank(Phi, rtol=rtol), min(Phi.shape)


class SignLemma(NamedTuple):
    """Sign lemma figures.

    identity_error : max|φ(x) − φ(−x) − Vx| / max|Vx| (0 for ReLU in exact arithmetic;
        reported for every σ, meaningful for ReLU).
    affine_residual : max_i residual of φ(−x_i) on span{φ(x_i), 1, columns of V}.
    span_flip_residual : max_i residual of φ(−x_i) on span Φ (all samples).
    prediction : hermite.parity_report verdict for σ.
    """

    identity_error: float
    affine_residual: float
    span_flip_residual: float
    prediction: str


def sign_lemma(X, model, *, order: int = 20) -> SignLemma:
    """Measure the sign (parity) structure of the features; see the module docstring."""
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    X = xp.asarray(X, dtype=np.float64)
    V, act = _weights_act(model, xp, X.shape[1])
    p = V.shape[0]
    Z = X @ V.T
    F, Fm = act.fn(Z), act.fn(-Z)
    ident = float(xp.max(xp.abs(F - Fm - Z)) / xp.max(xp.abs(Z)))
    aff = 0.0
    for i in range(X.shape[0]):
        A = xp.concatenate([F[i][None, :], xp.ones((1, p)), V.T], axis=0)
        aff = max(aff, float(row_residuals(Fm[i][None, :], A).relative[0]))
    flip = float(xp.max(row_residuals(Fm, F).relative))
    return SignLemma(ident, aff, flip, parity_report(act, order).prediction)


# =============================================================================
# The verdict table of `rftheory check`
# =============================================================================


@dataclass
class CheckReport:
    """Checks for one configuration plus the raw results they came from."""

    checks: list = field(default_factory=list)
    results: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


ROUNDOFF_RESIDUAL = 1e-10  # "≈ 0": ~1e6·ε of float64 on relative residuals
GAP_FRACTION = 0.5  # Theorem 1 verdict: gap ≥ ½ of its kernel-limit value
MISMATCH_FLOOR = 0.05  # Theorem 2 verdict: min mismatch stays ≥ this
SIGN_VISIBLE = 1e-3  # sign lemma: a flip is visible when its residual is ≥ this


def identifiability_checks(
    X,
    model,
    *,
    delta: float = DEFAULT_DELTA,
    eps: float = DEFAULT_EPS,
    starts: int = 32,
    max_iter: int = 300,
    order: int = DEFAULT_ORDER,
    seed: int = 0,
    theorem2: bool = True,
) -> CheckReport:
    """All checks for one (X, V, σ): a list of :class:`Check` verdicts.

    Thresholds (stated here and in the table):

    * R(x_i) ≤ 1e-10 (round-off) for the true samples;
    * rank Φ = min(n, p);
    * ‖ΦΦᵀ/p − K∞‖_op ≤ op_ceiling and max-norm ≤ max_ceiling
      (:func:`kernel_concentration`);
    * |λ_min(ΦΦᵀ)/p − λ_min(K∞)| ≤ op_ceiling;
    * max_i |‖φ(x_i)‖²/p − E σ²|/sd ≤ z (:func:`feature_norms`);
    * spurious gap(δ) ≥ ½·gap∞(δ) (kernel-limit prediction);
    * Theorem 2 (first two samples): min mismatch ≥ 0.05;
    * sign lemma: the flip residual modulo col([1, V]) is ≤ 1e-10 when the
      parity report predicts an ambiguity and ≥ 1e-3 when it predicts
      identifiability.
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    rep = CheckReport()
    C = rep.checks
    truth = float(xp.max(single_sample_residual(X, X, model)))
    C.append(Check("max_i R(x_i) (true samples in span)", truth, ROUNDOFF_RESIDUAL, "<=", "round-off level"))
    rank, pred = feature_rank(X, model)
    C.append(Check("rank Φ", rank, pred, "==", "full rank min(n, p)"))
    kc = kernel_concentration(X, model, order=order)
    rep.results["kernel"] = kc
    C.append(Check("‖ΦΦᵀ/p − K∞‖_op", kc.op_error, kc.op_ceiling, "<=", "10·(E‖E‖_F²)^½ + n·trunc (Markov, 99%)"))
    C.append(Check("max|ΦΦᵀ/p − K∞|", kc.max_error, kc.max_ceiling, "<=", "Gaussian union bound, α = 0.01"))
    C.append(Check("|λ_min(ΦΦᵀ)/p − λ_min(K∞)|", abs(kc.lambda_min_emp - kc.lambda_min_inf), kc.op_ceiling, "<=",
                   f"Weyl; λ_min(K∞) = {kc.lambda_min_inf:.4g}"))
    fn = feature_norms(X, model)
    rep.results["norms"] = fn
    C.append(Check("max_i |‖φ(x_i)‖²/p − Eσ²|/sd", fn.max_z, fn.ceiling, "<=", f"Eσ² = {fn.second_moment:.4g}, sd = {fn.sd:.2e}"))
    sg = spurious_gap(X, model, delta=delta, starts=starts, max_iter=max_iter, seed=seed)
    rep.results["gap"] = sg
    gk = kernel_spurious_gap(X, act, delta=delta, order=order, starts=starts, max_iter=max_iter, seed=seed)
    rep.results["gap_kernel"] = gk
    C.append(Check(f"spurious gap min R(dist ≥ {delta:g})", sg.gap, GAP_FRACTION * gk, ">=",
                   f"½ × kernel-limit gap {gk:.4f}; p/(dn) = {sg.ratio:.3g}"))
    if theorem2 and n >= 2:
        dc = distinctness_check(X[:2], model, eps=eps, starts=max(4, starts // 4), max_iter=max_iter, seed=seed)
        rep.results["distinct"] = dc
        C.append(Check(f"Thm 2: min mismatch, both x̂ within {eps:g} of x_1", dc.mismatch, MISMATCH_FLOOR, ">=",
                       f"p/d = {dc.ratio:.3g}, largest angle {dc.angle:.3f} rad"))
    sl = sign_lemma(X, model)
    rep.results["sign"] = sl
    from .hermite import IDENTIFIABLE  # noqa: PLC0415

    if sl.prediction == IDENTIFIABLE:
        C.append(Check("sign flip residual mod col([1,V])", sl.affine_residual, SIGN_VISIBLE, ">=", sl.prediction))
    else:
        C.append(Check("sign flip residual mod col([1,V])", sl.affine_residual, ROUNDOFF_RESIDUAL, "<=", sl.prediction))
    return rep
