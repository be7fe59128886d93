"""The projection (variable-projection) loss of the reconstruction attack.

For a candidate X̂ ∈ R^{n̂×d} with features Φ̂ = σ(X̂ Vᵀ) and the attacked
parameter vector θ ∈ R^p (docs/design.md):

    v = Φ̂ θ,   A = Φ̂ Φ̂ᵀ,   α = A⁻¹ v,   r = θ − Φ̂ᵀ α,
    L(X̂) = ‖r‖² / ‖θ‖² = 1 − vᵀα / ‖θ‖²          (0 ≤ L ≤ 1),

i.e. the squared relative distance of θ from the row span of Φ̂; the
coefficients α are solved, not learned.  Its gradient is

    ∂L/∂Φ̂ = −2 α rᵀ / ‖θ‖²,
    ∂L/∂X̂ = ((∂L/∂Φ̂) ⊙ σ'(X̂ Vᵀ)) V,

with σ' the true derivative of the activation at the candidate X̂ (or, only
when asked for, the ReLU surrogate 1[z > 0]).

Cost: the two n̂×d×p products X̂Vᵀ and (·)V (≈ 4n̂dp flops), plus n̂²p for
A.  V is used block by block, so a streamed (regenerated) V works too: the
first pass accumulates v and A, the second forms r and the gradient.  The
big products run in the model's dtype; v, A, α, r and L are float64.

Two code paths compute exactly these formulas: for a float32 NumPy model
with V stored and σ = a·relu + b·tanh (the attack's default), the compiled
engine's fused, threaded packed-panel kernels (:func:`rftheory._engine.make_loss`,
this module being the engine's only caller); otherwise (and with
``RFTHEORY_NUMBA=0``) the BLAS path below, on one BLAS thread when an
evaluation's 4·R·n̂·d·p flops are below the engine's SMALL_PROBLEM_FLOPS
(threads do not pay there).  tests/engine/test_panel.py checks the paths agree.

Multi-output models: θ may also be a matrix Θ ∈ R^{p×C} (one column per
output, e.g. ``RandomFeatures.fit(X, Y)`` with Y ∈ R^{n×C}).  The same
formulas hold column by column and are summed:

    V = Φ̂Θ ∈ R^{n̂×C},  α = A⁻¹V,  R = Θ − Φ̂ᵀα,
    L(X̂) = ‖R‖_F² / ‖Θ‖_F²                        (0 ≤ L ≤ 1),
    ∂L/∂Φ̂ = −2 α Rᵀ / ‖Θ‖_F²,

i.e. the squared relative distance of the C columns of Θ from the row span of
Φ̂, normalised by the total ‖Θ‖_F² (so a column of larger norm weighs more).
The Gram of the stacked problem is A ⊗ I_C, so one n̂×n̂ solve serves all C
columns per evaluation.  For random features the matrix case always takes
the BLAS path (the engine's kernels index a vector θ), streamed V included;
a stack of R candidate sets works as for a vector θ.

Models other than random features (rftheory.models.adapters) plug in through the
*feature-map protocol*: attributes ``p, d, dtype, xp`` and methods
``features(X) -> Φ (n×p)`` and ``features_vjp(X, G) -> ∂⟨G, Φ(X)⟩/∂X (n×d)``,
with θ a vector or Θ a matrix as above.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import array_namespace
from .._engine import blas_for, fused_value_and_derivative, make_loss, sum_of_squares
from ..linalg import gram_solve
from ..optim.sphere import retract_to_sphere, riemannian_gradient, step_on_sphere  # re-exported

__all__ = ["LossResult", "projection_loss", "PreparedProjectionLoss", "feature_map_loss", "riemannian_gradient",
           "retract_to_sphere", "step_on_sphere"]


@dataclass
class LossResult:
    """Value, Euclidean gradient (or None) and dual coefficients α of L(X̂)."""

    loss: float
    grad: object | None
    alpha: object


def _check_derivative(derivative: str) -> None:
    if derivative not in ("true", "relu"):
        raise ValueError(f"derivative must be 'true' or 'relu', got {derivative!r}")


def _theta_sq(theta64) -> float:
    """‖θ‖² (Frobenius for a matrix Θ); a zero θ leaves the projection loss undefined."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
        theta_sq = sum_of_squares(theta64)
    if not np.isfinite(theta_sq):
        xp = array_namespace(theta64)
        if not bool(xp.all(xp.isfinite(theta64))):
            raise ValueError("theta contains non-finite values (NaN or ±inf)")
        raise ValueError(f"‖theta‖² overflows float64 (largest |θ_j| = {float(xp.max(xp.abs(theta64))):.3g}); "
                         "rescale theta (the loss does not depend on its scale)")
    if theta_sq == 0.0:
        raise ValueError("θ is the zero vector: the projection loss is undefined")
    return theta_sq


