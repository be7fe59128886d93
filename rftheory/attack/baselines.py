"""A re-implementation of the original authors' attack, kept for comparison.

The original code is not vendored here.  The loss is the same projection
loss, but

* V is regenerated from its seed for every sample, twice per iteration
  (once to form φ(x̂_i) and σ'(V x̂_i), once for the gradient row
  ((∂L/∂Φ̂)_i ⊙ σ'_i) V), i.e. 2n full p×d draws per iteration;
* every product is per sample (matrix–vector), never batched;
* the optimiser is plain heavy-ball projected gradient descent with a fixed,
  hand-tuned learning rate (20 on the synthetic problem), β = 0.9.

Because V is regenerated bit for bit, one iteration here produces exactly
the iterate of :func:`rftheory.attack.reconstruct.reconstruct` with
``optimizer="momentum", reseed=False`` from the same start (checked in
tests), so the number of iterations to recovery can be measured with the
fast evaluator and multiplied by the per-iteration time measured here.
"""
from __future__ import annotations

import numpy as np

from ..linalg import gram_solve
from ..optim.sphere import retract_to_sphere, riemannian_gradient
from ..models.random_features import random_weights

__all__ = ["original_loss_and_grad", "original_momentum_step"]


def original_loss_and_grad(X_hat, theta, model):
    """L(X̂) and ∂L/∂X̂ computed sample by sample with V regenerated each time."""
    n, d = X_hat.shape
    p = model.p
    theta = np.asarray(theta, dtype=np.float64)
    act = model.activation
    Phi = np.empty((n, p))
    Dsig = np.empty((n, p))
    for i in range(n):
        V = random_weights(model.seed, p, d, model.dtype)  # regenerated per sample
        z = V @ X_hat[i]
        Phi[i] = act.fn(z)
        Dsig[i] = act.deriv(z)
    theta_sq = float(theta @ theta)
    alpha = gram_solve(Phi @ Phi.T, Phi @ theta)
    r = theta - Phi.T @ alpha
    loss = float(r @ r) / theta_sq
    grad = np.empty_like(X_hat)
    for i in range(n):
        V = random_weights(model.seed, p, d, model.dtype)  # and again for the gradient
        grad[i] = ((-2.0 / theta_sq) * alpha[i] * r * Dsig[i]) @ V
    return loss, grad


def original_momentum_step(X_hat, buf, theta, model, lr=20.0, beta=0.9):
    """One heavy-ball step: b ← β·P(b) + g, X̂ ← R(X̂ − lr·b); returns (X̂, b, L(X̂ before))."""
    loss, G = original_loss_and_grad(X_hat, theta, model)
    g = riemannian_gradient(X_hat, G)
    buf = beta * riemannian_gradient(X_hat, buf) + g
    return retract_to_sphere(X_hat - lr * buf), buf, loss
