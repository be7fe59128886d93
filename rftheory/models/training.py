r"""Trainers whose weight changes the attacks use: GD on random features, and two-layer nets.

Random features trained from θ₀
-------------------------------
Gradient descent on ½‖Φθ − y‖² from θ₀ updates θ by −η Φᵀ(Φθ − y), a vector
in rowspan Φ, so every iterate satisfies

    θ_t − θ₀ = Φᵀ λ_t           (λ_t ∈ R^n),

and at convergence (y − Φθ_∞ = 0) the dual coefficients are

    λ* = (ΦΦᵀ)⁻¹ (y − Φθ₀),      θ_∞ = θ₀ + Φᵀλ*.

θ_T itself is *not* in rowspan Φ (θ₀ is a generic p-vector), so the attack
runs on Δθ = θ_T − θ₀ (:func:`rftheory.attack.subspace.delta_theta_loss`).
:func:`rf_gradient_descent` trains and reports ‖P⊥_Φ Δθ‖/‖Δθ‖ (≈ machine
precision) and the distance of the GD dual coefficients to λ*.

Two-layer networks without first-layer bias
-------------------------------------------
For f(x) = c·aᵀσ(W₁x) (any fixed output scale c) the gradient of any loss
w.r.t. W₁ is Dᵀ X, so without weight decay ΔW₁ = W₁_T − W₁_0 = G X and
rowspan ΔW₁ ⊆ span{x_i} (:mod:`rftheory.attack.subspace_estimate` uses this).

* :func:`train_two_layer_mlp` trains :class:`rftheory.models.adapters.TwoLayerMLP`
  built with ``bias=False, head_bias=False`` on all layers by its own GD
  (f(x) = W₂σ(W₁x), standard parametrisation, no weight decay);
* :func:`train_two_layer` is a minimal built-in alternative (NumPy/CuPy):
  f(x) = aᵀσ(W₁x)/√m, W₁_0 ~ N(0, 1/d), a_0 ~ N(0, 1), full-batch GD on
  (1/2n)Σ(f(x_i) − y_i)² with optional weight decay κ (the adapter has none),
  used to show what decay does to the estimate.

All public functions accept NumPy or CuPy arrays and return the same kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import array_namespace
from ..linalg import gram_solve
from ..theory.span import row_residuals
from ..validation import check_count, check_matrix, check_vector
from .activations import Activation, get_activation

__all__ = [
    "RFGDResult",
    "rf_gradient_descent",
    "dual_coefficients",
    "rowspan_residual",
    "TwoLayerTraining",
    "train_two_layer",
    "train_two_layer_mlp",
]


# -- random features trained by gradient descent from θ₀ ---------------------------


def rowspan_residual(Phi, v) -> float:
    """‖P⊥ v‖/‖v‖, the relative distance of v ∈ R^p from rowspan Φ (Φ n×p).

    P⊥ v = v − Φᵀ(ΦΦᵀ)⁻¹Φv, applied twice (re-orthogonalisation) so a
    residual near machine precision is measured, not rounding noise of the
    first pass.  0 for v = 0.
    """
    Phi = check_matrix(Phi, "Phi")
    v = check_vector(v, "v", length=Phi.shape[1], length_name="p (columns of Phi)")
    return float(row_residuals(v[None, :], Phi, method="qr").relative[0])


def dual_coefficients(Phi, y, theta0=None):
    """λ* = (ΦΦᵀ)⁻¹(y − Φθ₀): the GD limit from θ₀ is θ₀ + Φᵀλ*."""
    Phi = check_matrix(Phi, "Phi")
    xp = array_namespace(Phi, y, theta0)
    F = xp.asarray(Phi, dtype=np.float64)
    rhs = xp.asarray(check_vector(y, "y", length=F.shape[0], length_name="n (rows of Phi)"), dtype=np.float64)
    if theta0 is not None:
        rhs = rhs - F @ xp.asarray(check_vector(theta0, "theta0", length=F.shape[1], length_name="p"), dtype=np.float64)
    return gram_solve(F @ F.T, rhs, what="feature Gram ΦΦᵀ", strict=True)


@dataclass
class RFGDResult:
    """Outcome of :func:`rf_gradient_descent`.

    theta, theta0, delta_theta : θ_T, θ₀ and Δθ = θ_T − θ₀ (p,).
    dual_coef : λ_T = (ΦΦᵀ)⁻¹Φ Δθ, the coefficients of Δθ on the rows of Φ.
    limit_dual_coef : λ* = (ΦΦᵀ)⁻¹(y − Φθ₀).
    rowspan_residual : ‖P⊥_Φ Δθ‖/‖Δθ‖ (0 in exact arithmetic).
    theta_rowspan_residual : ‖P⊥_Φ θ_T‖/‖θ_T‖ (why θ_T itself is not attacked).
    dual_error : ‖λ_T − λ*‖/‖λ*‖.
    train_residual : ‖Φθ_T − y‖/‖y‖.
    steps, lr, converged, loss_history : GD bookkeeping (loss ½‖Φθ − y‖²).
    """

    theta: object
    theta0: object
    delta_theta: object
    dual_coef: object
    limit_dual_coef: object
    rowspan_residual: float
    theta_rowspan_residual: float
    dual_error: float
    train_residual: float
    steps: int
    lr: float
    converged: bool
    loss_history: list = field(default_factory=list)


def rf_gradient_descent(model, X, y, theta0=None, *, init_scale: float = 1.0, init_seed: int = 0, lr=None,
                        max_steps: int = 100_000, tol: float = 1e-10) -> RFGDResult:
    """Train θ by full-batch GD on ½‖Φθ − y‖² from θ₀ and check Δθ ∈ rowspan Φ.

    θ₀ defaults to N(0, init_scale²/p · I_p) from ``init_seed`` (so f has
    O(1) outputs at initialisation).  The step is θ ← θ − η Φᵀ(Φθ − y) with
    η = ``lr`` or 1/λ_max(ΦΦᵀ) (stable: GD on this quadratic converges for
    η < 2/λ_max).  Stops when ‖Φθ − y‖/‖y‖ ≤ ``tol`` or after ``max_steps``.
    Every step lies in rowspan Φ, so Δθ = Φᵀλ_T; at convergence
    λ_T → λ* = (ΦΦᵀ)⁻¹(y − Φθ₀) (see the module docstring).
    """
    X = model._as_input(X)
    xp = model.xp
    n = X.shape[0]
    y = xp.asarray(check_vector(y, "y", length=n, length_name="n (rows of X)"), dtype=np.float64)
    if theta0 is None:
        g = np.random.default_rng([init_seed, 0x7E7A]).standard_normal(model.p)
        theta0 = xp.asarray(g * (init_scale / math.sqrt(model.p)))
    theta0 = xp.asarray(check_vector(theta0, "theta0", length=model.p, length_name="p"), dtype=np.float64)
    max_steps = check_count(max_steps, "max_steps")
    F = model.features(X).astype(np.float64)
    A = F @ F.T
    if lr is None:
        lr = 1.0 / float(xp.linalg.eigvalsh(A)[-1])
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    ynorm = max(float(xp.linalg.norm(y)), 1e-300)
    theta = theta0.copy()
    hist = []
    steps, converged = 0, False
    for steps in range(max_steps + 1):
        e = F @ theta - y
        res = float(xp.linalg.norm(e))
        hist.append(0.5 * res * res)
        if res / ynorm <= tol:
            converged = True
            break
        if steps == max_steps:
            break
        theta = theta - lr * (F.T @ e)
    delta = theta - theta0
    lam_T = gram_solve(A, F @ delta, what="feature Gram ΦΦᵀ", strict=True)
    lam_star = dual_coefficients(F, y, theta0)
    dual_err = float(xp.linalg.norm(lam_T - lam_star)) / max(float(xp.linalg.norm(lam_star)), 1e-300)
    return RFGDResult(
        theta=theta, theta0=theta0, delta_theta=delta, dual_coef=lam_T, limit_dual_coef=lam_star,
        rowspan_residual=rowspan_residual(F, delta), theta_rowspan_residual=rowspan_residual(F, theta),
        dual_error=dual_err, train_residual=float(xp.linalg.norm(F @ theta - y)) / ynorm,
        steps=steps, lr=float(lr), converged=converged, loss_history=hist,
    )


# -- two-layer network without first-layer bias -----------------------------------


@dataclass
class TwoLayerTraining:
    """A trained two-layer network without first-layer bias: what the ΔW₁ estimate needs.

    W1_init, W1 : first-layer weights before and after training (m×d).
    a_init, a : output weights before and after (m,).
    network : "mlp" (:class:`rftheory.models.adapters.TwoLayerMLP`) or "builtin"
        (:func:`train_two_layer`).
    loss_history : the trainer's own loss record ("builtin": (1/2n)‖f − y‖²
        every step; "mlp": relative loss ‖f − y‖²/‖y‖², see
        :class:`rftheory.models.adapters.TrainingReport`).
    description : one line saying how it was trained.
    """

    W1_init: object
    W1: object
    a_init: object
    a: object
    activation: Activation
    lr: float
    weight_decay: float
    steps: int
    loss_history: list = field(default_factory=list)
    network: str = "builtin"
    description: str = ""

    @property
    def delta_W1(self):
        """ΔW₁ = W₁_T − W₁_0 (m×d), the difference the attacker forms."""
        return self.W1 - self.W1_init


def train_two_layer_mlp(X, y, width: int = 256, *, activation="relu+tanh", seed: int = 0, lr=None,
                        tol: float = 1e-8, max_steps: int = 20000) -> TwoLayerTraining:
    """Train :class:`rftheory.models.adapters.TwoLayerMLP` (bias=False, head_bias=False) on (X, y).

    f(x) = W₂σ(W₁x), W₁_0 ~ N(0, 1/d), W₂_0 ~ N(0, 1/m), full-batch GD on
    both layers (the adapter's :meth:`fit`, train="all": monotone GD with
    step halving, no weight decay) until the relative train loss is ≤ ``tol``
    or ``max_steps``.  No first-layer bias and no decay, so ΔW₁ = G·X.
    """
    from .adapters import TwoLayerMLP  # noqa: PLC0415

    X = check_matrix(X, "X")
    xp = array_namespace(X, y)
    n, d = X.shape
    y = check_vector(y, "y", length=n, length_name="n (rows of X)")
    net = TwoLayerMLP(d, check_count(width, "width"), 1, activation, bias=False, head_bias=False, seed=seed,
                      dtype=np.float64, backend="numpy" if xp is np else "cupy")
    report = net.fit(xp.asarray(X, dtype=np.float64), xp.asarray(y, dtype=np.float64)[:, None], train="all", lr=lr,
                     tol=tol, max_steps=max_steps)
    return TwoLayerTraining(
        net.init_params["hidden.weight"], net.params["hidden.weight"], net.init_params["head.weight"][0],
        net.params["head.weight"][0], net.activation, float(report.lr), 0.0, int(report.steps),
        list(report.loss_history), "mlp",
        f"rftheory.models.adapters.TwoLayerMLP (m={width}, no biases, no weight decay): {report.summary()}",
    )


def train_two_layer(X, y, width: int = 256, *, steps: int = 200, lr: float | None = None, activation="relu+tanh",
                    seed: int = 0, weight_decay: float = 0.0) -> TwoLayerTraining:
    """Full-batch GD on both layers of f(x) = aᵀσ(W₁x)/√m (no bias).

    Loss (1/2n)Σ(f(x_i) − y_i)² + (κ/2)(‖W₁‖² + ‖a‖²), κ = ``weight_decay``.
    With e = f(X) − y and H = XW₁ᵀ:
    ∇_a = σ(H)ᵀe/(n√m) + κa, ∇_{W₁} = Dᵀ X/n + κW₁ with
    D = (e aᵀ/√m) ⊙ σ'(H).  Initialisation from ``seed``: W₁_0 ~ N(0, 1/d),
    a_0 ~ N(0, 1).  With κ = 0, ΔW₁ = −(η/n)Σ_t D_tᵀ X ∈ R^{m×n}·X.

    The default step η = 1/λ_max(K₀/n) uses the tangent kernel at
    initialisation, K₀ = J Jᵀ = [σ(H)σ(H)ᵀ + (σ'(H) diag(a²) σ'(H)ᵀ) ⊙ XXᵀ]/m
    (J the n×(m + md) Jacobian of f(X) in (a, W₁)): the Hessian of the loss
    in the linearised model is JᵀJ/n, for which GD is stable below 2/λ_max.
    """
    X = check_matrix(X, "X")
    xp = array_namespace(X, y)
    X = xp.asarray(X, dtype=np.float64)
    n, d = X.shape
    y = xp.asarray(check_vector(y, "y", length=n, length_name="n (rows of X)"), dtype=np.float64)
    m, steps = check_count(width, "width"), check_count(steps, "steps")
    if (lr is not None and not lr > 0) or not weight_decay >= 0:
        raise ValueError(f"need lr > 0 and weight_decay ≥ 0, got lr={lr}, weight_decay={weight_decay}")
    act = get_activation(activation)
    rng = np.random.default_rng([seed, 0x2A2A])
    W1_0 = xp.asarray(rng.standard_normal((m, d)) / math.sqrt(d))
    a_0 = xp.asarray(rng.standard_normal(m))
    if lr is None:
        H0 = X @ W1_0.T
        S0, P0 = act.fn(H0), act.deriv(H0)
        K0 = (S0 @ S0.T + ((P0 * (a_0 * a_0)[None, :]) @ P0.T) * (X @ X.T)) / m
        lr = 1.0 / float(xp.linalg.eigvalsh(K0 / n)[-1])
    W1, a = W1_0.copy(), a_0.copy()
    sm = math.sqrt(m)
    hist = []
    for _ in range(steps):
        H = X @ W1.T
        S = act.fn(H)
        e = S @ a / sm - y
        hist.append(0.5 * float(e @ e) / n)
        if not math.isfinite(hist[-1]):
            raise FloatingPointError("two-layer training diverged; lower lr")
        grad_a = S.T @ e / (n * sm)
        D = (e[:, None] * a[None, :] / sm) * act.deriv(H)
        grad_W = D.T @ X / n
        if weight_decay:
            grad_a = grad_a + weight_decay * a
            grad_W = grad_W + weight_decay * W1
        a = a - lr * grad_a
        W1 = W1 - lr * grad_W
    e = act.fn(X @ W1.T) @ a / sm - y
    hist.append(0.5 * float(e @ e) / n)
    desc = (f"built-in two-layer trainer (m={m}, no bias, weight decay {weight_decay:g}): {steps} GD steps, "
            f"η {lr:.3g}, loss (1/2n)‖f−y‖² {hist[0]:.2e} → {hist[-1]:.2e}")
    return TwoLayerTraining(W1_0, W1, a_0, a, act, float(lr), float(weight_decay), steps, hist, "builtin", desc)