def _result(loss, grad, alpha, batched: bool) -> LossResult:
    """The LossResult of a stack of R sets, or of its only set (float loss, grad (n̂, d), α (n̂,))."""
    if not batched:
        return LossResult(loss=float(loss[0]), grad=None if grad is None else grad[0], alpha=alpha[0])
    return LossResult(loss=loss, grad=grad, alpha=alpha)


def _check_theta(theta64, p: int) -> None:
    """θ of a random-features model: a vector of its p parameters, or Θ (p, C) with C ≥ 1 outputs."""
    if theta64.ndim not in (1, 2) or theta64.shape[0] != p or (theta64.ndim == 2 and theta64.shape[1] < 1):
        raise ValueError(f"theta must be a vector of the model's p = {p} parameters or a matrix (p, C) with one "
                         f"column per output, got shape {tuple(theta64.shape)}")


def _check_shape(X_hat, d: int) -> None:
    """X̂ must be (n̂, d) or (R, n̂, d) with n̂ ≥ 1 (the compiled kernels index by these shapes)."""
    if X_hat.ndim not in (2, 3) or X_hat.shape[-1] != d or X_hat.shape[-2] < 1 or X_hat.shape[0] < 1:
        raise ValueError(f"X_hat must have shape (n̂, d) or (R, n̂, d) with d = {d} (the model's input "
                         f"dimension) and n̂ ≥ 1, got {tuple(X_hat.shape)}")


def _check_candidates(X_hat, d: int) -> None:
    """X̂ of a valid shape (:func:`_check_shape`) and finite."""
    _check_shape(X_hat, d)
    _check_finite(X_hat, "X_hat")


def _check_finite(a, name: str) -> None:
    """NaN/inf in X̂ would surface later as a failed Cholesky or a NaN loss: refused here, by name."""
    xp = array_namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        raise ValueError(f"{name} contains non-finite values (NaN or ±inf, possibly after conversion to {a.dtype})")


def _real_array(xp, a, name: str, dtype):
    """``a`` as a real array of ``dtype``.  A complex input is refused (casting would silently drop the
    imaginary part), and so are object, string and other non-numeric dtypes."""
    if not hasattr(a, "dtype"):
        a = xp.asarray(a)
    kind = a.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {a.dtype} (the imaginary part would be dropped)")
    if kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    with np.errstate(over="ignore"):  # a value beyond the dtype's range becomes inf, reported by the finiteness check
        return xp.asarray(a, dtype=dtype)


def _relu_surrogate(z):
    return (z > 0).astype(z.dtype)


def _features_and_derivative(act, Z, with_grad: bool, derivative: str):
    """(F, D) = (σ(Z), σ'(Z)) for one block of pre-activations Z = X̂V_bᵀ; D is the ReLU surrogate
    1[z > 0] when ``derivative`` is "relu", and None without the gradient."""
    if not with_grad:
        return act.fn(Z), None
    if derivative == "relu":
        return act.fn(Z), _relu_surrogate(Z)
    return fused_value_and_derivative(act, Z)


