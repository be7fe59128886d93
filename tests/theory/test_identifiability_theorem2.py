"""identifiability.theorem2: the mismatch objective against finite differences and the
distinctness check against least squares and random pairs in the cap."""
import numpy as np
import pytest

from rftheory.data.synthetic import project_to_sphere, synthetic_sphere
from rftheory.models.activations import get_activation
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.identifiability.common import FixedWeights, cap_cosine
from rftheory.theory.identifiability.search import _KeepCap
from rftheory.theory.identifiability.theorem2 import _mismatch_objective, distinctness_check, span_mismatch
from rftheory.theory.span import principal_angles

from _identifiability_ref import fd_gradient, gaussian_V, lstsq_residual
from conftest import sphere_rows


def test_mismatch_objective_value_and_gradient(rng):
    d, p = 4, 30
    X = sphere_rows(rng, 2, d)
    V = gaussian_V(rng, p, d)
    a = get_activation("relu+tanh")
    Phi = a.fn(X @ V.T)
    fun = _mismatch_objective(Phi, V, a)
    P = np.stack([sphere_rows(rng, 2, d) for _ in range(3)])
    f, G = fun(P)
    model = FixedWeights(V, "relu+tanh")
    np.testing.assert_allclose(np.sqrt(f), [span_mismatch(P[s], X, model) for s in range(3)], rtol=1e-9)
    np.testing.assert_allclose(G, fd_gradient(fun, P), rtol=1e-5, atol=1e-8)


def test_distinctness_check(rng):
    d = 5
    X = synthetic_sphere(2, d, seed=1).X
    model = RandomFeatures(16 * d, d, "relu+tanh", seed=5)
    r = distinctness_check(X, model, eps=0.3, starts=4, seed=0)
    assert np.all(r.distances <= 0.3 + 1e-9)
    assert r.truth_mismatch <= 1e-12
    Phi, Phi_hat = np.asarray(model.features(X)), np.asarray(model.features(r.pair))
    ref = lstsq_residual(Phi, Phi_hat) * np.linalg.norm(Phi, axis=1)
    assert r.mismatch == pytest.approx(np.sqrt((ref**2).sum() / (Phi**2).sum()), rel=1e-8)
    assert r.angle == pytest.approx(float(principal_angles(Phi_hat, Phi)[0]), rel=1e-10)
    # the minimiser beats random pairs in the same cap
    c = cap_cosine(0.3)
    keep = _KeepCap(X[0], c)
    P = keep.project(project_to_sphere(X[0] + 0.3 * rng.standard_normal((40, d))).reshape(20, 2, d))
    assert r.mismatch <= min(span_mismatch(P[s], X, model) for s in range(20))
    with pytest.raises(ValueError, match="n = 2"):
        distinctness_check(synthetic_sphere(3, d).X, model)
