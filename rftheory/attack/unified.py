"""The unified formulation of the attack on a trained network (the adapters of :mod:`rftheory.models.adapters`).

The attacker holds the trained parameters θ_T and, when the file carries them, the
initial ones θ₀.  Every form below is the same projection loss (:mod:`rftheory.attack.loss`):
the distance of a target matrix Θ from the span of per-sample gradients g(x̂_i),

    L(X̂) = min_α ‖Θ − Σ_i g(x̂_i) α_iᵀ‖_F² / ‖Θ‖_F²,

for the head W_L ∈ R^{C×p_L}, whose per-sample gradient of output c is e_c ⊗ h(x), so
g(x) = h(x) ∈ R^{p_L} and one n×n Gram solve serves all C outputs.  The forms differ in
the target, the point where h is evaluated, and the multipliers α (:data:`FORMS`):

``"span-init"``
    Θ = (W_L,T − c·W_L,0)ᵀ, features h₀(x) = h(x; body at θ₀), α free.  Any optimiser
    whose update is a fixed linear combination of past minibatch gradients (SGD,
    momentum, Nesterov; weight decay folded into the scalar c, below) moves the head by
    Σ_t Σ_i h_t(x_i) β_{t,i}ᵀ with h_t = h(·; body at step t).  In the lazy regime h_t ≈ h₀,
    so Θ is in span{h₀(x_i)} up to the body's drift: the lazy/NTK form (Loo et al.),
    the gradients taken at θ₀.  The body moves least early, when the loss gradients
    β_{t,i} are largest, so θ₀ is the point with the lowest floor for SGD runs.
``"span-trained"``
    Same Θ, features h_T at the trained body: exact when only the head was trained
    (then h_t = h₀ = h_T), the package's original adapter attack.
``"kkt"``
    Θ = W_L,Tᵀ (no initialisation needed), features h_T, and for C ≥ 2 outputs the
    multipliers of a KKT point of margin maximisation (Haim et al. 2022; Buzaglo et al.
    2023, multiclass): α_i = Σ_{j≠y_i} λ_ij (e_{y_i} − e_j) with λ_ij ≥ 0, i.e. one entry
    ≥ 0 (the class y_i, unknown to the attacker and read off as the largest entry of the
    free solution), the others ≤ 0, summing to 0.  The projection loss is invariant to
    the scale of Θ, so the margin normalisation of those papers drops out.  It holds when
    the trained weights dominate their initialisation (small init, long training on a
    cross-entropy or logistic loss); with weight decay λ_wd the stationarity condition
    θ = −∇ℓ/λ_wd has the same form.  For C = 1 the sign of λ_i y_i is free: α is free.

The first layer of a dense network (``"subspace"``).  Its per-sample gradient is
∂ℓ(x_i)/∂W₁ = a_i x_iᵀ, so for the optimisers above

    W₁,T = c · W₁,0 + A X,      A ∈ R^{m×n},

exactly: every update is a linear combination of past gradients and (weight decay
λ_wd) of the current weights, a linear recurrence with scalar coefficients, so the
initialisation survives scaled by one number c (c = 1 without weight decay).  The rows
of W₁,T − c·W₁,0 therefore span the training inputs' subspace span{x_i}: the rank is n,
and the attack can search each x̂_i in that n-dimensional subspace instead of R^d
(:func:`data_subspace`, :class:`SubspaceMap`).  Adam, RMSProp and other per-coordinate
optimisers rescale each entry of the update, which breaks this identity and every span
form above; the subspace's tail energy (the part of W₁,T − c·W₁,0 outside its best
rank-n approximation) measures the breach.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import to_numpy
from ..linalg import gram_solve
from .subspace_estimate import estimate_subspace

__all__ = ["Formulation", "FORMS", "DataSubspace", "data_subspace", "decay_factor", "SubspaceMap",
           "model_at", "target_matrix", "span_state", "kkt_multipliers", "KKTHead"]

TARGETS = ("delta", "trained")
POINTS = ("init", "trained")
MULTIPLIERS = ("free", "kkt")

# The span identity is judged on the energy of W₁,T − c·W₁,0 beyond rank n, in two units.
# Relative to the update's energy it is 4e-8 … 2e-5 on exact-span runs (SGD with momentum, weight
# decay, full-batch GD; float32 files, whose rounding is the whole tail) and 6e-2 for Adam: it
# holds below SPAN_HOLDS and is violated above SPAN_VIOLATED.  Relative to the weights' own energy
# (the scale of their rounding, about T·ε² after T float32 steps: ~1e-11 measured) a tail below
# ROUNDING_LEVEL is rounding whatever the update's size: a body that barely moved has a small
# update and a large relative tail of pure rounding.
SPAN_HOLDS = 1e-3
SPAN_VIOLATED = 1e-2
ROUNDING_LEVEL = 1e-9
# A singular value counts as signal (a sample encoded above the rounding noise) when it is
# this many times the median of the tail beyond rank n (the noise plateau).
SIGNAL_OVER_NOISE = 10.0


@dataclass(frozen=True)
class Formulation:
    """One point of the unified formulation (module docstring).

    Attributes
    ----------
    target : "delta" or "trained"
        Θ = (W_L,T − c·W_L,0)ᵀ, or W_L,Tᵀ (no initialisation needed).
    point : "init" or "trained"
        Where the per-sample gradients (the features h) are taken: θ₀ or θ_T.
    multipliers : "free" or "kkt"
        α by least squares, or constrained to a multiclass KKT point (``kkt_multipliers``).
    subspace : bool
        Search x̂_i in the data subspace of the first layer (dense first layers only).
    """

    target: str = "delta"
    point: str = "init"
    multipliers: str = "free"
    subspace: bool = True

    def __post_init__(self):
        for name, allowed in (("target", TARGETS), ("point", POINTS), ("multipliers", MULTIPLIERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.point == "init" and self.target == "trained":
            raise ValueError("target='trained' (no initialisation) cannot take gradients at θ₀")

    def describe(self) -> str:
        tgt = "Δθ = θ_T − c·θ₀" if self.target == "delta" else "θ_T"
        pt = "θ₀" if self.point == "init" else "θ_T"
        mult = "free multipliers" if self.multipliers == "free" else "KKT-constrained multipliers"
        sub = ", candidates in the first layer's data subspace" if self.subspace else ""
        return f"head target {tgt}, gradients at {pt}, {mult}{sub}"


FORMS = {
    "span-init": Formulation("delta", "init", "free", True),
    "span-trained": Formulation("delta", "trained", "free", True),
    "kkt": Formulation("trained", "trained", "kkt", True),
}


@dataclass
class DataSubspace:
    """The training inputs' subspace read from a dense first layer (:func:`data_subspace`), with the
    decay factor c and the figures the verdict reads (the SVD itself is
    :func:`rftheory.attack.subspace_estimate.estimate_subspace`'s).

    Attributes
    ----------
    basis : ndarray (d, k)
        Orthonormal basis: the top-k right singular vectors of W₁,T − c·W₁,0.
    c : float
        Decay factor of the initialisation (1 without weight decay).
    singular_values : ndarray
        All singular values of W₁,T − c·W₁,0, divided by the largest.
    tail_energy : float
        Σ_{j>k} s_j² / Σ_j s_j²: the update's energy beyond rank k relative to its own;
        0 up to rounding when the span identity holds.
    tail_weights : float
        Σ_{j>k} s_j² / ‖W₁,T‖_F²: the same energy relative to the weights' (the scale of
        their rounding).
    signal_rank : int
        Singular values above SIGNAL_OVER_NOISE × the noise plateau: the samples whose
        updates rise above the file's rounding noise (≤ k).
    usable : bool
        False when the subspace is all of R^d (n ≥ d) and carries no information.
    """

    basis: np.ndarray
    c: float
    singular_values: np.ndarray
    tail_energy: float
    tail_weights: float
    signal_rank: int
    usable: bool
    notes: list = field(default_factory=list)


def decay_factor(trained, init, k: int, *, max_iter: int = 100) -> float:
    """c such that W_T − c·W₀ is closest to rank k (module docstring: the weight-decay factor).

    Alternating least squares from c = 1: P = the top-k right singular subspace of
    W_T − c·W₀, then c ← ⟨W_T P⊥, W₀ P⊥⟩ / ‖W₀ P⊥‖² (the c minimising the energy outside
    P), until c changes by less than 1e-15 relative.  Without weight decay the fixed
    point is c = 1 up to rounding.
    """
    T = np.asarray(trained, dtype=np.float64)
    I0 = np.asarray(init, dtype=np.float64)
    c = 1.0
    for _ in range(max_iter):
        Vt = np.linalg.svd(T - c * I0, full_matrices=False)[2]
        Q = Vt[:k].T
        TP = T - (T @ Q) @ Q.T
        IP = I0 - (I0 @ Q) @ Q.T
        den = float((IP * IP).sum())
        if den == 0.0:
            return c
        new = float((TP * IP).sum()) / den
        if abs(new - c) <= 1e-15 * max(1.0, abs(c)):
            return new
        c = new
    return c


def data_subspace(model, n: int) -> DataSubspace:
    """Estimate span{x_i} from the first layer of a dense network (module docstring).

    ``model`` must have ``params["hidden.weight"]`` and ``init_params["hidden.weight"]``
    (m×d).  The bias is left out: optimisers often exempt biases from weight decay, which
    would give them another c.  For n ≥ d the span is R^d and ``usable`` is False.
    """
    W = to_numpy(model.params["hidden.weight"]).astype(np.float64)
    W0 = to_numpy(model.init_params["hidden.weight"]).astype(np.float64)
    m, d = W.shape
    k = min(int(n), d, m)
    notes = []
    if np.array_equal(W, W0):
        s = np.zeros(min(m, d))
        return DataSubspace(np.eye(d), 1.0, s, 1.0, 0.0, 0, False,
                                ["the first layer did not move (trained head only, or init equal to trained)"])
    c = decay_factor(W, W0, k) if k < d else 1.0
    est = estimate_subspace(W - c * W0, rank=k)  # the top-k right singular vectors of the update
    s = est.singular_values
    s_rel = s / s[0]
    beyond = float((s[k:] ** 2).sum())
    tail = beyond / float((s * s).sum())
    tail_w = beyond / float((W * W).sum())
    plateau = float(np.median(s_rel[k:])) if k < s.size else 0.0
    signal = int(np.sum(s_rel[:k] > SIGNAL_OVER_NOISE * plateau)) if plateau > 0 else int(np.sum(s_rel[:k] > 0))
    usable = k < d
    if not usable:
        notes.append(f"n = {n} ≥ d = {d}: the training inputs span all of R^d, the first layer adds no constraint")
    return DataSubspace(np.asarray(est.basis), float(c), s_rel, tail, tail_w, signal, usable, notes)


def span_state(sub: DataSubspace) -> int:
    """0 (holds), 1 (doubtful) or 2 (violated) for the first layer's span identity (cuts above)."""
    if sub.tail_energy <= SPAN_HOLDS or sub.tail_weights <= ROUNDING_LEVEL:
        return 0
    return 2 if sub.tail_energy >= SPAN_VIOLATED else 1