def projection_loss(X_hat, theta, model, *, with_grad: bool = True, derivative: str = "true",
                    tangent: bool = False) -> LossResult:
    """L(X̂) = ‖θ − P_{rowspan Φ̂} θ‖² / ‖θ‖² and its gradient with respect to X̂.

    Parameters
    ----------
    X_hat : array (n̂, d), or (R, n̂, d) for R candidate sets at once
        Candidate samples (any norm; the attack keeps them on the √d-sphere).
        A stack of R sets (batched restarts) shares the products with V and
        returns a loss per set (array (R,)), gradients (R, n̂, d) and α (R, n̂).
    theta : array (p,) or (p, C)
        Attacked vector θ (or Δθ = θ − θ₀), or the C-output Θ; then
        L = ‖R‖_F²/‖Θ‖_F² (module docstring) and α is (n̂, C) (or (R, n̂, C)).
    model : RandomFeatures
        Supplies V (stored or streamed by blocks) and σ.
    with_grad : bool
        Also return ∂L/∂X̂ (Euclidean, shape (n̂, d), model dtype).
    derivative : "true" or "relu"
        σ' used in the gradient: the activation's own derivative (default), or
        the ReLU surrogate 1[z > 0] (an explicit option, never silent).
    tangent : bool
        Return the Riemannian gradient on the product of spheres through X̂'s
        rows instead, g_i − (⟨g_i, x̂_i⟩/‖x̂_i‖²) x̂_i (what
        :func:`riemannian_gradient` makes of the Euclidean one; the fused
        panel path projects in the same pass).
    """
    _check_derivative(derivative)
    if not hasattr(model, "weight_blocks"):
        if derivative != "true":
            raise ValueError("derivative='relu' is only defined for random-features models")
        res = feature_map_loss(X_hat, theta, model, with_grad=with_grad)
        if tangent and with_grad:
            res.grad = riemannian_gradient(X_hat, res.grad)
        return res
    xp = array_namespace(X_hat, theta)
    X_hat = _real_array(xp, X_hat, "X_hat", model.dtype)
    _check_candidates(X_hat, model.d)
    batched = X_hat.ndim == 3
    if not batched:
        X_hat = X_hat[None]
    R, n_hat, d = X_hat.shape
    theta64 = _real_array(xp, theta, "theta", np.float64)
    _check_theta(theta64, model.p)
    theta_sq = _theta_sq(theta64)
    if theta64.ndim == 2:  # Θ (p, C): the BLAS path, one n̂×n̂ solve for all C columns
        with blas_for(4.0 * R * n_hat * d * model.p):
            loss, grad, alpha = _blas_loss_matrix(X_hat, theta64, theta_sq, model, with_grad, derivative, tangent)
        return _result(loss, grad, alpha, batched)
    if isinstance(X_hat, np.ndarray):  # float32 NumPy, stored V, a·relu + b·tanh: the engine's panel kernels
        engine = make_loss(model, theta64, theta_sq, derivative=derivative, tangent=tangent, one_shot=True)
        if engine is not None:
            return _result(*engine(X_hat, with_grad), batched)
    with blas_for(4.0 * R * n_hat * d * model.p):
        loss, grad, alpha = _blas_loss(X_hat, theta64, theta_sq, model, with_grad, derivative, tangent)
    return _result(loss, grad, alpha, batched)


def _blas_loss(X_hat, theta64, theta_sq, model, with_grad, derivative, tangent):
    """The BLAS path on a stack X̂ (R, n̂, d) in the model's dtype: (loss (R,), grad or None, α (R, n̂))."""
    xp = array_namespace(X_hat, theta64)
    R, n_hat, d = X_hat.shape
    act = model.activation
    low = model.dtype != np.float64
    X_flat = X_hat.reshape(R * n_hat, d)

    # pass 1: Z_b = X̂V_bᵀ (one product for all R·n̂ rows), (F_b, D_b) = (σ, σ')(Z_b);
    # v and A accumulated in float64.  F_b and D_b are kept (R·n̂×p in all, much
    # smaller than V when n̂ < d), so the second pass needs V_b only for the
    # gradient product.
    v = xp.zeros((R, n_hat), dtype=np.float64)
    A = xp.zeros((R, n_hat, n_hat), dtype=np.float64)
    kept = []
    for rows, Vb in model.weight_blocks():
        F, D = _features_and_derivative(act, X_flat @ Vb.T, with_grad, derivative)
        F64 = F.astype(np.float64) if low else F  # (R·n̂, p_b)
        v += (F64 @ theta64[rows]).reshape(R, n_hat)
        if R == 1:  # plain 2-D product: BLAS syrk/gemm, faster than a stacked matmul
            A[0] += F64 @ F64.T
        else:
            F3 = F64.reshape(R, n_hat, -1)
            A += F3 @ F3.transpose(0, 2, 1)
        kept.append((rows, F64, D))
    alpha = xp.stack([gram_solve(A[k], v[k]) for k in range(R)])

    # pass 2: r_b = θ_b − F_bᵀα (float64);  ∂L/∂X̂ = α ⊙ ((D_b ⊙ r_bᵀ) V_b) · (−2/‖θ‖²)
    r_sq = xp.zeros(R, dtype=np.float64)
    W_all = []
    for rows, F, D in kept:  # F is float64 here
        if R == 1:
            r = (theta64[rows] - alpha[0] @ F)[None, :]  # (1, p_b)
        else:
            r = theta64[rows][None, :] - (alpha[:, None, :] @ F.reshape(R, n_hat, -1))[:, 0, :]  # (R, p_b)
        r_sq += xp.sum(r * r, axis=1)
        if with_grad:
            W = D.reshape(R, n_hat, -1) * r.astype(model.dtype, copy=False)[:, None, :]  # D_b ⊙ r_bᵀ
            W_all.append(W.reshape(R * n_hat, -1))
    grad = None
    if with_grad:
        if len(W_all) == 1:
            acc = W_all[0] @ model.weights
        else:
            acc = xp.zeros((R * n_hat, d), dtype=model.dtype)
            for W, (_, Vb) in zip(W_all, model.weight_blocks()):
                acc += W @ Vb
        scale = ((-2.0 / theta_sq) * alpha).astype(model.dtype, copy=False)
        grad = acc.reshape(R, n_hat, d) * scale[:, :, None]
        if tangent:
            grad = riemannian_gradient(X_hat, grad)
    return r_sq / theta_sq, grad, alpha


