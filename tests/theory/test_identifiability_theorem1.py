"""identifiability.theorem1: the residual objectives against finite differences, R against least
squares and the kernel limit, the constrained minimisation, the spurious gap and path profiles."""
import numpy as np
import pytest

from rftheory.data.synthetic import project_to_sphere
from rftheory.models.activations import get_activation
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.hermite import hermite_coefficients, kernel_limit
from rftheory.theory.identifiability.common import FixedWeights, sign_aware_distance
from rftheory.theory.identifiability.theorem1 import (
    _kernel_objective,
    _residual_objective,
    kernel_residual,
    kernel_spurious_gap,
    minimize_residual,
    path_profile,
    single_sample_residual,
    spurious_gap,
)
from rftheory.theory.span import row_basis

from _identifiability_ref import fd_gradient, gaussian_V, lstsq_residual
from conftest import sphere_rows


@pytest.mark.parametrize("act", ["relu+tanh", "tanh", "gelu"])
def test_residual_objective_value_and_gradient(rng, act):
    n, d, p = 3, 4, 40
    X = sphere_rows(rng, n, d)
    V = gaussian_V(rng, p, d)
    a = get_activation(act)
    Q = row_basis(a.fn(X @ V.T)).basis
    fun = _residual_objective(Q, V, a)
    Xh = sphere_rows(rng, 2, d)[:, None, :]
    f, G = fun(Xh)
    ref = lstsq_residual(a.fn(Xh[:, 0] @ V.T), a.fn(X @ V.T)) ** 2
    np.testing.assert_allclose(f, ref, rtol=1e-10)
    np.testing.assert_allclose(G, fd_gradient(fun, Xh), rtol=1e-5, atol=1e-8)


def test_kernel_objective_value_and_gradient(rng):
    n, d = 3, 5
    X = sphere_rows(rng, n, d)
    exp = hermite_coefficients("relu+tanh", 60)
    w = np.asarray(exp.kernel_coefficients())
    K = kernel_limit(X, "relu+tanh", 60).kernel
    fun = _kernel_objective(X, w, K)
    Xh = sphere_rows(rng, 3, d)
    f, G = fun(Xh[:, None, :])
    np.testing.assert_allclose(np.sqrt(np.clip(f, 0, 1)), kernel_residual(Xh, X, "relu+tanh", 60), rtol=1e-10)
    np.testing.assert_allclose(G, fd_gradient(fun, Xh[:, None, :]), rtol=1e-5, atol=1e-8)


def test_single_sample_residual_reference(rng):
    n, d, p = 4, 6, 200
    X = sphere_rows(rng, n, d)
    model = RandomFeatures(p, d, "relu+tanh", seed=3)
    Xh = sphere_rows(rng, 5, d)
    R = single_sample_residual(Xh, X, model)
    Phi = np.asarray(model.features(X))
    np.testing.assert_allclose(R, lstsq_residual(np.asarray(model.features(Xh)), Phi), rtol=1e-9)
    assert np.all((R >= 0) & (R <= 1))
    assert np.max(single_sample_residual(X, X, model)) <= 1e-12
    with pytest.raises(ValueError, match="d=6"):
        single_sample_residual(Xh[:, :5], X[:, :5], model)
    with pytest.raises(TypeError, match="model"):
        single_sample_residual(Xh, X, object())


def test_kernel_residual_is_the_large_p_limit():
    """R(x̂) at p = 40000 (independent Gaussian V) agrees with R∞ from the Hermite kernel.

    |R − R∞| is a fluctuation of order p^{-1/2} ≈ 0.005 (the kernel entries'
    relative s.d. is below 2/√p for these σ); 0.03 is six times that.
    """
    rng = np.random.default_rng(7)
    n, d, p = 3, 5, 40000
    X = sphere_rows(rng, n, d)
    Xh = np.vstack([sphere_rows(rng, 4, d), -X[:1]])
    for act in ("relu+tanh", "relu", "tanh"):
        model = FixedWeights(gaussian_V(rng, p, d), act)
        R = single_sample_residual(Xh, X, model)
        Rk = kernel_residual(Xh, X, act)
        np.testing.assert_allclose(R, Rk, atol=0.03)
    assert kernel_residual(-X, X, "tanh").max() <= 1e-6  # exact symmetry survives the limit
    with pytest.raises(ValueError, match="sphere"):
        kernel_residual(2 * Xh, X)


