"""Tests of rftheory.models.training: GD on random features from θ₀ (Δθ ∈ rowspan Φ)
and the built-in two-layer trainer."""
import math

import numpy as np
import pytest
import scipy.linalg

from rftheory.data.subspace import synthetic_subspace
from rftheory.models.random_features import RandomFeatures
from rftheory.models.training import dual_coefficients, rf_gradient_descent, rowspan_residual, train_two_layer


def test_gd_from_theta0_stays_in_rowspan_and_reaches_closed_form(gd_problem):
    ds, model, gd = gd_problem
    Phi = model.features(ds.X)
    assert gd.converged and gd.train_residual <= 1e-12
    assert gd.rowspan_residual < 1e-10  # Δθ ∈ rowspan Φ
    assert gd.theta_rowspan_residual > 0.5  # θ_T itself is far from it (θ₀ generic)
    # independent reference: the GD limit is the point of {θ : Φθ = y} closest to θ₀
    theta_ref = gd.theta0 + scipy.linalg.pinv(Phi) @ (ds.y - Phi @ gd.theta0)
    np.testing.assert_allclose(gd.theta, theta_ref, rtol=1e-8, atol=1e-10)
    lam_ref = np.linalg.solve(Phi @ Phi.T, ds.y - Phi @ gd.theta0)
    np.testing.assert_allclose(dual_coefficients(Phi, ds.y, gd.theta0), lam_ref, rtol=1e-10)
    np.testing.assert_allclose(gd.dual_coef, lam_ref, rtol=1e-7)
    assert gd.dual_error < 1e-7
    np.testing.assert_allclose(gd.delta_theta, Phi.T @ gd.dual_coef, atol=1e-10)
    # θ₀ = 0 gives the min-norm interpolator of RandomFeatures.fit
    gd0 = rf_gradient_descent(model, ds.X, ds.y, theta0=np.zeros(model.p), tol=1e-12)
    np.testing.assert_allclose(gd0.theta, RandomFeatures(400, 6, "relu+tanh", seed=5).fit(ds.X, ds.y).theta,
                               rtol=1e-8, atol=1e-10)


def test_gd_rowspan_identity_holds_before_convergence(gd_problem):
    ds, model, _ = gd_problem
    gd = rf_gradient_descent(model, ds.X, ds.y, init_seed=3, max_steps=5)
    assert not gd.converged and gd.steps == 5
    assert gd.rowspan_residual < 1e-10 and gd.dual_error > 1e-3


def test_rowspan_residual_reference():
    rng = np.random.default_rng(9)
    Phi = rng.standard_normal((3, 20))
    v = rng.standard_normal(20)
    P = Phi.T @ np.linalg.solve(Phi @ Phi.T, Phi)
    ref = np.linalg.norm(v - P @ v) / np.linalg.norm(v)
    assert rowspan_residual(Phi, v) == pytest.approx(ref, rel=1e-10)
    assert rowspan_residual(Phi, Phi.T @ rng.standard_normal(3)) < 1e-14
    assert rowspan_residual(Phi, np.zeros(20)) == 0.0


# -- two-layer network ---------------------------------------------------------------------


def _two_layer_loss(W1, a, X, y, act):
    f = act.fn(X @ W1.T) @ a / math.sqrt(W1.shape[0])
    return 0.5 * np.mean((f - y) ** 2)


def test_two_layer_step_is_the_gradient():
    ds = synthetic_subspace(3, 5, 5, seed=0)
    lr = 1e-3
    tr = train_two_layer(ds.X, ds.y, 7, steps=1, lr=lr, seed=1)
    assert tr.network == "builtin"
    gW = (tr.W1_init - tr.W1) / lr
    ga = (tr.a_init - tr.a) / lr
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (6, 4)]:
        E = np.zeros_like(tr.W1_init)
        E[i, j] = h
        fd = (_two_layer_loss(tr.W1_init + E, tr.a_init, ds.X, ds.y, tr.activation)
              - _two_layer_loss(tr.W1_init - E, tr.a_init, ds.X, ds.y, tr.activation)) / (2 * h)
        assert gW[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    for k in (0, 5):
        e = np.zeros_like(tr.a_init)
        e[k] = h
        fd = (_two_layer_loss(tr.W1_init, tr.a_init + e, ds.X, ds.y, tr.activation)
              - _two_layer_loss(tr.W1_init, tr.a_init - e, ds.X, ds.y, tr.activation)) / (2 * h)
        assert ga[k] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    assert tr.loss_history[0] == pytest.approx(_two_layer_loss(tr.W1_init, tr.a_init, ds.X, ds.y, tr.activation))
