"""The projection (variable-projection) loss of the reconstruction attack.

For a candidate X̂ ∈ R^{n̂×d} with features Φ̂ = σ(X̂ Vᵀ) and the attacked
parameter vector θ ∈ R^p (DESIGN.md):

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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import array_namespace
from .linalg import gram_solve

__all__ = ["LossResult", "projection_loss", "riemannian_gradient", "retract_to_sphere"]


@dataclass
class LossResult:
    """Value, Euclidean gradient (or None) and dual coefficients α of L(X̂)."""

    loss: float
    grad: object | None
    alpha: object


def _relu_surrogate(z):
    return (z > 0).astype(z.dtype)


def projection_loss(X_hat, theta, model, *, with_grad: bool = True, derivative: str = "true") -> LossResult:
    """L(X̂) = ‖θ − P_{rowspan Φ̂} θ‖² / ‖θ‖² and its gradient with respect to X̂.

    Parameters
    ----------
    X_hat : array (n̂, d)
        Candidate samples (any norm; the attack keeps them on the √d-sphere).
    theta : array (p,)
        Attacked vector θ (or Δθ = θ − θ₀).
    model : RandomFeatures
        Supplies V (stored or streamed by blocks) and σ.
    with_grad : bool
        Also return ∂L/∂X̂ (Euclidean, shape (n̂, d), model dtype).
    derivative : "true" or "relu"
        σ' used in the gradient: the activation's own derivative (default), or
        the ReLU surrogate 1[z > 0] (an explicit option, never silent).
    """
    if derivative not in ("true", "relu"):
        raise ValueError(f"derivative must be 'true' or 'relu', got {derivative!r}")
    xp = array_namespace(X_hat, theta)
    X_hat = xp.asarray(X_hat, dtype=model.dtype)
    theta64 = xp.asarray(theta, dtype=np.float64)
    theta_m = theta64.astype(model.dtype, copy=False)
    theta_sq = float(theta64 @ theta64)
    if theta_sq == 0.0:
        raise ValueError("θ is the zero vector: the projection loss is undefined")
    act = model.activation
    n_hat = X_hat.shape[0]

    blocks = list(model.weight_blocks()) if model.store_weights else None
    single = blocks is not None and len(blocks) == 1
    cache = None
    v = xp.zeros(n_hat, dtype=np.float64)
    A = xp.zeros((n_hat, n_hat), dtype=np.float64)
    for rows, Vb in blocks if blocks is not None else model.weight_blocks():
        Z = X_hat @ Vb.T
        F = act.fn(Z)
        v += (F @ theta_m[rows]).astype(np.float64)
        A += (F @ F.T).astype(np.float64)
        if single:
            cache = (Z, F)
    alpha = gram_solve(A, v)
    alpha_m = alpha.astype(model.dtype, copy=False)

    r_sq = 0.0
    grad = xp.zeros_like(X_hat) if with_grad else None
    scale = -2.0 / theta_sq
    for rows, Vb in blocks if blocks is not None else model.weight_blocks():
        if cache is not None:
            Z, F = cache
        else:
            Z = X_hat @ Vb.T
            F = act.fn(Z)
        r = theta64[rows] - (alpha_m @ F).astype(np.float64)
        r_sq += float(r @ r)
        if with_grad:
            dsig = _relu_surrogate(Z) if derivative == "relu" else act.deriv(Z)
            # (∂L/∂Φ̂ ⊙ σ') V with ∂L/∂Φ̂ = scale · α rᵀ, without forming α rᵀ twice
            G_phi = xp.outer(alpha_m * scale, r.astype(model.dtype, copy=False))
            G_phi *= dsig
            grad += G_phi @ Vb
    return LossResult(loss=r_sq / theta_sq, grad=grad, alpha=alpha)


def riemannian_gradient(X, G):
    """Tangent part of G on the product of spheres: g_i − (⟨g_i, x_i⟩/‖x_i‖²) x_i."""
    xp = array_namespace(X, G)
    coef = xp.sum(G * X, axis=1, keepdims=True) / xp.sum(X * X, axis=1, keepdims=True)
    return G - coef * X


def retract_to_sphere(X, radius=None):
    """Rescale every row to norm ``radius`` (default √d)."""
    xp = array_namespace(X)
    if radius is None:
        radius = float(np.sqrt(X.shape[1]))
    norms = xp.linalg.norm(X, axis=1, keepdims=True)
    return X * (radius / xp.maximum(norms, 1e-300))
