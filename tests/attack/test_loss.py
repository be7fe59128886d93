import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rftheory.attack.loss import projection_loss, retract_to_sphere, riemannian_gradient
from rftheory.models.random_features import RandomFeatures

from conftest import sphere_rows

ACTIVATIONS = ["relu+tanh", "tanh", "gelu", "softplus", "sigmoid", "erf", "silu", "relu", "abs", "leaky_relu"]


def _problem(act, n=5, d=7, p=600, seed=0, **kw):
    rng = np.random.default_rng(seed)
    X = sphere_rows(rng, n, d)
    y = rng.standard_normal(n)
    rf = RandomFeatures(p, d, act, seed=seed + 1, **kw).fit(X, y)
    return rng, X, rf


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradient_matches_finite_differences(act):
    rng, X, rf = _problem(act)
    Xh = sphere_rows(rng, 5, 7)
    res = projection_loss(Xh, rf.theta, rf)
    for _ in range(3):
        E = rng.standard_normal(Xh.shape)
        h = 1e-6
        plus = projection_loss(Xh + h * E, rf.theta, rf, with_grad=False).loss
        minus = projection_loss(Xh - h * E, rf.theta, rf, with_grad=False).loss
        fd = (plus - minus) / (2 * h)
        analytic = float(np.sum(res.grad * E))
        assert abs(fd - analytic) <= 1e-5 * abs(fd) + 1e-12, (fd, analytic)


def test_loss_matches_direct_projection():
    rng, X, rf = _problem("relu+tanh")
    Xh = sphere_rows(rng, 5, 7)
    Phi = rf.features(Xh)
    proj = Phi.T @ np.linalg.lstsq(Phi.T, rf.theta, rcond=None)[0]
    expected = np.sum((rf.theta - proj) ** 2) / np.sum(rf.theta**2)
    assert projection_loss(Xh, rf.theta, rf).loss == pytest.approx(expected, rel=1e-10)


def test_true_data_has_zero_loss_and_random_data_does_not():
    rng, X, rf = _problem("relu+tanh", p=2000)
    assert projection_loss(X, rf.theta, rf).loss < 1e-20
    L = projection_loss(sphere_rows(rng, 5, 7), rf.theta, rf).loss
    assert 0.05 < L <= 1.0


def test_streamed_weights_give_the_same_loss_and_gradient():
    rng, X, rf = _problem("gelu", p=9000)
    streamed = RandomFeatures(9000, 7, "gelu", seed=1, store_weights=False, block_rows=4096)
    Xh = sphere_rows(rng, 5, 7)
    a = projection_loss(Xh, rf.theta, rf)
    b = projection_loss(Xh, rf.theta, streamed)
    assert b.loss == pytest.approx(a.loss, rel=1e-12)
    np.testing.assert_allclose(b.grad, a.grad, rtol=1e-9, atol=1e-14)


def test_float32_model_agrees_with_float64():
    rng, X, rf = _problem("relu+tanh", p=3000)
    rf32 = RandomFeatures(3000, 7, "relu+tanh", seed=1, dtype=np.float32)
    Xh = sphere_rows(rng, 5, 7)
    a = projection_loss(Xh, rf.theta, rf)
    b = projection_loss(Xh, rf.theta, rf32)
    assert b.grad.dtype == np.float32
    assert b.loss == pytest.approx(a.loss, rel=1e-4)
    np.testing.assert_allclose(b.grad, a.grad, rtol=1e-3, atol=1e-4 * np.abs(a.grad).max())


def test_relu_surrogate_is_explicit_and_differs_for_tanh():
    rng, X, rf = _problem("tanh")
    Xh = sphere_rows(rng, 5, 7)
    true = projection_loss(Xh, rf.theta, rf).grad
    surrogate = projection_loss(Xh, rf.theta, rf, derivative="relu").grad
    assert not np.allclose(true, surrogate)
    with pytest.raises(ValueError, match="derivative"):
        projection_loss(Xh, rf.theta, rf, derivative="bogus")


def test_zero_theta_is_rejected():
    rng, X, rf = _problem("tanh")
    with pytest.raises(ValueError, match="zero vector"):
        projection_loss(X, np.zeros(rf.p), rf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 8), (0, 7), (7,), (2, 0, 7), (1, 3, 7, 1)])
def test_candidates_of_the_wrong_shape_are_rejected(dtype, shape):
    """X̂ must be (n̂, d) or (R, n̂, d) with the model's d: a clear error on every path (float32 takes the
    compiled panel kernels where Numba is installed, which must never index past V's d)."""
    rng, X, rf = _problem("relu+tanh", d=7)
    rf = rf.astype(dtype)
    with pytest.raises(ValueError, match="d = 7"):
        projection_loss(np.ones(shape, dtype), rf.theta, rf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_theta_of_the_wrong_shape_is_rejected(dtype):
    """θ must be the model's p parameters: a shorter or longer θ would be read past its end by the
    compiled panel kernels (float32); a matrix Θ must have p rows (one column per output)."""
    from rftheory.attack.loss import PreparedProjectionLoss

    rng, X, rf = _problem("relu+tanh", p=600)
    rf = rf.astype(dtype)
    for theta in (np.ones(590), np.ones(610), np.ones((590, 2)), np.ones((600, 2, 1)), np.ones((600, 0))):
        with pytest.raises(ValueError, match="p = 600"):
            projection_loss(X.astype(dtype), theta, rf)
        with pytest.raises(ValueError, match="p = 600"):
            PreparedProjectionLoss(theta, rf)(X.astype(dtype))


@given(st.permutations(list(range(5))), st.integers(0, 2**16))
def test_loss_is_permutation_invariant_and_gradient_equivariant(perm, seed):
    rng, X, rf = _problem("relu+tanh", p=300)
    Xh = sphere_rows(np.random.default_rng(seed), 5, 7)
    perm = np.array(perm)
    a = projection_loss(Xh, rf.theta, rf)
    b = projection_loss(Xh[perm], rf.theta, rf)
    assert b.loss == pytest.approx(a.loss, rel=1e-9, abs=1e-14)
    np.testing.assert_allclose(b.grad, a.grad[perm], rtol=1e-7, atol=1e-12)


def test_riemannian_gradient_is_tangent_and_retraction_normalises(rng):
    X = sphere_rows(rng, 4, 6)
    G = rng.standard_normal((4, 6))
    T = riemannian_gradient(X, G)
    np.testing.assert_allclose(np.sum(T * X, axis=1), 0, atol=1e-12)
    R = retract_to_sphere(3.7 * X + 0.1 * G)
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), np.sqrt(6))


@pytest.mark.parametrize("store", [True, False])
def test_batched_sets_equal_separate_evaluations(store, rng):
    X = sphere_rows(rng, 4, 6)
    rf = RandomFeatures(5000, 6, "relu+tanh", seed=2, store_weights=store, block_rows=2048).fit(X, rng.standard_normal(4))
    stack = np.stack([sphere_rows(rng, 4, 6) for _ in range(3)])
    both = projection_loss(stack, rf.theta, rf)
    assert both.loss.shape == (3,) and both.grad.shape == (3, 4, 6)
    for k in range(3):
        one = projection_loss(stack[k], rf.theta, rf)
        assert both.loss[k] == pytest.approx(one.loss, rel=1e-12)
        np.testing.assert_allclose(both.grad[k], one.grad, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(both.alpha[k], one.alpha, rtol=1e-10)
