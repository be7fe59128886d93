"""Tests of rftheory.models.subspace: the RF map restricted to a subspace (W = √(d/r)VU)."""
import math

import numpy as np
import pytest

from rftheory.models.random_features import RandomFeatures
from rftheory.models.subspace import SubspaceRandomFeatures, orthonormal_basis


def test_subspace_features_equal_rf_features_of_lifted_points(small_problem):
    ds, model = small_problem
    sub = SubspaceRandomFeatures(model, ds.basis)
    assert (sub.p, sub.d, sub.ambient_d) == (50, 3, 12)
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4, 3))
    Z *= math.sqrt(3) / np.linalg.norm(Z, axis=1, keepdims=True)
    X = sub.lift(Z)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), math.sqrt(12), rtol=1e-13)  # √r-sphere → √d-sphere
    np.testing.assert_allclose(sub.features(Z), model.features(X), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sub.project(X), Z, atol=1e-13)
    np.testing.assert_allclose(sub.weights, math.sqrt(12 / 3) * model.weights @ ds.basis, atol=1e-14)
    # the search space only depends on span U: a non-orthonormal basis of it gives the same map
    B = ds.basis @ np.array([[2.0, 1, 0], [0, 1, 0], [0, 0, -3]])
    sub2 = SubspaceRandomFeatures(model, B)
    X2 = sub2.lift(sub2.project(X))
    np.testing.assert_allclose(X2, X, atol=1e-12)


def test_subspace_weights_are_rf_weights_in_dimension_r():
    """W = √(d/r)VU has i.i.d. N(0, 1/r) entries: check mean, variance and column correlations."""
    d, r, p = 30, 3, 20000
    U = orthonormal_basis(np.random.default_rng(3).standard_normal((d, r)))
    W = SubspaceRandomFeatures(RandomFeatures(p, d, seed=11), U).weights
    se = math.sqrt(2 / (p * r)) / r  # standard error of the variance estimate
    assert abs(W.var() - 1 / r) < 5 * se
    C = np.corrcoef(W.T)
    assert np.abs(C - np.eye(r)).max() < 5 / math.sqrt(p)


def test_subspace_streamed_weights_and_astype(small_problem):
    ds, model = small_problem
    streamed = RandomFeatures(50, 12, "relu+tanh", seed=7, store_weights=False, block_rows=16)
    a = SubspaceRandomFeatures(model, ds.basis)
    b = SubspaceRandomFeatures(streamed, ds.basis)
    np.testing.assert_allclose(b.weights, a.weights, atol=1e-14)
    c = a.astype(np.float32)
    assert c.weights.dtype == np.float32 and a.weights.dtype == np.float64
    np.testing.assert_allclose(c.weights, a.weights, rtol=1e-6)
    with pytest.raises(ValueError, match="d"):
        SubspaceRandomFeatures(model, np.eye(5)[:, :2])
