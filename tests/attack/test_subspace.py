"""Tests of rftheory.attack.subspace: low-rank data, the subspace feature map and attack,
the Δθ objective for GD from θ₀, and the subspace estimate from ΔW₁."""
import math

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from rftheory.backend import cupy_available
from rftheory.cli import main
from rftheory.attack.loss import projection_loss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import reconstruct
from rftheory.attack.subspace import (
    SubspaceRandomFeatures,
    choose_rank,
    delta_theta_loss,
    dual_coefficients,
    estimate_subspace,
    estimate_subspace_from_training,
    orthonormal_basis,
    rf_gradient_descent,
    rowspan_residual,
    subspace_angles,
    subspace_reconstruct,
    synthetic_subspace,
    train_two_layer,
)

requires_gpu = pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device (none visible)")


def _in_span_residual(X, U):
    return np.linalg.norm(X - (X @ U) @ U.T, axis=1) / np.linalg.norm(X, axis=1)


# -- data ---------------------------------------------------------------------------


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


# -- subspace feature map ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_problem():
    ds = synthetic_subspace(3, 12, 3, seed=1)
    model = RandomFeatures(50, 12, "relu+tanh", seed=7).fit(ds.X, ds.y)
    return ds, model


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


def test_subspace_loss_and_gradient_chain_rule(small_problem):
    """L_U(Z) = L(√(d/r) Z Uᵀ) and ∂L_U/∂Z = √(d/r) (∂L/∂X̂) U (chain rule)."""
    ds, model = small_problem
    sub = SubspaceRandomFeatures(model, ds.basis)
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((3, 3))
    full = projection_loss(sub.lift(Z), model.theta, model)
    restricted = projection_loss(Z, model.theta, sub)
    assert restricted.loss == pytest.approx(full.loss, rel=1e-10)
    np.testing.assert_allclose(restricted.grad, sub.scale * full.grad @ ds.basis, rtol=1e-8, atol=1e-12)
    # and central finite differences of the restricted loss
    h = 1e-6
    for i, j in [(0, 0), (1, 2), (2, 1)]:
        E = np.zeros_like(Z)
        E[i, j] = h
        fd = (projection_loss(Z + E, model.theta, sub, with_grad=False).loss
              - projection_loss(Z - E, model.theta, sub, with_grad=False).loss) / (2 * h)
        assert restricted.grad[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_subspace_reconstruct_maps_back_and_accepts_init(small_problem):
    ds, model = small_problem
    res = subspace_reconstruct(model.theta, model, ds.basis, 3, restarts=1, max_iter=50, init=ds.X,
                               reseed=False, dtype=np.float64)
    assert res.X_hat.shape == (3, 12) and res.Z.shape == (3, 3)
    assert res.loss < 1e-20 and res.iterations == 0  # the init (the truth) already fits θ
    np.testing.assert_allclose(res.X_hat, ds.X, atol=1e-12)  # project → optimise → lift is the identity here
    np.testing.assert_allclose(res.Z, ds.Z * math.sqrt(3 / 12), atol=1e-12)  # Z on the √r-sphere
    res = subspace_reconstruct(model.theta, model, ds.basis, 3, restarts=1, max_iter=20, seed=1)
    np.testing.assert_allclose(np.linalg.norm(res.X_hat, axis=1), math.sqrt(12), rtol=1e-6)
    assert _in_span_residual(res.X_hat, ds.basis).max() < 1e-6


# -- acceptance: known subspace at p = 4·rn recovers, full space does not ----------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_subspace_recovers_at_4rn_where_full_search_fails(seed):
    d, r, n = 40, 4, 4
    p = 4 * r * n  # 64, well below dn = 160
    ds = synthetic_subspace(n, d, r, seed=seed)
    model = RandomFeatures(p, d, "relu+tanh", seed=seed + 1000).fit(ds.X, ds.y)
    sub = subspace_reconstruct(model.theta, model, ds.basis, n, seed=seed, max_iter=1000)
    err = reconstruction_errors(ds.X, sub.X_hat)
    assert err.recovered.all(), err.sign_aware
    full = reconstruct(model.theta, model, n, seed=seed, restarts=1, max_iter=500)
    ferr = reconstruction_errors(ds.X, full.X_hat)
    assert not ferr.recovered.any(), ferr.sign_aware
    assert full.loss < 1e-8  # a wrong X̂ fits θ: L ≈ 0 alone is not success below dn


# -- Δθ objective -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gd_problem():
    ds = synthetic_subspace(3, 6, 6, seed=2)  # r = d: generic data
    model = RandomFeatures(400, 6, "relu+tanh", seed=5)
    gd = rf_gradient_descent(model, ds.X, ds.y, init_seed=3, tol=1e-12)
    return ds, model, gd


def test_gd_from_theta0_stays_in_rowspan_and_reaches_closed_form(gd_problem):
    ds, model, gd = gd_problem
    Phi = model.features(ds.X)
    assert gd.converged and gd.train_residual <= 1e-12
    assert gd.rowspan_residual < 1e-10  # Δθ ∈ rowspan Φ
    assert gd.theta_rowspan_residual > 0.5  # θ_T itself is far from it (θ₀ generic)
    # independent reference: the GD limit is the point of {θ : Φθ = y} closest to θ₀
    theta_ref = gd.theta0 + scipy.linalg.pinv(Phi) @ (ds.y - Phi @ gd.theta0)
    np.testing.assert_allclose(gd.theta, theta_ref, rtol=1e-8, atol=1e-10)
    lam_ref = np.linalg.solve(Phi @ Phi.T, ds.y - Phi @ gd.theta0)
    np.testing.assert_allclose(dual_coefficients(Phi, ds.y, gd.theta0), lam_ref, rtol=1e-10)
    np.testing.assert_allclose(gd.dual_coef, lam_ref, rtol=1e-7)
    assert gd.dual_error < 1e-7
    np.testing.assert_allclose(gd.delta_theta, Phi.T @ gd.dual_coef, atol=1e-10)
    # θ₀ = 0 gives the min-norm interpolator of RandomFeatures.fit
    gd0 = rf_gradient_descent(model, ds.X, ds.y, theta0=np.zeros(model.p), tol=1e-12)
    np.testing.assert_allclose(gd0.theta, RandomFeatures(400, 6, "relu+tanh", seed=5).fit(ds.X, ds.y).theta,
                               rtol=1e-8, atol=1e-10)


def test_gd_rowspan_identity_holds_before_convergence(gd_problem):
    ds, model, _ = gd_problem
    gd = rf_gradient_descent(model, ds.X, ds.y, init_seed=3, max_steps=5)
    assert not gd.converged and gd.steps == 5
    assert gd.rowspan_residual < 1e-10 and gd.dual_error > 1e-3


def test_delta_theta_objective_and_attack(gd_problem):
    ds, model, gd = gd_problem
    assert delta_theta_loss(ds.X, gd.theta, gd.theta0, model, with_grad=False).loss < 1e-12
    assert delta_theta_loss(ds.X, gd.theta, None, model, with_grad=False).loss > 0.5  # θ_T is not in the span
    assert delta_theta_loss(ds.X, gd.theta, None, model).loss == pytest.approx(
        projection_loss(ds.X, gd.theta, model).loss, rel=1e-12)
    res = reconstruct(gd.delta_theta, model, 3, seed=0)
    assert reconstruction_errors(ds.X, res.X_hat).recovered.all()


def test_rowspan_residual_reference():
    rng = np.random.default_rng(9)
    Phi = rng.standard_normal((3, 20))
    v = rng.standard_normal(20)
    P = Phi.T @ np.linalg.solve(Phi @ Phi.T, Phi)
    ref = np.linalg.norm(v - P @ v) / np.linalg.norm(v)
    assert rowspan_residual(Phi, v) == pytest.approx(ref, rel=1e-10)
    assert rowspan_residual(Phi, Phi.T @ rng.standard_normal(3)) < 1e-14
    assert rowspan_residual(Phi, np.zeros(20)) == 0.0


# -- two-layer network, ΔW₁ and the estimate -----------------------------------------------


def _two_layer_loss(W1, a, X, y, act):
    f = act.fn(X @ W1.T) @ a / math.sqrt(W1.shape[0])
    return 0.5 * np.mean((f - y) ** 2)


def test_two_layer_step_is_the_gradient():
    ds = synthetic_subspace(3, 5, 5, seed=0)
    lr = 1e-3
    tr = train_two_layer(ds.X, ds.y, 7, steps=1, lr=lr, seed=1)
    assert tr.network == "builtin"
    gW = (tr.W1_init - tr.W1) / lr
    ga = (tr.a_init - tr.a) / lr
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (6, 4)]:
        E = np.zeros_like(tr.W1_init)
        E[i, j] = h
        fd = (_two_layer_loss(tr.W1_init + E, tr.a_init, ds.X, ds.y, tr.activation)
              - _two_layer_loss(tr.W1_init - E, tr.a_init, ds.X, ds.y, tr.activation)) / (2 * h)
        assert gW[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    for k in (0, 5):
        e = np.zeros_like(tr.a_init)
        e[k] = h
        fd = (_two_layer_loss(tr.W1_init, tr.a_init + e, ds.X, ds.y, tr.activation)
              - _two_layer_loss(tr.W1_init, tr.a_init - e, ds.X, ds.y, tr.activation)) / (2 * h)
        assert ga[k] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    assert tr.loss_history[0] == pytest.approx(_two_layer_loss(tr.W1_init, tr.a_init, ds.X, ds.y, tr.activation))


@pytest.mark.parametrize("network", ["mlp", "builtin"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delta_w1_estimate_angle_below_1e6(seed, network):
    """Acceptance: d=40, r=4, n=4, no weight decay: largest principal angle < 1e-6 rad
    (ΔW₁ from rftheory.models.adapters.TwoLayerMLP without biases, and from the built-in trainer)."""
    ds = synthetic_subspace(4, 40, 4, seed=seed)
    est, tr = estimate_subspace_from_training(ds.X, ds.y, seed=seed, true_basis=ds.basis, network=network)
    assert tr.network == network and tr.W1.shape == (256, 40)
    assert tr.loss_history[-1] < 1e-3 * tr.loss_history[0]  # it trained
    assert _in_span_residual(tr.delta_W1, ds.basis).max() < 1e-9  # rowspan ΔW₁ ⊆ span X
    assert est.rank == 4 and est.rule == "gap"
    assert est.max_angle < 1e-6
    # independent check of the angle with scipy (arccos-limited, so only to ~1e-7)
    assert scipy.linalg.subspace_angles(est.basis, ds.basis).max() < 1e-6


def test_weight_decay_breaks_the_estimate():
    ds = synthetic_subspace(4, 40, 4, seed=0)
    kw = dict(seed=0, true_basis=ds.basis, weight_decay=1e-2, network="builtin")
    est, _ = estimate_subspace_from_training(ds.X, ds.y, **kw)
    assert est.rank == 40  # no gap: decay adds a full-rank part −(1 − (1 − ηκ)^T)W₁_0
    forced, _ = estimate_subspace_from_training(ds.X, ds.y, rank=4, **kw)
    assert forced.rule == "given" and forced.max_angle > 1e-3
    with pytest.raises(ValueError, match="no weight decay"):
        estimate_subspace_from_training(ds.X, ds.y, weight_decay=1e-2)
    with pytest.raises(ValueError, match="network"):
        estimate_subspace_from_training(ds.X, ds.y, network="torch")


def test_fewer_samples_than_rank_estimates_span_of_data():
    ds = synthetic_subspace(2, 20, 5, seed=3)
    est, _ = estimate_subspace_from_training(ds.X, ds.y, seed=0, true_basis=ds.basis, network="builtin")
    assert est.rank == 2  # rank ΔW₁ ≤ n
    assert subspace_angles(est.basis, ds.X.T).max() < 1e-9
    assert est.angles.shape == (2,) and est.max_angle < 1e-9  # span X ⊂ span U


def test_choose_rank_rules():
    s = np.array([5.0, 3.0, 1.0, 1e-9, 5e-10, 1e-10])
    assert choose_rank(s, "gap") == 3
    assert choose_rank(s, "threshold", rtol=1e-6) == 3
    assert choose_rank(s, "threshold", rtol=1e-11) == 6
    assert choose_rank(np.array([1.0, 0.9, 0.8, 0.7]), "gap") == 4  # no gap ≥ min_gap: full rank
    assert choose_rank(np.array([1.0, 0.01, 0.009]), "gap", min_gap=50) == 1
    assert choose_rank(np.array([2.0, 0.0, 0.0]), "gap") == 1
    with pytest.raises(ValueError, match="did not move"):
        choose_rank(np.zeros(3))
    with pytest.raises(ValueError, match="unknown rank rule"):
        choose_rank(s, "energy")
    with pytest.raises(ValueError, match="exceeds"):
        estimate_subspace(np.ones((3, 4)), rank=5)


@given(k=st.integers(1, 7), extra=st.integers(1, 6), ratio=st.floats(1e4, 1e10), seed=st.integers(0, 1000))
def test_gap_rule_finds_planted_rank(k, extra, ratio, seed):
    rng = np.random.default_rng(seed)
    top = np.sort(rng.uniform(1.0, 10.0, k))[::-1]  # consecutive ratios ≤ 10 < min_gap
    rest = np.sort(rng.uniform(1.0, 10.0, extra))[::-1] * top[-1] / (10.0 * ratio)
    assert choose_rank(np.concatenate([top, rest]), "gap") == k
    # and through the SVD of a matrix with exactly those singular values (min(m, d) = len(s))
    s = np.concatenate([top, rest])
    m, d = len(s) + 2, len(s)
    P = scipy.linalg.qr(rng.standard_normal((m, m)))[0][:, : len(s)]
    Q = scipy.linalg.qr(rng.standard_normal((d, d)))[0][:, : len(s)]
    est = estimate_subspace(P * s @ Q.T)
    assert est.rank == k
    assert subspace_angles(est.basis, Q[:, :k]).max() < 1e-8


def test_subspace_angles_match_scipy_and_resolve_tiny_angles():
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((15, 3)), rng.standard_normal((15, 3))
    np.testing.assert_allclose(subspace_angles(A, B), scipy.linalg.subspace_angles(A, B), atol=1e-12)
    U = orthonormal_basis(rng.standard_normal((15, 3)))
    w = np.linalg.qr(np.column_stack([U, rng.standard_normal(15)]))[0][:, 3]  # unit, ⟂ U
    for t in (1e-3, 1e-9):
        Ut = U.copy()
        Ut[:, 0] = math.cos(t) * U[:, 0] + math.sin(t) * w  # rotate one direction by angle t
        ang = subspace_angles(Ut, U)
        assert ang[0] == pytest.approx(t, rel=1e-6)
        assert ang[1:].max() < 1e-12


# -- CLI -------------------------------------------------------------------------------------


def test_cli_subspace_known_and_auto(capsys):
    args = ["reconstruct", "--d", "40", "--n", "4", "--p", "64", "--restarts", "2", "--max-iter", "500"]
    assert main(args + ["--subspace", "known"]) == 0
    out = capsys.readouterr().out
    assert "subspace    known" in out and "recovered   4/4" in out
    assert main(args + ["--subspace", "auto"]) == 0
    out = capsys.readouterr().out
    assert "r̂=4" in out and "recovered   4/4" in out
    angle = float(out.split("largest principal angle to the true subspace ")[1].split()[0])
    assert angle < 1e-6
    assert main(args + ["--subspace-rank", "4", "--restarts", "1"]) == 0  # same data, full search
    out = capsys.readouterr().out
    assert "recovered   0/4" in out and "subspace    " not in out


def test_cli_subspace_errors(capsys):
    assert main(["reconstruct", "--data", "digits", "--n", "3", "--subspace", "known"]) == 2
    assert "--subspace known needs" in capsys.readouterr().err
    assert main(["reconstruct", "--data", "digits", "--n", "3", "--subspace-rank", "2"]) == 2
    assert "--subspace-rank applies" in capsys.readouterr().err
    assert main(["reconstruct", "--d", "5", "--subspace-rank", "6"]) == 2
    assert "exceeds --d" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reconstruct", "--subspace", "sometimes"])


# -- GPU -------------------------------------------------------------------------------------


@pytest.mark.gpu
@requires_gpu
def test_cupy_subspace_pipeline():
    import cupy as cp

    ds = synthetic_subspace(4, 40, 4, seed=0)
    model = RandomFeatures(64, 40, seed=1000, backend="cupy").fit(cp.asarray(ds.X), cp.asarray(ds.y))
    res = subspace_reconstruct(model.theta, model, cp.asarray(ds.basis), 4, seed=0)
    assert isinstance(res.X_hat, cp.ndarray)
    assert reconstruction_errors(ds.X, cp.asnumpy(res.X_hat)).recovered.all()
    est, tr = estimate_subspace_from_training(cp.asarray(ds.X), cp.asarray(ds.y), true_basis=cp.asarray(ds.basis))
    assert isinstance(est.basis, cp.ndarray) and isinstance(tr.delta_W1, cp.ndarray)
    assert est.rank == 4 and est.max_angle < 1e-6
    gd = rf_gradient_descent(model, cp.asarray(ds.X), cp.asarray(ds.y))
    assert isinstance(gd.delta_theta, cp.ndarray) and gd.rowspan_residual < 1e-10
