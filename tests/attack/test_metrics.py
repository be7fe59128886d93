import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rftheory.attack.metrics import chance_levels, match_rows, reconstruction_errors

from conftest import sphere_rows


@given(st.permutations(list(range(6))), st.lists(st.sampled_from([-1.0, 1.0]), min_size=6, max_size=6), st.integers(0, 1000))
def test_metrics_invariant_to_row_permutation(perm, signs, seed):
    rng = np.random.default_rng(seed)
    X = sphere_rows(rng, 6, 5)
    Xh = X + 0.01 * rng.standard_normal(X.shape)
    Xh = Xh * np.array(signs)[:, None]
    a = reconstruction_errors(X, Xh)
    b = reconstruction_errors(X, Xh[np.array(perm)])
    np.testing.assert_allclose(a.sign_aware, b.sign_aware)
    np.testing.assert_allclose(a.signed, b.signed)
    np.testing.assert_allclose(a.entrywise_abs, b.entrywise_abs)
    # sign-aware and entrywise-abs errors do not see sign flips; the signed one does
    assert np.all(a.sign_aware < 0.05)
    flipped = np.array(signs) < 0
    assert np.all(a.signed[flipped] > 1.9)
    assert np.array_equal(a.wrong_sign, flipped)


def test_errors_on_a_known_example():
    X = np.array([[3.0, 4.0], [0.0, 2.0]])
    Xh = np.array([[0.0, -2.0], [3.0, 4.0 + 0.5]])  # swapped rows, one flipped, one off
    e = reconstruction_errors(X, Xh, threshold=0.2)
    assert list(e.permutation) == [1, 0]
    np.testing.assert_allclose(e.signed, [0.5 / 5, 2.0])
    np.testing.assert_allclose(e.sign_aware, [0.1, 0.0])
    np.testing.assert_allclose(e.entrywise_abs, [0.1, 0.0])
    assert e.recovered_fraction == 1.0 and e.wrong_sign_fraction == 0.5


def test_chance_level_of_isotropic_data_is_near_sqrt2():
    X = sphere_rows(np.random.default_rng(0), 10, 400)
    c = chance_levels(X, trials=5)
    assert abs(c["signed"] - np.sqrt(2)) < 0.05
    assert c["recovered_fraction"] == 0.0


def test_mismatched_shapes_and_nan_raise():
    X = np.eye(3)
    with pytest.raises(ValueError, match="n̂=2 rows but X has n=3"):
        reconstruction_errors(X, np.eye(2, 3))
    with pytest.raises(ValueError, match="d=4 columns"):
        match_rows(X, np.ones((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        reconstruction_errors(X, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="threshold"):
        reconstruction_errors(X, X, threshold=0)