def _blas_loss_matrix(X_hat, Theta, theta_sq, model, with_grad, derivative, tangent):
    """The BLAS path for Θ (p, C) on a stack X̂ (R, n̂, d): (loss (R,), grad or None, α (R, n̂, C)).

    Pass 1 accumulates V = Φ̂Θ (R, n̂, C) and A = Φ̂Φ̂ᵀ block by block; pass 2
    forms R_b = Θ_b − Φ̂_bᵀα and ∂L/∂X̂ = ((−2/‖Θ‖_F²)(α R_bᵀ) ⊙ σ'(Z_b)) V_b.
    """
    xp = array_namespace(X_hat, Theta)
    R, n_hat, d = X_hat.shape
    C = Theta.shape[1]
    act = model.activation
    low = model.dtype != np.float64
    X_flat = X_hat.reshape(R * n_hat, d)
    v = xp.zeros((R, n_hat, C), dtype=np.float64)
    A = xp.zeros((R, n_hat, n_hat), dtype=np.float64)
    kept = []
    for rows, Vb in model.weight_blocks():
        F, D = _features_and_derivative(act, X_flat @ Vb.T, with_grad, derivative)
        F64 = (F.astype(np.float64) if low else F).reshape(R, n_hat, -1)
        v += F64 @ Theta[rows]
        A += F64 @ F64.transpose(0, 2, 1)
        kept.append((rows, F64, D))
    alpha = xp.stack([gram_solve(A[k], v[k]) for k in range(R)])  # (R, n̂, C): one solve for all C columns
    r_sq = xp.zeros(R, dtype=np.float64)
    acc = xp.zeros((R * n_hat, d), dtype=model.dtype) if with_grad else None
    blocks = model.weight_blocks() if with_grad and len(kept) > 1 else None
    for rows, F, D in kept:
        Rb = Theta[rows].T[None] - alpha.transpose(0, 2, 1) @ F  # (R, C, p_b)
        r_sq += xp.sum(Rb * Rb, axis=(1, 2))
        if with_grad:
            G = (-2.0 / theta_sq) * (alpha @ Rb)  # ∂L/∂Φ̂_b, (R, n̂, p_b)
            W = (D.reshape(R, n_hat, -1) * G.astype(model.dtype, copy=False)).reshape(R * n_hat, -1)
            Vb = model.weights if blocks is None else next(blocks)[1]
            acc += W @ Vb
    grad = None
    if with_grad:
        grad = acc.reshape(R, n_hat, d)
        if tangent:
            grad = riemannian_gradient(X_hat, grad)
    return r_sq / theta_sq, grad, alpha


