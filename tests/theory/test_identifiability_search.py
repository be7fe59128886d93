"""identifiability.search: spherical-cap projections and the constrained optimiser against
closed forms."""
import math

import numpy as np
import pytest

from rftheory.data.synthetic import project_to_sphere
from rftheory.theory.identifiability.common import cap_cosine, sign_aware_distance
from rftheory.theory.identifiability.search import _ExcludeCaps, _KeepCap, riemannian_lbfgs

from conftest import sphere_rows


def test_cap_projections(rng):
    d = 6
    X = sphere_rows(rng, 3, d)
    c = cap_cosine(0.5)
    ex = _ExcludeCaps(X, c)
    P = np.vstack([X + 0.05 * rng.standard_normal(X.shape), -X, sphere_rows(rng, 20, d)])
    P = project_to_sphere(P)
    Y = ex.project(P[:, None, :])[:, 0, :]
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), np.sqrt(d), rtol=1e-12)
    cos = np.abs(Y @ X.T) / d
    assert cos.max() <= c + 1e-12
    feasible = np.abs(P @ X.T).max(axis=1) / d <= c
    np.testing.assert_array_equal(Y[feasible], P[feasible])  # feasible points do not move
    assert np.all(sign_aware_distance(Y, X).distance >= 0.5 - 1e-9)
    keep = _KeepCap(X[0], c)
    Z = keep.project(P[:, None, :])[:, 0, :]
    assert np.all(Z @ X[0] / d >= c - 1e-12)
    inside = P @ X[0] / d >= c
    np.testing.assert_array_equal(Z[inside], P[inside])
    with pytest.raises(ValueError, match="distance threshold"):
        cap_cosine(1.5)


def test_lbfgs_closed_forms(rng):
    """min −⟨a, x⟩ on the √d-sphere: x* = √d a/‖a‖; with the cap around a cut out
    (cos ≤ c) the minimum −√d‖a‖c sits on the cap boundary; kept inside a cap around b
    it is −√d‖a‖cos(∠(a,b) − arccos c)."""
    d = 5
    a = rng.standard_normal(d)
    na = np.linalg.norm(a)

    def fun(X):
        return -(X @ a).sum(axis=1), np.broadcast_to(-a, X.shape).copy()

    X0 = sphere_rows(rng, 6, d)[:, None, :]
    res = riemannian_lbfgs(fun, X0, max_iter=200)
    np.testing.assert_allclose(res.f, -np.sqrt(d) * na, rtol=1e-10)
    np.testing.assert_allclose(res.X[:, 0, :], np.tile(np.sqrt(d) * a / na, (6, 1)), atol=1e-5)

    c = cap_cosine(0.4)
    ex = _ExcludeCaps((np.sqrt(d) * a / na)[None, :], c)
    res = riemannian_lbfgs(fun, X0, constraint=ex, max_iter=300)
    np.testing.assert_allclose(res.f, -np.sqrt(d) * na * c, rtol=1e-8)

    b = sphere_rows(rng, 1, d)[0]
    ang = math.acos(float(a @ b) / (na * np.sqrt(d)))
    keep = _KeepCap(b, c)
    res = riemannian_lbfgs(fun, X0, constraint=keep, max_iter=300)
    np.testing.assert_allclose(res.f, -np.sqrt(d) * na * math.cos(max(ang - math.acos(c), 0.0)), rtol=1e-8)
