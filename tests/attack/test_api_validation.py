"""Bad array inputs to the attack's API end in a ValueError/TypeError naming the argument, before any
linear algebra: projection_loss (X̂ and θ), chance_levels(trials), RandomFeatures.fit on overflowing X."""
import numpy as np
import pytest

from rftheory.attack.loss import PreparedProjectionLoss, feature_map_loss, projection_loss
from rftheory.attack.metrics import chance_levels
from rftheory.models.adapters import TwoLayerMLP
from rftheory.models.random_features import RandomFeatures

from conftest import sphere_rows


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    X = sphere_rows(rng, 3, 5)
    rf = RandomFeatures(60, 5, "relu+tanh", seed=2).fit(X, rng.standard_normal(3))
    rf32 = RandomFeatures(60, 5, "relu+tanh", seed=2, dtype=np.float32).fit(X, rng.standard_normal(3))
    mlp = TwoLayerMLP(5, 8, 2, "tanh", seed=1)
    return rng, X, rf, rf32, mlp


def _models(problem):
    _, _, rf, rf32, mlp = problem
    theta_mlp = np.random.default_rng(0).standard_normal(mlp.p)
    return [(rf, rf.theta), (rf32, rf32.theta), (mlp, theta_mlp)]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_hat(problem, bad):
    X = problem[1].copy()
    X[1, 2] = bad
    for model, theta in _models(problem):
        with pytest.raises(ValueError, match="X_hat contains non-finite values"):
            projection_loss(X, theta, model)
        with pytest.raises(ValueError, match="X_hat contains non-finite values"):
            projection_loss(np.stack([problem[1], X]), theta, model)
    _, _, rf, rf32, _ = problem
    for model in (rf, rf32):  # the prepared fast path too
        with pytest.raises(ValueError, match="X_hat contains non-finite values"):
            PreparedProjectionLoss(model.theta, model)(X.astype(model.dtype))


def test_X_hat_overflowing_the_model_dtype(problem):
    _, X, _, rf32, _ = problem
    with pytest.raises(ValueError, match="X_hat contains non-finite values.*float32"):
        projection_loss(X * 1e300, rf32.theta, rf32)


def test_complex_and_object_X_hat(problem):
    X = problem[1]
    for model, theta in _models(problem):
        with pytest.raises(TypeError, match="X_hat must be real, got complex"):
            projection_loss(X + 1j * X, theta, model)
        with pytest.raises(TypeError, match="X_hat must be real, got complex"):
            projection_loss(X.astype(np.complex64), theta, model)
        with pytest.raises(TypeError, match="X_hat must be a real numeric array, got dtype object"):
            projection_loss(X.astype(object), theta, model)
        with pytest.raises(TypeError, match="X_hat must be a real numeric array"):
            projection_loss(X.astype(str), theta, model)
        with pytest.raises(TypeError, match="theta must be real"):
            projection_loss(X, theta + 0j, model)
    with pytest.raises(TypeError, match="theta must be real"):
        PreparedProjectionLoss(problem[2].theta + 0j, problem[2])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_theta(problem, bad):
    X = problem[1]
    for model, theta in _models(problem):
        t = theta.copy()
        t[4] = bad
        with pytest.raises(ValueError, match="theta contains non-finite values"):
            projection_loss(X, t, model)
    rf = problem[2]
    t = rf.theta.copy()
    t[0] = bad
    with pytest.raises(ValueError, match="theta contains non-finite values"):
        PreparedProjectionLoss(t, rf)


def test_theta_norm_overflow(problem):
    X = problem[1]
    for model, theta in _models(problem):
        with pytest.raises(ValueError, match=r"‖theta‖² overflows float64.*rescale theta"):
            projection_loss(X, theta * 1e300, model)
        # a large but representable scale is fine: the loss is scale-free
        base = projection_loss(X, theta, model, with_grad=False).loss
        assert projection_loss(X, theta * 1e150, model, with_grad=False).loss == pytest.approx(base, rel=1e-9, abs=1e-12)
    mlp = problem[4]
    with pytest.raises(ValueError, match="theta contains non-finite"):
        feature_map_loss(X, np.full((mlp.p, 2), np.nan), mlp)


def test_good_inputs_still_accepted(problem):
    _, X, rf, _, _ = problem
    ref = projection_loss(X, rf.theta, rf).loss
    assert projection_loss(X.tolist(), list(rf.theta), rf).loss == ref
    assert projection_loss(X.astype(np.float32), rf.theta, rf).loss == pytest.approx(ref, abs=1e-12)
    assert ref < 1e-10


@pytest.mark.parametrize("trials", [0, -1, 2.5, True, "3"])
def test_chance_levels_trials(trials):
    X = sphere_rows(np.random.default_rng(0), 3, 4)
    with pytest.raises(ValueError, match="trials"):
        chance_levels(X, trials=trials)
    with pytest.raises(ValueError, match="seed"):
        chance_levels(X, trials=2, seed=-1)
    assert set(chance_levels(X, trials=1)) == {"signed", "sign_aware", "entrywise_abs", "recovered_fraction"}


@pytest.mark.parametrize("scale", [1e200, 1e160])
@pytest.mark.parametrize("act", ["relu+tanh", "relu", "abs"])
def test_fit_overflow_is_a_clear_value_error(scale, act):
    rng = np.random.default_rng(0)
    X = sphere_rows(rng, 3, 4)
    rf = RandomFeatures(20, 4, act)
    with pytest.raises(ValueError, match=r"fit: the (features|feature Gram).* overflows float64.*√d-sphere"):
        rf.fit(X * scale, np.ones(3))