class SubspaceMap:
    """A feature map restricted to a k-dimensional subspace of the inputs.

    x = s·B g with B ∈ R^{d×k} orthonormal and s = √(d/k): the attack keeps g on the
    √k-sphere, which B maps onto the √d-sphere inside span B, so a training input x_i
    in that span is g_i = Bᵀx_i/s.  ``features(G)`` = base.features(s·G Bᵀ) and
    ``features_vjp(G, Γ)`` = s·base.features_vjp(s·G Bᵀ, Γ) B (chain rule).
    """

    def __init__(self, base, basis):
        basis = np.asarray(basis, dtype=np.float64)
        if basis.ndim != 2 or basis.shape[0] != base.d or basis.shape[1] > base.d:
            raise ValueError(f"basis must be (d={base.d}, k ≤ d), got {basis.shape}")
        self.base = base
        self.basis = base.xp.asarray(basis, dtype=base.dtype)
        self.d = int(basis.shape[1])
        self.p = base.p
        self.dtype = base.dtype
        self.xp = base.xp
        self.scale = math.sqrt(base.d / self.d)
        self.multipliers = getattr(base, "multipliers", None)

    def lift(self, G):
        """Inputs x = s·G Bᵀ (rows) of candidates G."""
        return self.scale * (G @ self.basis.T)

    def project(self, X):
        """Coordinates g = Bᵀx / s of inputs x (the inverse of :meth:`lift` on span B)."""
        return (X @ self.basis) / self.scale

    def features(self, G):
        return self.base.features(self.lift(G))

    def features_vjp(self, G, Gamma):
        return self.scale * (self.base.features_vjp(self.lift(G), Gamma) @ self.basis)