class PreparedProjectionLoss:
    """``X̂ ↦ projection_loss(X̂, θ, model, derivative=…, tangent=…)`` for a fixed θ and model.

    What does not depend on X̂ is done once, when the object is made: the
    checks of ``derivative`` and θ, θ in float64 and ‖θ‖² (a zero θ raises
    here), and the engine's evaluator (:func:`rftheory._engine.make_loss`:
    None where the engine does not serve the model; its thread count is
    read then too).  A call with a float32 NumPy X̂ of shape (n̂, d) or
    (R, n̂, d) then goes straight to the engine, on buffers the evaluator
    keeps, with BLAS pinned to one thread for the call only; any other call
    (another dtype or array type, a model the engine does not serve) is
    :func:`projection_loss` itself.  Results are bitwise those of
    :func:`projection_loss`.

    For loops that evaluate one θ many times (the attack): between two
    evaluations V has been streamed through the caches, so every Python step
    of a call is slow; this object skips the per-call checks and look-ups of
    :func:`projection_loss`.  θ must not be changed in place while the object
    is in use; one object per thread.
    """

    def __init__(self, theta, model, *, derivative: str = "true", tangent: bool = False):
        _check_derivative(derivative)
        self.theta, self.model, self.derivative, self.tangent = theta, model, derivative, bool(tangent)
        self._panel = None
        if hasattr(model, "weight_blocks") and isinstance(theta, np.ndarray):
            theta64 = np.ascontiguousarray(_real_array(np, theta, "theta", np.float64))
            _check_theta(theta64, model.p)
            theta_sq = _theta_sq(theta64)
            if theta64.ndim == 1:  # the engine serves a vector θ only; Θ (p, C) goes through projection_loss
                self._panel = make_loss(model, theta64, theta_sq, derivative=derivative, tangent=self.tangent)
            self._dtype = np.dtype(model.dtype)

    def __call__(self, X_hat, with_grad: bool = True) -> LossResult:
        panel = self._panel
        if panel is not None and type(X_hat) is np.ndarray and X_hat.dtype == self._dtype:
            _check_shape(X_hat, self.model.d)
            if not math.isfinite(X_hat.sum()):  # one reduction: NaN/inf propagate through a sum (the compiled
                _check_finite(X_hat, "X_hat")  # kernels' fast-math clamps would not); then name the entry
            batched = X_hat.ndim == 3
            return _result(*panel(X_hat if batched else X_hat[None], with_grad), batched)
        return projection_loss(X_hat, self.theta, self.model, with_grad=with_grad, derivative=self.derivative,
                               tangent=self.tangent)


def feature_map_loss(X_hat, theta, model, *, with_grad: bool = True) -> LossResult:
    """Projection loss for any model following the feature-map protocol.

    θ is (p,) or Θ is (p, C).  With Φ̂ = model.features(X̂) (n̂×p):
    v = Φ̂Θ, A = Φ̂Φ̂ᵀ, α = A⁻¹v, r = Θ − Φ̂ᵀα, L = ‖r‖_F²/‖Θ‖_F², and the
    gradient is model.features_vjp(X̂, −2αrᵀ/‖Θ‖_F²).  One n̂×n̂ Cholesky
    solve serves all C outputs (the Gram of the stacked Jacobian is A ⊗ I_C).
    A model that defines ``multipliers(A, B)`` constrains α: it replaces A⁻¹B
    (e.g. :class:`rftheory.attack.unified.KKTHead`); the gradient formula holds
    at a constrained minimiser too (Danskin's theorem).
    """
    xp = array_namespace(X_hat, theta)
    X_hat = _real_array(xp, X_hat, "X_hat", model.dtype)
    _check_finite(X_hat, "X_hat")
    Theta = _real_array(xp, theta, "theta", np.float64)
    vector = Theta.ndim == 1
    if vector:
        Theta = Theta[:, None]
    theta_sq = _theta_sq(Theta)
    F = model.features(X_hat).astype(np.float64)
    solve = getattr(model, "multipliers", None)
    alpha = solve(F @ F.T, F @ Theta) if callable(solve) else gram_solve(F @ F.T, F @ Theta)
    r = Theta - F.T @ alpha
    loss = float(xp.sum(r * r)) / theta_sq
    grad = None
    if with_grad:
        G_phi = (-2.0 / theta_sq) * (alpha @ r.T)
        grad = model.features_vjp(X_hat, G_phi.astype(model.dtype, copy=False))
    return LossResult(loss=loss, grad=grad, alpha=alpha[:, 0] if vector else alpha)

