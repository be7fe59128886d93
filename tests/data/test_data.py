import numpy as np
import pytest

from rftheory.data import digits, project_to_sphere, synthetic_sphere


def test_synthetic_rows_on_sphere_and_reproducible():
    a = synthetic_sphere(7, 11, seed=4)
    b = synthetic_sphere(7, 11, seed=4)
    c = synthetic_sphere(7, 11, seed=5)
    np.testing.assert_allclose(np.linalg.norm(a.X, axis=1), np.sqrt(11), rtol=1e-14)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.allclose(a.X, c.X)
    assert a.X.shape == (7, 11) and a.y.shape == (7,)


def test_synthetic_labels_are_linear_plus_noise():
    ds = synthetic_sphere(4000, 5, seed=0, noise=0.0)
    beta, *_ = np.linalg.lstsq(ds.X, ds.y, rcond=None)
    np.testing.assert_allclose(ds.X @ beta, ds.y, atol=1e-10)  # noiseless: exactly linear
    noisy = synthetic_sphere(4000, 5, seed=0, noise=0.3)
    beta, *_ = np.linalg.lstsq(noisy.X, noisy.y, rcond=None)
    assert np.std(noisy.y - noisy.X @ beta) == pytest.approx(0.3, rel=0.05)


def test_digits_standardised_on_sphere():
    ds = digits(20, classes=(0, 1), seed=1)
    assert ds.X.shape == (20, 64) and ds.image_shape == (8, 8)
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=1), 8.0, rtol=1e-14)
    assert set(np.unique(ds.y)) <= {-1.0, 1.0}
    assert np.array_equal(ds.X, digits(20, classes=(0, 1), seed=1).X)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: synthetic_sphere(0, 3), "n must be a positive integer"),
        (lambda: synthetic_sphere(3, 2.5), "d must be a positive integer"),
        (lambda: synthetic_sphere(3, 3, noise=-1), "noise"),
        (lambda: digits(5, classes=(11,)), "classes must be digits"),
        (lambda: digits(2000, classes=(0,)), "exceeds"),
        (lambda: project_to_sphere(np.zeros((2, 3))), "all-zero row"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