def model_at(model, point: str):
    """The adapter with its body at θ₀ (``point="init"``) or θ_T (``"trained"``), head unchanged.

    A shallow copy whose ``params`` take the non-head entries of ``init_params``; the
    arrays are shared, not copied.
    """
    if point not in POINTS:
        raise ValueError(f"point must be one of {POINTS}, got {point!r}")
    if point == "trained":
        return model
    out = copy.copy(model)
    out.params = {k: (v if k.startswith("head.") else model.init_params[k]) for k, v in model.params.items()}
    return out


def target_matrix(model, form: Formulation, c: float = 1.0):
    """Θ ∈ R^{p_L×C}: (W_L,T − c·W_L,0)ᵀ for target "delta", W_L,Tᵀ for "trained"."""
    W = model.params["head.weight"]
    if form.target == "trained":
        return W.T.copy()
    return (W - c * model.init_params["head.weight"]).T.copy()


def kkt_multipliers(A, B):
    """α minimising ‖Θ − Φᵀα‖² over multiclass KKT points, from A = ΦΦᵀ (n×n) and B = ΦΘ (n×C).

    α_i = Σ_{j≠y_i} λ_ij (e_{y_i} − e_j), λ ≥ 0, with y_i the largest entry of the free
    solution A⁻¹B (the attacker does not know the labels).  The quadratic
    λᵀ Q λ − 2 bᵀλ, Q = Eᵀ(A ⊗ I_C)E, b = Eᵀ vec(B), is solved by non-negative least
    squares on the Cholesky factor of Q (scipy.optimize.nnls).  For C = 1 the sign of
    α_i is free and α = A⁻¹B.  The gradient of the loss with respect to the inputs at
    a constrained minimiser is the free formula with this α (Danskin's theorem).
    """
    from scipy.optimize import nnls  # noqa: PLC0415

    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    free = gram_solve(A, B)
    n, C = B.shape
    if C == 1:
        return free
    y = np.argmax(free, axis=1)
    # E maps λ (n, C−1) to α (n, C): column (i, j) of E is e_i ⊗ (e_{y_i} − e_j)
    others = np.array([[j for j in range(C) if j != y[i]] for i in range(n)])
    E = np.zeros((n * C, n * (C - 1)))
    for i in range(n):
        for q, j in enumerate(others[i]):
            col = i * (C - 1) + q
            E[i * C + y[i], col] = 1.0
            E[i * C + j, col] = -1.0
    Q = E.T @ np.kron(A, np.eye(C)) @ E
    b = E.T @ B.reshape(-1)
    jitter = 1e-12 * max(float(np.trace(Q)) / Q.shape[0], 1e-300)
    L = np.linalg.cholesky(Q + jitter * np.eye(Q.shape[0]))
    lam, _ = nnls(L.T, np.linalg.solve(L, b), maxiter=50 * Q.shape[0])
    return (E @ lam).reshape(n, C)


class KKTHead:
    """A feature map whose projection loss uses KKT-constrained multipliers (:func:`kkt_multipliers`).

    Wraps any feature map; :func:`rftheory.attack.loss.feature_map_loss` calls
    ``multipliers(A, B)`` in place of the free solve when a model defines it.
    """

    def __init__(self, base):
        self.base = base
        self.d, self.p, self.dtype, self.xp = base.d, base.p, base.dtype, base.xp

    def features(self, X):
        return self.base.features(X)

    def features_vjp(self, X, G):
        return self.base.features_vjp(X, G)

    def multipliers(self, A, B):
        xp = self.xp
        return xp.asarray(kkt_multipliers(to_numpy(A), to_numpy(B)))
