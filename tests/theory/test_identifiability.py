"""Identifiability checks: gradients against finite differences, residuals against least
squares and the kernel limit, the constrained optimiser against closed forms, and the
identifiability properties (hypothesis) the issue lists."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rftheory.models.activations import get_activation
from rftheory.backend import cupy_available
from rftheory.data.synthetic import project_to_sphere, synthetic_sphere
from rftheory.theory.hermite import hermite_coefficients, kernel_limit
from rftheory.theory.identifiability import (
    Check,
    FixedWeights,
    _ExcludeCaps,
    _KeepCap,
    _kernel_objective,
    _mismatch_objective,
    _residual_objective,
    activation_moments,
    cap_cosine,
    distinctness_check,
    feature_norms,
    feature_rank,
    gaussian_union_z,
    identifiability_checks,
    kernel_concentration,
    kernel_residual,
    kernel_spurious_gap,
    minimize_residual,
    path_profile,
    riemannian_lbfgs,
    sign_aware_distance,
    sign_lemma,
    single_sample_residual,
    span_mismatch,
    spurious_gap,
)
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.span import principal_angles, row_basis, row_residuals

from conftest import sphere_rows


def gaussian_V(rng, p, d):
    return rng.standard_normal((p, d)) / np.sqrt(d)


def lstsq_residual(F, Phi):
    """Reference R: relative least-squares residual of each row of F on the rows of Phi."""
    coef, *_ = np.linalg.lstsq(Phi.T, F.T, rcond=None)
    return np.linalg.norm(F.T - Phi.T @ coef, axis=0) / np.linalg.norm(F, axis=1)


def fd_gradient(fun, X, h=1e-6):
    """Central differences of the per-problem values of ``fun`` (summed) w.r.t. every entry of X."""
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        E = np.zeros_like(X)
        E[idx] = h
        G[idx] = (fun(X + E)[0].sum() - fun(X - E)[0].sum()) / (2 * h)
    return G


# =============================================================================
# Gradients of the three objectives
# =============================================================================


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


# =============================================================================
# Residuals, distances, kernel limit
# =============================================================================


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


def test_sign_aware_distance_brute_force(rng):
    X = sphere_rows(rng, 4, 5)
    Xh = sphere_rows(rng, 6, 5)
    Xh[0] = -X[2]
    dist = sign_aware_distance(Xh, X)
    ref = np.array([[min(np.linalg.norm(a - b), np.linalg.norm(a + b)) / np.linalg.norm(b) for b in X] for a in Xh])
    np.testing.assert_allclose(dist.distance, ref.min(axis=1), atol=1e-7)
    np.testing.assert_array_equal(dist.index, ref.argmin(axis=1))
    assert dist.index[0] == 2 and dist.sign[0] == -1.0 and dist.distance[0] <= 1e-7


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


# =============================================================================
# Constraint sets and the optimiser
# =============================================================================


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


# =============================================================================
# Lemmas
# =============================================================================


def test_kernel_concentration_definitions(rng):
    n, d, p = 5, 6, 300
    X = sphere_rows(rng, n, d)
    model = RandomFeatures(p, d, "relu", seed=6)
    kc = kernel_concentration(X, model)
    Phi = np.asarray(model.features(X))
    E = Phi @ Phi.T / p - kernel_limit(X, "relu", 60).kernel
    assert kc.op_error == pytest.approx(np.linalg.norm(E, 2), rel=1e-10)
    assert kc.max_error == pytest.approx(np.abs(E).max(), rel=1e-10)
    var = np.array([[np.var(Phi[i] * Phi[j], ddof=1) for j in range(n)] for i in range(n)])
    assert kc.fro_scale == pytest.approx(np.sqrt(var.sum() / p), rel=1e-10)
    assert kc.lambda_min_emp == pytest.approx(np.linalg.eigvalsh(Phi @ Phi.T)[0] / p, rel=1e-10)
    assert kc.op_ceiling == pytest.approx(10 * kc.fro_scale + n * kc.kernel_bound)
    assert gaussian_union_z(10, 0.01) == pytest.approx(math.sqrt(2 * math.log(2000)))
    assert feature_rank(X, model) == (n, n)


def test_activation_moments_closed_forms():
    m2, m4 = activation_moments("relu")
    assert m2 == pytest.approx(0.5, rel=1e-10) and m4 == pytest.approx(1.5, rel=1e-10)
    m2, m4 = activation_moments("abs")
    assert m2 == pytest.approx(1.0, rel=1e-10) and m4 == pytest.approx(3.0, rel=1e-10)
    m2, _ = activation_moments("tanh")
    assert m2 == pytest.approx(hermite_coefficients("tanh", 10).second_moment, rel=1e-10)


def test_feature_norms_standardisation(rng):
    X = sphere_rows(rng, 6, 8)
    model = RandomFeatures(500, 8, "relu", seed=2)
    fn = feature_norms(X, model)
    Phi = np.asarray(model.features(X))
    np.testing.assert_allclose(fn.norms_sq, (Phi**2).sum(axis=1) / 500, rtol=1e-12)
    assert fn.sd == pytest.approx(math.sqrt((1.5 - 0.25) / 500))
    assert fn.max_z == pytest.approx(np.abs(fn.norms_sq - 0.5).max() / fn.sd)


def test_sign_lemma_predictions(rng):
    X = sphere_rows(rng, 3, 6)
    for act, pred_small in (("relu", True), ("tanh", True), ("abs", True), ("relu+tanh", False)):
        sl = sign_lemma(X, RandomFeatures(120, 6, act, seed=1))
        assert (sl.affine_residual <= 1e-12) is pred_small, act
    assert sign_lemma(X, RandomFeatures(120, 6, "relu", seed=1)).identity_error == 0.0


def test_check_verdicts_come_from_the_numbers():
    assert Check("q", 1.0, 2.0, "<=").passed and not Check("q", 3.0, 2.0, "<=").passed
    assert Check("q", 3.0, 2.0, ">=").verdict == "PASS" and Check("q", 1.0, 2.0, ">=").verdict == "FAIL"
    assert Check("q", 3, 3, "==").passed and not Check("q", 2, 3, "==").passed
    assert not Check("q", float("nan"), 1.0, "<=").passed
    with pytest.raises(ValueError, match="relation"):
        Check("q", 1.0, 1.0, "<")


def test_identifiability_checks_pass_and_fail_where_expected():
    X = synthetic_sphere(3, 5, seed=0).X
    ok = identifiability_checks(X, RandomFeatures(240, 5, "relu+tanh", seed=1000), starts=8, max_iter=150)
    assert ok.passed, [(c.quantity, c.measured, c.threshold) for c in ok.checks if not c.passed]
    low = identifiability_checks(X, RandomFeatures(8, 5, "relu+tanh", seed=1000), starts=8, max_iter=150,
                                 theorem2=False)
    gap = [c for c in low.checks if c.quantity.startswith("spurious gap")][0]
    assert not gap.passed  # p/(dn) ≈ 0.5: spurious points sit almost in the span
    with pytest.raises(ValueError, match="sphere"):
        identifiability_checks(2 * X, RandomFeatures(240, 5, seed=0))


# =============================================================================
# Property-based identifiability (hypothesis)
# =============================================================================

sizes = st.tuples(st.integers(1, 4), st.integers(2, 6))  # (n, d)


def _setup(seed, n, d, act="relu+tanh", ratio=20):
    rng = np.random.default_rng(seed)
    X = sphere_rows(rng, n, d)
    V = gaussian_V(rng, ratio * d * n, d)
    return rng, X, V, FixedWeights(V, act)


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_true_set_in_span_perturbed_and_replaced_not(nd, seed):
    """p = 20·dn: the true X has residual at round-off; a perturbed set does not — its residual
    matches the first-order prediction ‖P⊥(σ'(Vx)⊙VΔ)‖/‖φ(x)‖ — and neither does a fresh sample
    put in place of x_0 after permuting (at least half its kernel-limit residual R∞)."""
    n, d = nd
    rng, X, V, model = _setup(seed, n, d)
    act = model.activation
    assert float(single_sample_residual(X, X, model).max()) <= 1e-10
    # small tangent perturbation of every row; the first-order term dominates when the samples
    # are separated (two nearby samples put their chord, ≈ the tangent direction, in the span)
    eta = 1e-6
    U = rng.standard_normal((n, d))
    U -= (np.sum(U * X, axis=1) / d)[:, None] * X
    U *= np.sqrt(d) / np.linalg.norm(U, axis=1, keepdims=True)
    Xe = X + eta * U
    R = single_sample_residual(Xe, X, model)
    assert R.min() > 1e-12  # ≥ 1000 × the round-off floor of R(x_i)
    sep = min((sign_aware_distance(X[i:i + 1], np.delete(X, i, axis=0)).distance[0] for i in range(n)),
              default=np.inf) if n > 1 else np.inf
    if sep >= 0.1:
        Z = X @ V.T
        lin = row_residuals(act.deriv(Z) * (U @ V.T), act.fn(Z)).absolute / np.linalg.norm(act.fn(Z), axis=1) * eta
        np.testing.assert_allclose(R, lin, rtol=0.02)
    # permute and replace one sample with a fresh sphere point
    perm = rng.permutation(n)
    Xr = X[perm].copy()
    Xr[0] = sphere_rows(rng, 1, d)[0]
    if sign_aware_distance(Xr[:1], X).distance[0] >= 0.2:
        R0 = float(single_sample_residual(Xr[:1], X, model)[0])
        assert R0 >= 0.5 * float(kernel_residual(Xr[:1], X, act)[0])
        # the span of the new set differs from the old one
        assert float(principal_angles(model.features(Xr), model.features(X))[0]) > 1e-3


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_residuals_invariant_to_row_permutation(nd, seed):
    n, d = nd
    rng, X, _, model = _setup(seed, n, d)
    Xh = sphere_rows(rng, 5, d)
    perm = rng.permutation(n)
    R = single_sample_residual(Xh, X, model)
    np.testing.assert_allclose(single_sample_residual(Xh, X[perm], model), R, rtol=1e-9, atol=1e-14)
    q = rng.permutation(5)
    np.testing.assert_allclose(single_sample_residual(Xh[q], X, model), R[q], rtol=1e-12, atol=1e-15)
    assert float(principal_angles(model.features(X[perm]), model.features(X)).max()) <= 1e-7


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_residuals_invariant_to_joint_rotation(nd, seed):
    """Features of (X Qᵀ, V Qᵀ) equal those of (X, V) since XQᵀ(VQᵀ)ᵀ = XVᵀ: R is unchanged."""
    n, d = nd
    rng, X, V, model = _setup(seed, n, d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    rotated = FixedWeights(V @ Q.T, "relu+tanh")
    Xh = sphere_rows(rng, 4, d)
    R = single_sample_residual(Xh, X, model)
    np.testing.assert_allclose(single_sample_residual(Xh @ Q.T, X @ Q.T, rotated), R, rtol=1e-8, atol=1e-12)
    dist = sign_aware_distance(Xh, X).distance
    np.testing.assert_allclose(sign_aware_distance(Xh @ Q.T, X @ Q.T).distance, dist, atol=1e-7)


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_sign_flips_tanh_invisible_relu_tanh_visible(nd, seed):
    """tanh is odd: φ(−x) = −φ(x), the span ignores per-sample signs.  relu + tanh has both
    nonlinear parities: flipping changes the span, and a flipped sample's residual is at
    least half its kernel limit R∞."""
    n, d = nd
    rng, X, V, _ = _setup(seed, n, d)
    s = rng.choice([-1.0, 1.0], size=n)
    s[rng.integers(n)] = -1.0  # at least one flip
    tanh = FixedWeights(V, "tanh")
    assert float(principal_angles(tanh.features(s[:, None] * X), tanh.features(X)).max()) <= 1e-7
    assert float(single_sample_residual(s[:, None] * X, X, tanh).max()) <= 1e-10
    mixed = FixedWeights(V, "relu+tanh")
    assert float(principal_angles(mixed.features(s[:, None] * X), mixed.features(X)).max()) > 1e-3
    # quantitatively, for flipped samples whose −x_i is not close to another +x_j
    # (which would put φ(−x_i) near the span for an unrelated reason)
    flipped = np.flatnonzero(s < 0)
    far = [i for i in flipped if np.min(np.linalg.norm(-X[i] - X, axis=1)) / np.sqrt(d) >= 0.2]
    if far:
        R = single_sample_residual(-X[far], X, mixed)
        Rk = kernel_residual(-X[far], X, "relu+tanh")
        assert float(Rk.min()) > 1e-3
        assert np.all(R >= 0.5 * Rk)


# =============================================================================
# GPU
# =============================================================================


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy():  # pragma: no cover - GPU only
    import cupy as cp

    X = synthetic_sphere(3, 5, seed=0).X
    model = RandomFeatures(240, 5, "relu+tanh", seed=1)
    gpu = RandomFeatures(240, 5, "relu+tanh", seed=1, backend="cupy")
    Xh = sphere_rows(np.random.default_rng(0), 6, 5)
    R = single_sample_residual(Xh, X, model)
    Rc = single_sample_residual(cp.asarray(Xh), cp.asarray(X), gpu)
    assert isinstance(Rc, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(Rc), R, rtol=1e-5)
    g = spurious_gap(X, model, starts=8, seed=0)
    gc = spurious_gap(cp.asarray(X), gpu, starts=8, seed=0)
    assert gc.gap == pytest.approx(g.gap, rel=1e-3)
    kc, kcc = kernel_concentration(X, model), kernel_concentration(cp.asarray(X), gpu)
    assert kcc.op_error == pytest.approx(kc.op_error, rel=1e-5)
    r = distinctness_check(X[:2], model, starts=4)
    rc = distinctness_check(cp.asarray(X[:2]), gpu, starts=4)
    assert rc.mismatch == pytest.approx(r.mismatch, rel=1e-3)


# =============================================================================
# CLI
# =============================================================================


def test_cli_check_prints_verdicts(capsys):
    from rftheory.cli import main

    assert main(["check", "--n", "3", "--d", "5", "--ratio", "16", "--starts", "8", "--max-iter", "150"]) == 0
    out = capsys.readouterr().out
    assert "spurious gap" in out and "Thm 2" in out and "FAIL" not in out and "9/9 PASS" in out
    # far below p ≈ dn the Theorem 1 row fails and the exit status says so
    assert main(["check", "--n", "3", "--d", "5", "--p", "8", "--starts", "8", "--max-iter", "150",
                 "--no-theorem2"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["check", "--n", "1"]) == 2
    assert "n ≥ 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", "--delta", "2"])
