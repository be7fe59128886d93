"""Tests of rftheory.data.subspace: rows in a random subspace on the √d-sphere."""
import math

import numpy as np
import pytest

from rftheory.attack.subspace_estimate import subspace_angles
from rftheory.data.subspace import synthetic_subspace


def _in_span_residual(X, U):
    return np.linalg.norm(X - (X @ U) @ U.T, axis=1) / np.linalg.norm(X, axis=1)


def test_synthetic_subspace_rows_in_subspace_on_sphere():
    ds = synthetic_subspace(6, 30, 3, seed=4)
    U = ds.basis
    assert ds.X.shape == (6, 30) and U.shape == (30, 3) and ds.rank == 3
    np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=1), math.sqrt(30), rtol=1e-13)
    assert _in_span_residual(ds.X, U).max() < 1e-13
    np.testing.assert_allclose(ds.Z @ U.T, ds.X, atol=1e-13)
    again = synthetic_subspace(6, 30, 3, seed=4)
    np.testing.assert_array_equal(again.X, ds.X)
    np.testing.assert_array_equal(again.y, ds.y)
    other = synthetic_subspace(6, 30, 3, seed=5)
    assert subspace_angles(other.basis, U).max() > 0.1  # a different random subspace


def test_synthetic_subspace_leak_and_errors():
    ds = synthetic_subspace(5, 20, 2, seed=0, leak=0.05)
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=1), math.sqrt(20), rtol=1e-13)
    res = _in_span_residual(ds.X, ds.basis)
    assert 0.05 < res.max() < 0.5  # near, not in, the subspace
    with pytest.raises(ValueError, match="exceeds the dimension"):
        synthetic_subspace(3, 4, 5)
    with pytest.raises(ValueError, match="positive integer"):
        synthetic_subspace(3, 4, 0)
