"""Multi-output random features: fit/predict with Y (n, C), the projection loss of Θ (p, C) (value,
finite-difference gradient, stacks, streamed V) and the attack on Θ."""
import numpy as np
import pytest

from rftheory.attack.loss import PreparedProjectionLoss, projection_loss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.attack.reconstruct import reconstruct
from rftheory.data.digits import digits
from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.random_features import RandomFeatures


def _model(C=3, p=120, n=4, d=6, stream=False):
    ds = synthetic_sphere(n, d, seed=0, outputs=C)
    kw = dict(store_weights=False, block_rows=50) if stream else {}
    return ds, RandomFeatures(p, d, seed=1, **kw).fit(ds.X, ds.y)


def test_fit_predict_multi_output():
    ds, m = _model()
    assert m.theta.shape == (120, 3) and m.outputs == 3 and m.dual_coef.shape == (4, 3)
    assert m.predict(ds.X).shape == (4, 3)
    np.testing.assert_allclose(m.predict(ds.X), ds.y, atol=1e-10)
    Phi = np.asarray(m.features(ds.X))
    np.testing.assert_allclose(m.theta, Phi.T @ np.linalg.solve(Phi @ Phi.T, ds.y), atol=1e-10)
    for c in range(3):  # each column is the one-output interpolator of its labels
        one = RandomFeatures(120, 6, seed=1).fit(ds.X, ds.y[:, c])
        np.testing.assert_allclose(m.theta[:, c], one.theta, atol=1e-10)
    with pytest.raises(ValueError, match="rows"):
        RandomFeatures(120, 6, seed=1).fit(ds.X, ds.y[:3])


def test_synthetic_labels_and_one_hot_digits():
    a, b = synthetic_sphere(5, 7, seed=3), synthetic_sphere(5, 7, seed=3, outputs=4)
    np.testing.assert_array_equal(a.X, b.X)  # the same samples for every C
    assert b.y.shape == (5, 4) and np.linalg.matrix_rank(b.y) == 4
    ds = digits(8, one_hot=True)
    assert ds.y.shape == (8, 4) and set(np.unique(ds.y)) <= {0.0, 1.0} and np.all(ds.y.sum(axis=1) == 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matrix_loss_value_and_finite_difference_gradient(dtype):
    ds, m = _model()
    m = m.astype(dtype)
    rng = np.random.default_rng(0)
    Xh = rng.standard_normal((3, 6)).astype(dtype)
    res = projection_loss(Xh, m.theta, m)
    F = np.asarray(m.features(Xh), dtype=np.float64)
    R = m.theta - F.T @ np.linalg.solve(F @ F.T, F @ m.theta)
    assert res.loss == pytest.approx(np.sum(R * R) / np.sum(m.theta**2), rel=1e-4 if dtype == np.float32 else 1e-10)
    assert res.alpha.shape == (3, 3)
    if dtype == np.float64:
        E = rng.standard_normal(Xh.shape)
        h = 1e-6
        fd = (projection_loss(Xh + h * E, m.theta, m, with_grad=False).loss
              - projection_loss(Xh - h * E, m.theta, m, with_grad=False).loss) / (2 * h)
        assert np.sum(res.grad * E) == pytest.approx(fd, rel=1e-6)
    assert projection_loss(ds.X.astype(dtype), m.theta, m).loss < 1e-6


def test_matrix_loss_stacks_streamed_v_and_prepared():
    ds, m = _model()
    _, ms = _model(stream=True)
    rng = np.random.default_rng(1)
    stack = rng.standard_normal((2, 3, 6))
    batched = projection_loss(stack, m.theta, m)
    streamed = projection_loss(stack, ms.theta, ms)
    assert batched.loss.shape == (2,) and batched.grad.shape == (2, 3, 6) and batched.alpha.shape == (2, 3, 3)
    for k in range(2):
        one = projection_loss(stack[k], m.theta, m)
        assert batched.loss[k] == pytest.approx(one.loss, rel=1e-12)
        np.testing.assert_allclose(batched.grad[k], one.grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(streamed.loss, batched.loss, rtol=1e-12)
    np.testing.assert_allclose(streamed.grad, batched.grad, rtol=1e-9, atol=1e-13)
    tangent = PreparedProjectionLoss(m.theta, m, tangent=True)(stack[0])
    g = batched.grad[0]
    np.testing.assert_allclose(tangent.grad, g - np.sum(g * stack[0], 1, keepdims=True) * stack[0]
                               / np.sum(stack[0] ** 2, 1, keepdims=True), rtol=1e-9, atol=1e-13)
    with pytest.raises(ValueError, match="p, C"):
        projection_loss(stack[0], m.theta[:-1], m)


def test_reconstruct_accepts_theta_matrix_small():
    ds, m = _model(C=3, p=60, n=3, d=6)  # C(p − n) = 171 ≥ nd = 18
    res = reconstruct(m.theta, m, 3, seed=0)
    assert res.loss < 1e-8
    assert reconstruction_errors(ds.X, np.asarray(res.X_hat), 0.05).recovered.all()


@pytest.mark.slow
def test_four_outputs_recover_at_ratio_one():
    """n = 20, d = 40, relu+tanh, C = 4, p/(dn) = 1: every sample recovered for at least 3 of 4 seeds
    (one output recovers none there: p = nd, and counting on the sphere needs p ≥ nd + 1 for one output;
    four need p > n + n(d − 1)/4 = 215)."""
    wins = 0
    for s in range(4):
        ds = synthetic_sphere(20, 40, seed=s, outputs=4)
        m = RandomFeatures(800, 40, "relu+tanh", seed=s + 1000).fit(ds.X, ds.y)
        res = reconstruct(m.theta, m, 20, seed=s)
        wins += bool(reconstruction_errors(ds.X, np.asarray(res.X_hat), 0.05).recovered.all())
    assert wins >= 3
