"""The original-algorithm re-implementation computes the same loss, gradient
and momentum iterates as the fast path (so benchmark ratios compare like with like)."""
import numpy as np
import pytest

from rftheory.attack.baselines import original_loss_and_grad, original_momentum_step
from rftheory.attack.loss import projection_loss
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import reconstruct
from rftheory.optim.sphere import random_sphere

from conftest import sphere_rows


def test_same_loss_and_gradient_as_fast_path(rng):
    X = sphere_rows(rng, 4, 6)
    model = RandomFeatures(500, 6, "relu+tanh", seed=3).fit(X, rng.standard_normal(4))
    X_hat = sphere_rows(rng, 4, 6)
    loss, grad = original_loss_and_grad(X_hat, model.theta, model)
    fast = projection_loss(X_hat, model.theta, model)
    assert loss == pytest.approx(fast.loss, rel=1e-12)
    np.testing.assert_allclose(grad, fast.grad, rtol=1e-9, atol=1e-14)


def test_same_momentum_iterates_as_reconstruct(rng):
    X = sphere_rows(rng, 3, 5)
    model = RandomFeatures(300, 5, "relu+tanh", seed=4).fit(X, rng.standard_normal(3))
    X0 = random_sphere(3, 5, np.random.default_rng(7))
    fast = reconstruct(model.theta, model, 3, init=X0, optimizer="momentum", lr=20.0, max_iter=5,
                       restarts=1, reseed=False, dtype=None, tol=0.0)
    Xk, buf = X0, np.zeros_like(X0)
    for _ in range(5):
        Xk, buf, _ = original_momentum_step(Xk, buf, model.theta, model, lr=20.0)
    np.testing.assert_allclose(Xk, fast.X_hat, rtol=1e-9, atol=1e-12)