def test_minimize_residual_finds_the_samples_and_respects_the_region(rng):
    n, d = 3, 5
    X = sphere_rows(rng, n, d)
    model = RandomFeatures(20 * d * n, d, "relu+tanh", seed=1)
    init = project_to_sphere(X + 0.1 * rng.standard_normal(X.shape))
    free = minimize_residual(X, model, init=init)
    assert float(np.max(free.residual)) <= 1e-8
    np.testing.assert_array_equal(free.nearest, np.arange(n))
    assert float(np.max(free.distance)) <= 1e-6
    cons = minimize_residual(X, model, starts=12, delta=0.4, seed=1)
    assert np.all(cons.feasible) and np.all(cons.distance >= 0.4 - 1e-9)
    np.testing.assert_allclose(cons.residual, single_sample_residual(cons.X_hat, X, model), rtol=1e-12)


def test_spurious_gap_is_a_lower_envelope_of_feasible_points(rng):
    """The minimiser must beat every feasible point we can name: random far points and
    points on the path x_0 → x_1."""
    n, d = 3, 5
    X = sphere_rows(rng, n, d)
    model = RandomFeatures(8 * d * n, d, "relu+tanh", seed=2)
    delta = 0.3
    g = spurious_gap(X, model, delta=delta, starts=16, seed=0)
    assert 0 < g.gap < 1 and g.truth_residual <= 1e-12
    assert float(sign_aware_distance(g.x_hat[None, :], X).distance[0]) >= delta - 1e-9
    P = sphere_rows(rng, 2000, d)
    far = sign_aware_distance(P, X).distance >= delta
    assert g.gap <= float(single_sample_residual(P[far], X, model).min())
    pp = path_profile(X, model, "pair", points=81)
    far = pp.distance >= delta
    assert g.gap <= float(pp.residual[far].min())
    assert g.ratio == pytest.approx(8.0) and 0 <= g.free_recovered <= 1
    gk = kernel_spurious_gap(X, "relu+tanh", delta=delta, starts=16)
    assert 0 < gk < 1


def test_path_profiles(rng):
    n, d = 3, 6
    X = sphere_rows(rng, n, d)
    for act in ("relu+tanh", "tanh"):
        model = RandomFeatures(200, d, act, seed=4)
        pair = path_profile(X, model, "pair", i=0, j=2, points=11)
        assert pair.residual[0] <= 1e-12 and pair.residual[-1] <= 1e-12
        np.testing.assert_allclose(pair.X_path[-1], X[2], atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(pair.X_path, axis=1), np.sqrt(d), rtol=1e-12)
        anti = path_profile(X, model, "antipodal", points=11)
        np.testing.assert_allclose(anti.X_path[-1], -X[0], atol=1e-12)
        R_flip = float(single_sample_residual(-X[:1], X, model)[0])
        assert anti.residual[-1] == pytest.approx(R_flip, abs=1e-12)
        rnd = path_profile(X, model, "random", points=5, seed=3)
        assert rnd.residual[0] <= 1e-12 and rnd.residual[-1] > 1e-3
    assert R_flip <= 1e-12  # tanh: −x_0 is in the span
    with pytest.raises(ValueError, match="kind"):
        path_profile(X, model, "spiral")
    with pytest.raises(ValueError, match="i ≠ j"):
        path_profile(X, model, "pair", i=1, j=1)
