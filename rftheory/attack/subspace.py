r"""Subspace-aware reconstruction and the attack on Δθ = θ_T − θ₀.

This module implements the "beyond the random features model" programme of
DESIGN.md for low-dimensional data (arXiv 2605.06519 describes the method;
the formulas below are this package's, stated in full).

Δθ objective (training from an initialisation θ₀)
--------------------------------------------------
Gradient descent on ½‖Φθ − y‖² from θ₀ updates θ by −η Φᵀ(Φθ − y), a vector
in rowspan Φ, so every iterate satisfies

    θ_t − θ₀ = Φᵀ λ_t           (λ_t ∈ R^n),

and at convergence (y − Φθ_∞ = 0) the dual coefficients are

    λ* = (ΦΦᵀ)⁻¹ (y − Φθ₀),      θ_∞ = θ₀ + Φᵀλ*.

θ_T itself is *not* in rowspan Φ (θ₀ is a generic p-vector), so the attack
runs the same projection loss on Δθ = θ_T − θ₀, which the attacker can form
when it knows θ₀ (DESIGN.md: "the attacked vector is Δθ when an
initialisation exists").  :func:`rf_gradient_descent` trains and reports
‖P⊥_Φ Δθ‖/‖Δθ‖ (≈ machine precision) and the distance of the GD dual
coefficients to λ*.

Subspace estimation from ΔW₁
-----------------------------
For a two-layer network f(x) = c·aᵀσ(W₁x) (any fixed output scale c) with
no first-layer bias, the gradient of any loss Σ_i ℓ(f(x_i), y_i) w.r.t. W₁
is Dᵀ X with D ∈ R^{n×m} (D_ij = c ℓ'_i a_j σ'(w_jᵀx_i)).  Without weight
decay every GD step adds such a term, so

    ΔW₁ = W₁_T − W₁_0 = G X   (G ∈ R^{m×n}),      rowspan ΔW₁ ⊆ span{x_i},

and the top right singular vectors of ΔW₁ span the data: all of an
r-dimensional data subspace once rank(G X) = r (so n ≥ r), otherwise the
n-dimensional span of the samples.  The attacker needs W₁ before and after
training (a seeded initialisation).  In floating point the subtraction
W₁_T − W₁_0 leaves O(ε‖W₁‖) off the subspace, so the attainable angle is
≈ ε‖W₁_0‖/s_r (about 1e-12 rad in the d=40, r=4 benchmark).  The rank r̂ is chosen from the singular
values s_1 ≥ s_2 ≥ … ≥ s_K of ΔW₁ (K = min(m, d)) by a stated rule:

* ``"gap"`` (default): r̂ = argmax_{1≤k<K} s_k / max(s_{k+1}, ε·s_1)
  (ε = float64 machine epsilon), the largest multiplicative gap; if that
  largest ratio is below ``min_gap`` (default 1e3) no low-dimensional
  structure is claimed and r̂ = K;
* ``"threshold"``: r̂ = #{k : s_k > rtol·s_1} (default rtol = 1e-8);
* or a rank given by the caller.

Weight decay (W₁ ← (1 − ηκ)W₁ − η∇) breaks the identity: the decayed
initialisation leaves a full-rank component −(1 − (1 − ηκ)^T) W₁_0 in ΔW₁.

Principal angles between the estimate and a known subspace are computed by
:func:`rftheory.theory.span.principal_angles` (sine-based for small angles, so an
angle of 1e-12 rad is resolved, not rounded to 0 as arccos would).

Subspace attack
---------------
With U ∈ R^{d×r} an orthonormal basis (UᵀU = I_r), candidates are
X̂ = c·Z Uᵀ with Z ∈ R^{n̂×r}.  Because ‖ZUᵀ‖ = ‖Z‖ and the optimiser of
:func:`rftheory.attack.reconstruct.reconstruct` keeps the rows of Z on the sphere
of radius √r (the radius of *its* model dimension), the scale is
c = √(d/r): then ‖x̂_i‖ = √d as the theory requires, and

    φ(x̂) = σ(V x̂) = σ(√(d/r) V U z) = σ(W z),    W = √(d/r) V U ∈ R^{p×r}.

:class:`SubspaceRandomFeatures` is that feature map (effective weights W).
Since V has i.i.d. N(0, 1/d) entries and U has orthonormal columns, W has
i.i.d. N(0, 1/r) entries: on a known subspace the attack *is* an RF attack
in dimension r, so the threshold moves from p ≈ dn to p ≈ rn.  The same loss
(projection loss with the true σ') and the same optimiser run unchanged on Z;
:func:`subspace_reconstruct` maps the result back, X̂ = √(d/r) Z Uᵀ.

Two-layer trainers
------------------
ΔW₁ comes by default from :class:`rftheory.models.adapters.TwoLayerMLP` built with
``bias=False, head_bias=False`` and trained on all layers by its own GD
(:func:`train_two_layer_mlp`; f(x) = W₂σ(W₁x), standard parametrisation).
:func:`train_two_layer` is a minimal built-in alternative (NumPy/CuPy):
f(x) = aᵀσ(W₁x)/√m, W₁_0 ~ N(0, 1/d), a_0 ~ N(0, 1), full-batch GD on
(1/2n)Σ(f(x_i) − y_i)² with optional weight decay κ (the adapter has none),
used to show what decay does to the estimate.

All public functions accept NumPy or CuPy arrays and return the same kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..models.activations import Activation, get_activation
from ..backend import array_namespace, to_numpy
from ..data.synthetic import Dataset, project_to_sphere
from ..linalg import gram_solve
from .loss import LossResult, projection_loss
from .reconstruct import ReconstructionResult, reconstruct
from ..theory.span import principal_angles, row_residuals
from ..validation import check_count, check_float_dtype, check_matrix, check_vector

__all__ = [
    "SubspaceDataset",
    "synthetic_subspace",
    "orthonormal_basis",
    "SubspaceRandomFeatures",
    "SubspaceReconstructionResult",
    "subspace_reconstruct",
    "RFGDResult",
    "rf_gradient_descent",
    "dual_coefficients",
    "rowspan_residual",
    "delta_theta_loss",
    "TwoLayerTraining",
    "train_two_layer",
    "train_two_layer_mlp",
    "SubspaceEstimate",
    "choose_rank",
    "estimate_subspace",
    "estimate_subspace_from_training",
    "subspace_angles",
    "RANK_RULES",
]

RANK_RULES = ("gap", "threshold")


def _pos_int(name, val):
    return check_count(val, name)


# -- data -------------------------------------------------------------------------


@dataclass
class SubspaceDataset(Dataset):
    """A :class:`rftheory.data.synthetic.Dataset` whose rows lie in a known subspace.

    ``basis`` is U ∈ R^{d×r} with orthonormal columns; ``Z`` the coordinates
    (X = Z Uᵀ when ``leak`` = 0, rows of Z on the √d-sphere of R^r).
    """

    basis: np.ndarray | None = None
    Z: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])


def synthetic_subspace(n: int, d: int, r: int, seed: int = 0, noise: float = 0.1, leak: float = 0.0) -> SubspaceDataset:
    """Rows in a random r-dimensional subspace of R^d, on the √d-sphere.

    U = Q factor of a d×r standard Gaussian (uniform on the Stiefel manifold
    up to signs), z_i uniform on the sphere of radius √d in R^r, x_i = U z_i
    (so ‖x_i‖ = √d and x_i ∈ span U).  With ``leak`` > 0 an isotropic
    Gaussian of standard deviation ``leak`` (per coordinate, relative to the
    unit-variance coordinates of x_i) is added before the rows are put back
    on the √d-sphere: the data then lie only *near* span U.  Labels are
    linear as in :func:`rftheory.data.synthetic.synthetic_sphere`:
    y_i = ⟨β, x_i⟩/√d + ε_i, β ~ N(0, I_d), ε_i ~ N(0, noise²).  Fully
    determined by ``seed``.
    """
    n, d, r = _pos_int("n", n), _pos_int("d", d), _pos_int("r", r)
    if r > d:
        raise ValueError(f"subspace rank r={r} exceeds the dimension d={d}")
    if noise < 0 or leak < 0:
        raise ValueError(f"noise and leak must be non-negative, got {noise}, {leak}")
    rng = np.random.default_rng([seed, 0x5B5B, r])
    U, R = np.linalg.qr(rng.standard_normal((d, r)))
    U = U * np.sign(np.diag(R))[None, :]  # Haar-distributed basis
    Z = rng.standard_normal((n, r))
    Z *= math.sqrt(d) / np.linalg.norm(Z, axis=1, keepdims=True)
    X = Z @ U.T
    if leak > 0:
        X = project_to_sphere(X + leak * rng.standard_normal((n, d)))
    beta = rng.standard_normal(d)
    y = X @ beta / math.sqrt(d) + noise * rng.standard_normal(n)
    desc = f"synthetic subspace n={n} d={d} r={r} seed={seed} (rows in a random {r}-dim subspace on the √d-sphere"
    desc += f", leak {leak}" if leak > 0 else ""
    desc += f"; linear labels, noise {noise})"
    return SubspaceDataset(X, y, desc, None, U, Z)


def orthonormal_basis(B, atol: float = 1e-10):
    """Orthonormal basis (columns) of the column space of B (d×r, full column rank).

    B itself (in float64) when its columns are already orthonormal
    (max |BᵀB − I| ≤ ``atol``), so coordinates keep their meaning; otherwise
    the left singular vectors of B.
    """
    B = check_matrix(B, "basis")
    xp = array_namespace(B)
    if B.shape[1] > B.shape[0]:
        raise ValueError(f"basis has r={B.shape[1]} columns > d={B.shape[0]} rows")
    B = xp.asarray(B, dtype=np.float64)
    if float(xp.max(xp.abs(B.T @ B - xp.eye(B.shape[1])))) <= atol:
        return B
    U, s, _ = xp.linalg.svd(B, full_matrices=False)
    if not float(s[-1]) > 1e-10 * float(s[0]):
        raise ValueError("basis columns are (numerically) linearly dependent")
    return U


# -- subspace feature map and attack ---------------------------------------------


class SubspaceRandomFeatures:
    """The RF feature map restricted to x = √(d/r) U z:  φ_U(z) = σ(W z).

    Effective weights W = √(d/r) V U ∈ R^{p×r} (i.i.d. N(0, 1/r) entries
    when U is orthonormal).  The object follows the random-features
    protocol used by :func:`rftheory.attack.loss.projection_loss` and
    :func:`rftheory.attack.reconstruct.reconstruct` (``p, d, dtype, xp, activation,
    store_weights, weight_blocks(), features()``) with ``d`` = r, so the
    existing loss and optimisers run on Z ∈ R^{n̂×r} with rows on the
    √r-sphere, which :meth:`lift` maps to rows of norm √d in span U.

    Parameters
    ----------
    model : RandomFeatures
        The attacker's copy of the RF model (V stored or streamed: W is
        accumulated block by block and stored; it is only p×r).
    basis : array (d, r)
        Basis of the search subspace; orthonormalised here (its column
        space is what matters).
    """

    store_weights = True

    def __init__(self, model, basis):
        basis = check_matrix(basis, "basis", rows=model.d, rows_name="d (input dimension of the model)")
        xp = model.xp
        U = orthonormal_basis(xp.asarray(basis, dtype=np.float64))
        self.base = model
        self.basis = U
        self.ambient_d = int(model.d)
        self.p, self.d = int(model.p), int(U.shape[1])
        self.dtype, self.xp, self.activation = model.dtype, xp, model.activation
        self.seed = getattr(model, "seed", None)
        self.scale = math.sqrt(self.ambient_d / self.d)
        Um = U.astype(self.dtype)
        W = xp.empty((self.p, self.d), dtype=self.dtype)
        for rows, Vb in model.weight_blocks():
            W[rows] = Vb @ Um
        self._W = W * self.dtype.type(self.scale)

    @property
    def weights(self):
        """W = √(d/r) V U (p×r)."""
        return self._W

    def astype(self, dtype) -> "SubspaceRandomFeatures":
        """The same map with W cast to ``dtype`` (the attack's working precision)."""
        dtype = check_float_dtype(dtype)
        if dtype == self.dtype:
            return self
        other = SubspaceRandomFeatures.__new__(SubspaceRandomFeatures)
        other.__dict__.update(self.__dict__)
        other.dtype = dtype
        other._W = self._W.astype(dtype)
        return other

    def weight_blocks(self):
        yield slice(0, self.p), self._W

    def _as_input(self, Z):
        Z = check_matrix(Z, "Z", cols=self.d, cols_name="r (subspace dimension)")
        return self.xp.asarray(Z, dtype=self.dtype)

    def preactivations(self, Z):
        return self._as_input(Z) @ self._W.T

    def features(self, Z):
        """σ(Z Wᵀ) = σ(X̂ Vᵀ) for X̂ = lift(Z)."""
        return self.activation.fn(self.preactivations(Z))

    def lift(self, Z):
        """X̂ = √(d/r) Z Uᵀ (rows of norm √d when ‖z_i‖ = √r)."""
        Z = self._as_input(Z)
        return (Z.astype(np.float64) @ self.basis.T * self.scale).astype(self.dtype)

    def project(self, X):
        """Z = √(r/d) X U, the inverse of :meth:`lift` on span U."""
        X = check_matrix(X, "X", cols=self.ambient_d, cols_name="d")
        return (self.xp.asarray(X, dtype=np.float64) @ self.basis / self.scale).astype(self.dtype)

    def __repr__(self) -> str:
        return f"SubspaceRandomFeatures(p={self.p}, d={self.ambient_d}, r={self.d}, activation={self.activation.name!r})"


@dataclass
class SubspaceReconstructionResult(ReconstructionResult):
    """:class:`ReconstructionResult` with X̂ lifted to R^d, plus Z and U."""

    Z: object = None
    basis: object = None


def subspace_reconstruct(theta, model, basis, n: int, **kwargs) -> SubspaceReconstructionResult:
    """Reconstruct n̂ = ``n`` samples searching only X̂ = √(d/r) Z Uᵀ.

    Runs :func:`rftheory.attack.reconstruct.reconstruct` (same loss, same
    optimiser, keyword arguments passed through) on
    :class:`SubspaceRandomFeatures` (model, basis); Z has rows on the
    √r-sphere, X̂ rows on the √d-sphere inside span U.  An ``init`` given in
    R^{n×d} is projected onto span U first.  ``model`` may already be a
    :class:`SubspaceRandomFeatures` (``basis`` is then ignored).
    """
    sub = model if isinstance(model, SubspaceRandomFeatures) else SubspaceRandomFeatures(model, basis)
    init = kwargs.pop("init", None)
    if init is not None:
        init = sub.project(init)
    res = reconstruct(theta, sub, n, init=init, **kwargs)
    out = SubspaceReconstructionResult(**{f: getattr(res, f) for f in ReconstructionResult.__dataclass_fields__})
    out.Z = res.X_hat
    out.X_hat = sub.lift(res.X_hat)
    out.basis = sub.basis
    return out


# -- Δθ: RF trained by gradient descent from θ₀ ----------------------------------


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
    max_steps = _pos_int("max_steps", max_steps)
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


def delta_theta_loss(X_hat, theta, theta0, model, **kwargs) -> LossResult:
    """The unified objective: projection loss of Δθ = θ − θ₀ (θ₀ = None: of θ).

    L(X̂) = ‖Δθ − P_{rowspan Φ̂} Δθ‖²/‖Δθ‖²; see
    :func:`rftheory.attack.loss.projection_loss` for the gradient and ``kwargs``.
    """
    xp = array_namespace(theta, theta0)
    attacked = xp.asarray(theta, dtype=np.float64)
    if theta0 is not None:
        attacked = attacked - xp.asarray(theta0, dtype=np.float64)
    return projection_loss(X_hat, attacked, model, **kwargs)


# -- two-layer network and ΔW₁ ---------------------------------------------------


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
    from ..models.adapters import TwoLayerMLP  # noqa: PLC0415

    X = check_matrix(X, "X")
    xp = array_namespace(X, y)
    n, d = X.shape
    y = check_vector(y, "y", length=n, length_name="n (rows of X)")
    net = TwoLayerMLP(d, _pos_int("width", width), 1, activation, bias=False, head_bias=False, seed=seed,
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
    m, steps = _pos_int("width", width), _pos_int("steps", steps)
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


@dataclass
class SubspaceEstimate:
    """Subspace estimated from ΔW₁.

    basis : (d, r̂) orthonormal columns (top right singular vectors).
    rank : r̂.   rule : how r̂ was chosen ("gap", "threshold" or "given").
    singular_values : all singular values of ΔW₁ (descending, NumPy).
    gap : s_r̂ / s_{r̂+1} (inf when r̂ = K or s_{r̂+1} = 0).
    angles : principal angles (radians, descending) to the true subspace
        when one was given, else None.
    """

    basis: object
    rank: int
    rule: str
    singular_values: np.ndarray
    gap: float
    angles: object = None

    @property
    def max_angle(self) -> float | None:
        return None if self.angles is None else float(to_numpy(self.angles).max(initial=0.0))


def choose_rank(singular_values, rule: str = "gap", *, rtol: float = 1e-8, min_gap: float = 1e3) -> int:
    """r̂ from descending singular values by the rule in the module docstring."""
    s = np.sort(np.asarray(to_numpy(singular_values), dtype=np.float64))[::-1]
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("singular values must be a non-empty 1-D array of finite non-negative numbers")
    K = s.size
    if s[0] == 0.0:
        raise ValueError("ΔW₁ is zero: the first layer did not move (no training, or lr = 0)")
    if rule == "threshold":
        if not 0 < rtol < 1:
            raise ValueError(f"rtol must be in (0, 1), got {rtol}")
        return int(np.count_nonzero(s > rtol * s[0]))
    if rule == "gap":
        if K == 1:
            return 1
        floor = np.finfo(np.float64).eps * s[0]
        ratios = s[:-1] / np.maximum(s[1:], floor)
        k = int(np.argmax(ratios))
        return k + 1 if ratios[k] >= min_gap else K
    raise ValueError(f"unknown rank rule {rule!r}; choose from {', '.join(RANK_RULES)} or pass rank=")


def subspace_angles(basis, reference):
    """Principal angles (radians, descending) between the column spaces of two d×k bases.

    Delegates to :func:`rftheory.theory.span.principal_angles` on the transposes
    (accurate for tiny angles); min(rank) angles are returned.
    """
    basis = check_matrix(basis, "basis")
    reference = check_matrix(reference, "reference", rows=basis.shape[0], rows_name="d (rows of basis)")
    xp = array_namespace(basis, reference)
    return principal_angles(xp.asarray(basis).T, xp.asarray(reference).T)


def estimate_subspace(delta_W1, rank: int | None = None, *, rule: str = "gap", rtol: float = 1e-8,
                      min_gap: float = 1e3, true_basis=None) -> SubspaceEstimate:
    """Top-r̂ right singular vectors of ΔW₁ (m×d) as a d×r̂ orthonormal basis.

    r̂ = ``rank`` if given, else by ``rule`` (:func:`choose_rank`).  With
    ``true_basis`` (d×r) the principal angles to it are reported.
    """
    dW = check_matrix(delta_W1, "delta_W1")
    xp = array_namespace(dW, true_basis)
    dW = xp.asarray(dW, dtype=np.float64)
    _, s, Vt = xp.linalg.svd(dW, full_matrices=False)
    s_np = to_numpy(s)
    if rank is None:
        r = choose_rank(s_np, rule, rtol=rtol, min_gap=min_gap)
        how = rule
    else:
        r = _pos_int("rank", rank)
        if r > s_np.size:
            raise ValueError(f"rank={r} exceeds min(m, d)={s_np.size}")
        how = "given"
    gap = float(s_np[r - 1] / s_np[r]) if r < s_np.size and s_np[r] > 0 else math.inf
    basis = Vt[:r].T
    angles = None
    if true_basis is not None:
        true_basis = check_matrix(true_basis, "true_basis", rows=dW.shape[1], rows_name="d (columns of ΔW₁)")
        angles = subspace_angles(basis, xp.asarray(true_basis, dtype=np.float64))
    return SubspaceEstimate(basis, r, how, s_np, gap, angles)


def estimate_subspace_from_training(X, y, *, network: str = "mlp", width: int = 256, steps: int | None = None,
                                    lr: float | None = None, activation="relu+tanh", seed: int = 0,
                                    weight_decay: float = 0.0, rank: int | None = None, rule: str = "gap",
                                    rtol: float = 1e-8, min_gap: float = 1e3, true_basis=None):
    """Train a two-layer net on (X, y) and estimate the data subspace from ΔW₁.

    ``network="mlp"`` (default) trains :class:`rftheory.models.adapters.TwoLayerMLP`
    without biases (:func:`train_two_layer_mlp`, ``steps`` = its max_steps,
    default 20000, stopping at relative loss 1e-8); ``"builtin"`` uses
    :func:`train_two_layer` (``steps`` default 200), the only one with
    ``weight_decay``.  Returns (SubspaceEstimate, TwoLayerTraining); see
    :func:`estimate_subspace` for the rank parameters.
    """
    if network == "mlp":
        if weight_decay:
            raise ValueError("network='mlp' (rftheory.models.adapters.TwoLayerMLP) has no weight decay; "
                             "use network='builtin' for weight_decay > 0")
        training = train_two_layer_mlp(X, y, width, activation=activation, seed=seed, lr=lr,
                                       max_steps=20000 if steps is None else steps)
    elif network == "builtin":
        training = train_two_layer(X, y, width, steps=200 if steps is None else steps, lr=lr, activation=activation,
                                   seed=seed, weight_decay=weight_decay)
    else:
        raise ValueError(f"network must be 'mlp' or 'builtin', got {network!r}")
    est = estimate_subspace(training.delta_W1, rank, rule=rule, rtol=rtol, min_gap=min_gap, true_basis=true_basis)
    return est, training
