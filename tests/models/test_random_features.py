import numpy as np
import pytest

from rftheory.linalg import SingularGramError
from rftheory.models.random_features import WEIGHT_BLOCK_ROWS, RandomFeatures, random_weights, weight_block

from conftest import sphere_rows


def test_weights_are_n01_over_d():
    d = 50
    V = random_weights(7, 20000, d)
    assert V.shape == (20000, d)
    assert abs(V.mean()) < 3 * np.sqrt(1 / d / V.size) * 2
    np.testing.assert_allclose(V.var() * d, 1.0, rtol=0.02)


def test_weights_are_a_pure_function_of_the_seed():
    a = RandomFeatures(500, 10, seed=3).weights
    b = RandomFeatures(500, 10, seed=3).weights
    c = RandomFeatures(500, 10, seed=4).weights
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_block_regeneration_is_bit_exact():
    p, d = 3 * WEIGHT_BLOCK_ROWS + 17, 6
    V = random_weights(11, p, d)
    B = WEIGHT_BLOCK_ROWS
    assert np.array_equal(weight_block(11, 2, d), V[2 * B : 3 * B])
    assert np.array_equal(random_weights(11, p, d, start=B - 5, stop=2 * B + 3), V[B - 5 : 2 * B + 3])
    # a smaller p is a prefix of a larger p
    assert np.array_equal(random_weights(11, B + 1, d), V[: B + 1])


def test_float32_weights_are_the_cast_float64_weights():
    V64 = random_weights(5, 300, 8)
    V32 = random_weights(5, 300, 8, dtype=np.float32)
    assert V32.dtype == np.float32
    assert np.array_equal(V32, V64.astype(np.float32))


def test_streamed_features_equal_stored_features(rng):
    X = sphere_rows(rng, 5, 9)
    stored = RandomFeatures(10000, 9, "gelu", seed=2)
    streamed = RandomFeatures(10000, 9, "gelu", seed=2, store_weights=False, block_rows=3000)
    assert streamed._V is None
    assert np.array_equal(np.concatenate([Vb for _, Vb in streamed.weight_blocks()]), stored.weights)
    np.testing.assert_allclose(streamed.features(X), stored.features(X), rtol=0, atol=1e-13)


def test_features_are_sigma_of_xvt(rng):
    X = sphere_rows(rng, 4, 7)
    rf = RandomFeatures(64, 7, "tanh", seed=1)
    np.testing.assert_allclose(rf.features(X), np.tanh(X @ rf.weights.T))


def test_fit_is_the_min_norm_interpolator(rng):
    n, d, p = 8, 6, 200
    X = sphere_rows(rng, n, d)
    y = rng.standard_normal(n)
    rf = RandomFeatures(p, d, "relu+tanh", seed=0).fit(X, y)
    Phi = rf.features(X)
    np.testing.assert_allclose(rf.theta, np.linalg.pinv(Phi) @ y, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(rf.predict(X), y, atol=1e-9)
    assert rf.train_residual < 1e-10


def test_p_smaller_than_n_is_rejected(rng):
    X = sphere_rows(rng, 10, 4)
    with pytest.raises(ValueError, match="p=5 < n=10"):
        RandomFeatures(5, 4).fit(X, np.ones(10))


def test_duplicate_samples_give_singular_gram(rng):
    X = sphere_rows(rng, 4, 5)
    X[3] = X[1]
    with pytest.raises(SingularGramError, match="singular"):
        RandomFeatures(400, 5).fit(X, np.arange(4.0))


@pytest.mark.parametrize(
    "X,y,match",
    [
        (np.full((3, 4), np.nan), np.ones(3), "non-finite"),
        (np.ones((3, 5)), np.ones(3), "columns but d=4"),
        (np.ones(4), np.ones(1), "2-D"),
        (np.eye(3, 4), np.ones(2), "length 2 but n"),
        (np.eye(3, 4), np.array([1.0, np.nan, 0.0]), "non-finite"),
    ],
)
def test_bad_inputs_raise_clear_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        RandomFeatures(50, 4).fit(X, y)


@pytest.mark.parametrize("kwargs", [dict(p=0, d=3), dict(p=10, d=-1), dict(p=10, d=3, seed=-2), dict(p=2.5, d=3)])
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        RandomFeatures(**kwargs)


def test_bad_dtype_and_predict_before_fit():
    with pytest.raises(TypeError):
        RandomFeatures(10, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="fit"):
        RandomFeatures(10, 3).predict(np.ones((2, 3)))


def test_astype_shares_seed_theta_and_casts_v(rng):
    X = rng.standard_normal((4, 6))
    rf = RandomFeatures(300, 6, "tanh", seed=5).fit(X, rng.standard_normal(4))
    rf32 = rf.astype(np.float32)
    assert rf32.dtype == np.float32 and rf.dtype == np.float64
    assert np.array_equal(rf32.weights, rf.weights.astype(np.float32))
    assert rf32.theta is rf.theta and rf.astype(np.float64) is rf
    streamed = RandomFeatures(300, 6, "tanh", seed=5, store_weights=False, block_rows=64).astype(np.float32)
    assert np.array_equal(np.vstack([Vb for _, Vb in streamed.weight_blocks()]), rf32.weights)
    with pytest.raises(TypeError, match="float32 or float64"):
        rf.astype(np.int32)


def test_blocks_are_not_shifted_copies_of_each_other():
    """Regression: with the block index in the low Philox counter word, block b+1
    was block b shifted by 4 draws.  No overlap at any small shift now."""
    d = 8
    V = random_weights(3, 2 * WEIGHT_BLOCK_ROWS, d).ravel()
    half = WEIGHT_BLOCK_ROWS * d
    a, b = V[:half], V[half:]
    for shift in range(0, 64):
        assert not np.allclose(a[shift : shift + 1000], b[:1000])
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(half)


def test_features_for_ratio_rounds_and_is_at_least_one():
    from rftheory.models.random_features import features_for_ratio

    assert features_for_ratio(20, 100, 20) == 40000
    assert features_for_ratio(0.5, 3, 3) == 4  # round(4.5) = 4
    assert features_for_ratio(1e-6, 2, 2) == 1
