"""Tests for rftheory.theory.signs and ``rftheory signs`` (sign-ambiguity diagnostics).

References are independent of the implementation: the closed form
relu(z) − relu(−z) = z, least-squares residuals (numpy.linalg.lstsq) instead
of the QR projector, explicit cos/sin great circles, and hand-built
reconstructions with known signs.  Thresholds are stated where used.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rftheory.theory import signs as S
from rftheory.models.activations import known_activations
from rftheory.backend import cupy_available, get_cupy
from rftheory.cli import main
from rftheory.data.synthetic import synthetic_sphere
from rftheory.theory.hermite import AMBIGUOUS_AFFINE, DEGENERATE_AFFINE, IDENTIFIABLE, SIGN_SYMMETRIC, parity_report
from rftheory.attack.loss import projection_loss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.models.random_features import RandomFeatures

N, D, P = 6, 8, 240  # p/(dn) = 5, p ≫ d + 1
ROUNDING = 1e-12  # "~1e-12 relative": float64 rounding of the features and of the QR projector
NOT_SMALL = 0.05  # a genuine nonlinear Hermite part; 1e10 × the rounding level


def _model(activation, seed=0, p=P, n=N, d=D):
    ds = synthetic_sphere(n, d, seed=seed)
    return ds, RandomFeatures(p, d, activation, seed=seed + 1000).fit(ds.X, ds.y)


@pytest.fixture(scope="module")
def tanh_setup():
    return _model("tanh")


def _lstsq_perp(M, F):
    """Residuals of the rows of F after least squares on the columns of M (independent of QR)."""
    coef, *_ = np.linalg.lstsq(M, F.T, rcond=None)
    return F - (M @ coef).T


# --- projected flip difference -------------------------------------------------


@pytest.mark.parametrize("seed,p,d", [(0, P, D), (1, 500, 12), (2, 60, 20)])
def test_relu_projected_difference_is_rounding_level(seed, p, d):
    ds, model = _model("relu", seed, p=p, d=d)
    fd = S.flip_difference(ds.X, model)
    assert fd.max("odd_projected") <= ROUNDING
    # raw difference is the closed form relu(z) − relu(−z) = z: ‖Vx‖/‖φ(x)‖, far from 0
    V = model.weights
    ref = np.linalg.norm(ds.X @ V.T, axis=1) / np.linalg.norm(model.features(ds.X), axis=1)
    np.testing.assert_allclose(fd.odd_raw, ref, rtol=1e-12)
    assert fd.min("odd_raw") > NOT_SMALL


def test_relu_plus_tanh_projected_difference_is_not_small():
    ds, model = _model("relu+tanh")
    fd = S.flip_difference(ds.X, model)
    assert fd.min("odd_projected") > NOT_SMALL
    assert fd.min("even_projected") > NOT_SMALL
    # the projector agrees with an independent least-squares residual on [1, V]
    M = np.concatenate([np.ones((P, 1)), model.weights], axis=1)
    F, Fm = model.features(ds.X), model.features(-ds.X)
    ref = np.linalg.norm(_lstsq_perp(M, F - Fm), axis=1) / np.linalg.norm(F, axis=1)
    np.testing.assert_allclose(fd.odd_projected, ref, rtol=1e-9)
    ref_aff = np.linalg.norm(_lstsq_perp(M, F), axis=1) / np.linalg.norm(F, axis=1)
    np.testing.assert_allclose(fd.nonaffine, ref_aff, rtol=1e-9)


def test_affine_basis_is_orthonormal_and_spans_one_and_v():
    _, model = _model("relu")
    Q = S.affine_basis(model)
    assert Q.shape == (P, D + 1)
    np.testing.assert_allclose(Q.T @ Q, np.eye(D + 1), atol=1e-12)
    M = np.concatenate([np.ones((P, 1)), model.weights], axis=1)
    np.testing.assert_allclose(Q @ (Q.T @ M), M, atol=1e-12)
    assert np.max(np.abs(S.project_out_affine(M.T, Q))) < 1e-12


def test_affine_basis_rejects_p_not_above_d_plus_one():
    model = RandomFeatures(D + 1, D, "relu", seed=0)
    with pytest.raises(ValueError, match="d\\+1"):
        S.affine_basis(model)


# --- prediction table vs the Hermite parity report ------------------------------


def test_prediction_table_covers_every_registered_activation():
    names = known_activations()
    table = S.prediction_table()
    assert [t.report.activation for t in table] == [parity_report(a).activation for a in names]


@pytest.mark.parametrize("name", known_activations())
def test_prediction_matches_parity_report(name):
    pred = S.prediction_table([name])[0]
    rep = parity_report(name)
    assert pred.prediction == rep.prediction
    assert pred.report == rep
    if rep.prediction in (SIGN_SYMMETRIC, AMBIGUOUS_AFFINE):
        assert pred.parity == (1 if rep.has_even else -1)
        assert not pred.sign_visible
    else:
        assert pred.parity is None
        assert pred.sign_visible == (rep.prediction == IDENTIFIABLE)


@pytest.mark.parametrize("name", known_activations())
def test_measured_verdict_matches_prediction(name):
    """Independent check of the prediction: classify the measured flip differences."""
    ds, model = _model(name)
    fd = S.flip_difference(ds.X, model)
    assert S.measured_verdict(fd) == parity_report(name).prediction
    # the quantity the prediction says vanishes is at the rounding level, the other one is not
    pred = S.sign_prediction(name)
    if pred.prediction in (SIGN_SYMMETRIC, AMBIGUOUS_AFFINE):
        zero, other = ("odd", "even") if pred.parity == 1 else ("even", "odd")
        kind = "raw" if pred.prediction == SIGN_SYMMETRIC else "projected"
        assert fd.max(f"{zero}_{kind}") <= ROUNDING
        assert fd.min(f"{other}_projected") > 1e-3  # sigmoid's odd nonlinear part is the smallest: ≈ 0.07


def test_measured_verdict_thresholds():
    z = np.zeros(3)
    big = np.ones(3)
    mk = lambda **kw: S.FlipDifference(**{**dict(odd_projected=big, even_projected=big, odd_raw=big,  # noqa: E731
                                                 even_raw=big, nonaffine=big, dtype=np.dtype(np.float64)), **kw})
    assert S.measured_verdict(mk()) == IDENTIFIABLE
    assert S.measured_verdict(mk(odd_projected=z)) == AMBIGUOUS_AFFINE
    assert S.measured_verdict(mk(even_raw=z, even_projected=z)) == SIGN_SYMMETRIC
    assert S.measured_verdict(mk(nonaffine=z)) == DEGENERATE_AFFINE
    assert S.measured_verdict(mk(odd_projected=big * 1e-3), rtol=1e-2) == AMBIGUOUS_AFFINE
    assert S.default_rtol(np.float64) == pytest.approx(math.sqrt(np.finfo(np.float64).eps))
    with pytest.raises(ValueError):
        S.measured_verdict(mk(), rtol=-1.0)


# --- loss of flipped sets --------------------------------------------------------


@given(st.lists(st.booleans(), min_size=N, max_size=N))
def test_tanh_flipped_set_has_the_loss_of_the_true_set(tanh_setup, flips):
    ds, model = tanh_setup
    flips = np.array(flips)
    base = S.flipped_loss(ds.X, model.theta, model, np.zeros(N, dtype=bool))
    assert base <= 1e-20  # θ fitted on the true X lies in its feature span
    assert abs(S.flipped_loss(ds.X, model.theta, model, flips) - base) <= 1e-20
    # a generic θ (loss far from 0) too: φ(−x) = −φ(x) leaves the row span unchanged
    theta = np.random.default_rng(7).standard_normal(P)
    L0 = projection_loss(ds.X, theta, model, with_grad=False).loss
    assert L0 > 0.5
    assert S.flipped_loss(ds.X, theta, model, flips) == pytest.approx(L0, rel=1e-12)


@pytest.mark.parametrize("name", ["relu", "relu+tanh"])
def test_flipping_one_sample_changes_the_loss_without_exact_symmetry(name):
    ds, model = _model(name)
    base = S.flipped_loss(ds.X, model.theta, model, [])
    for i in range(N):
        # 1e-6: far above the ≈1e-30 of the true set (measured ≥ 1e-4 at these sizes)
        assert S.flipped_loss(ds.X, model.theta, model, [i]) > 1e-6 > 1e6 * base


def test_flip_rows_and_masks():
    X = np.arange(12.0).reshape(4, 3) + 1
    np.testing.assert_array_equal(S.flip_rows(X, [1, 3]), X * np.array([1, -1, 1, -1])[:, None])
    np.testing.assert_array_equal(S.flip_rows(X, np.array([True, False, False, False]))[0], -X[0])
    np.testing.assert_array_equal(S.flip_rows(X, []), X)
    with pytest.raises(ValueError, match="length"):
        S.flip_rows(X, np.array([True, False]))
    with pytest.raises(ValueError, match="0..3"):
        S.flip_rows(X, [4])
    with pytest.raises(TypeError):
        S.flip_rows(X, [0.5])


def test_flip_loss_scan_enumerates_small_k_and_matches_flipped_loss(tanh_setup):
    ds, model = _model("relu+tanh", n=4)
    scan = S.flip_loss_scan(ds.X, model.theta, model, trials=6, seed=3)
    assert scan.ks.tolist() == [1, 2, 3, 4]
    assert [len(s) for s in scan.subsets] == [math.comb(4, k) for k in (1, 2, 3, 4)]
    assert len(set(scan.subsets[1])) == 6
    for subs, losses in zip(scan.subsets, scan.losses):
        for s, L in zip(subs, losses):
            assert L == S.flipped_loss(ds.X, model.theta, model, list(s))
    big = S.flip_loss_scan(ds.X, model.theta, model, ks=[2], trials=2, seed=3)
    assert len(big.subsets[0]) == 2 and len(set(big.subsets[0])) == 2
    assert big.subsets == S.flip_loss_scan(ds.X, model.theta, model, ks=[2], trials=2, seed=3).subsets
    ds_t, model_t = tanh_setup
    scan_t = S.flip_loss_scan(ds_t.X, model_t.theta, model_t, trials=3)
    assert np.max(np.abs(np.concatenate(scan_t.losses) - scan_t.base_loss)) <= 1e-20
    with pytest.raises(ValueError):
        S.flip_loss_scan(ds.X, model.theta, model, ks=[5])


# --- barrier along the great circle ------------------------------------------------


def test_great_circle_stays_on_the_sphere_and_joins_x_to_minus_x():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(D)
    x *= math.sqrt(D) / np.linalg.norm(x)
    u = rng.standard_normal(D)
    t = np.linspace(0, 1, 11)
    path = S.great_circle(x, u, t)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), math.sqrt(D), rtol=1e-14)
    np.testing.assert_allclose(path[0], x, atol=1e-14)
    np.testing.assert_allclose(path[-1], -x, atol=1e-13)
    # the angle to x grows linearly: ⟨x(t), x⟩ = d cos(πt)
    np.testing.assert_allclose(path @ x, D * np.cos(np.pi * t), atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        S.great_circle(x, 2 * x, t)


def test_barrier_profile_matches_direct_losses(tanh_setup):
    ds, model = tanh_setup
    i = 2
    bp = S.barrier_profile(ds.X, model.theta, model, i, points=9, seed=5)
    assert bp.start_loss == pytest.approx(projection_loss(ds.X, model.theta, model, with_grad=False).loss, abs=1e-25)
    assert bp.end_loss == pytest.approx(S.flipped_loss(ds.X, model.theta, model, [i]), abs=1e-25)
    u = bp.direction
    assert abs(u @ ds.X[i]) < 1e-12 and np.linalg.norm(u) == pytest.approx(1.0)
    t = bp.t[3]
    Xt = ds.X.copy()
    Xt[i] = np.cos(np.pi * t) * ds.X[i] + np.sin(np.pi * t) * math.sqrt(D) * u
    assert bp.loss[3] == pytest.approx(projection_loss(Xt, model.theta, model, with_grad=False).loss, rel=1e-10)
    # tanh: both ends are optimal (exact symmetry) but the path between them is not
    assert abs(bp.end_loss - bp.start_loss) <= 1e-20
    assert bp.height > 1e-6 and bp.excess > 1e-6 and 0 < bp.argmax_t < 1
    profiles = S.barrier_profiles(ds.X, model.theta, model, samples=[0, 1], points=3)
    assert [p.sample for p in profiles] == [0, 1]
    with pytest.raises(ValueError):
        S.barrier_profile(ds.X, model.theta, model, N)


# --- sign agreement of a reconstruction ---------------------------------------------


def test_sign_agreement_on_a_hand_built_reconstruction():
    rng = np.random.default_rng(1)
    X = synthetic_sphere(N, D, seed=4).X
    signs = np.array([1, -1, 1, -1, 1, 1])
    X_hat = signs[:, None] * X + 0.01 * rng.standard_normal(X.shape)  # 0.01·√d/√d ≈ 1% error
    X_hat[5] = rng.standard_normal(D)  # not recovered
    perm = rng.permutation(N)
    sa = S.sign_agreement(X, X_hat[perm])
    np.testing.assert_array_equal(sa.agreement, [1, -1, 1, -1, 1, 0])
    assert sa.correct_sign_fraction == pytest.approx(3 / N)
    assert sa.wrong_sign_fraction == pytest.approx(2 / N) == reconstruction_errors(X, X_hat[perm]).wrong_sign_fraction
    assert sa.unrecovered_fraction == pytest.approx(1 / N)
    np.testing.assert_allclose(sa.cosine[:5], signs[:5], atol=1e-3)


# --- comparison --------------------------------------------------------------------


def _row(name, pred, wrong, flip=0.1, n=4):
    return S.ComparisonRow(name, pred, 0.0, True, 1, 0.0, 0.0, 0.0, 0.0, n, wrong, n, flip, 0.0, 0.0, None)


def test_comparison_verdict_logic():
    agree = S.Comparison([_row("relu", AMBIGUOUS_AFFINE, 2), _row("relu+tanh", IDENTIFIABLE, 0)], {})
    assert agree.verdict()[0] is True and "AGREES" in agree.verdict()[1]
    quiet = S.Comparison([_row("relu", AMBIGUOUS_AFFINE, 0, flip=0.2), _row("relu+tanh", IDENTIFIABLE, 0, flip=0.1),
                          _row("tanh", SIGN_SYMMETRIC, 3)], {})
    ok, msg = quiet.verdict()
    assert ok is False and "DISAGREES" in msg and "relu (ambiguous" in msg and "col([1, V])" in msg and "3/4" in msg
    bad = S.Comparison([_row("tanh", SIGN_SYMMETRIC, 2), _row("relu+tanh", IDENTIFIABLE, 1)], {})
    assert bad.verdict()[0] is False and "1/4 wrong-sign" in bad.verdict()[1]
    assert S.Comparison([_row("relu", AMBIGUOUS_AFFINE, 2)], {}).verdict()[0] is None
    assert quiet.row("tanh").wrong_sign == 3


def test_compare_activations_uses_the_same_data_and_v():
    cmp = S.compare_activations(("relu+tanh", "tanh"), n=3, d=5, ratio=4, data_seed=2, restarts=1, max_iter=300)
    assert cmp.config["p"] == 60 and cmp.config["v_seed"] == 1002 and cmp.config["attack_seed"] == 2
    X = synthetic_sphere(3, 5, seed=2).X
    for r in cmp.rows:
        e = r.agreement.errors
        assert r.wrong_sign == int(e.wrong_sign.sum()) and r.recovered == int(e.recovered.sum())
        model = RandomFeatures(60, 5, r.activation, seed=1002).fit(X, synthetic_sphere(3, 5, seed=2).y)
        assert r.one_flip_loss == pytest.approx(np.mean([S.flipped_loss(X, model.theta, model, [i]) for i in range(3)]))
    assert cmp.row("tanh").even_projected_max <= ROUNDING


@pytest.mark.slow
def test_default_comparison_relu_tanh_has_no_wrong_signs_and_tanh_is_recovered_up_to_sign():
    cmp = S.compare_activations(n=8, d=10, ratio=4, data_seed=0)
    mixed, tanh = cmp.row("relu+tanh"), cmp.row("tanh")
    assert mixed.wrong_sign == 0 and mixed.recovered == 8
    assert tanh.recovered == 8 and tanh.sign_aware_mean < 0.05


# --- CLI ---------------------------------------------------------------------------


SMALL = ["--n", "4", "--d", "5", "--ratio", "4", "--points", "5", "--flips", "2"]


def test_cli_single_activation(capsys):
    assert main(["signs", "relu", *SMALL, "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert AMBIGUOUS_AFFINE in out and "AGREES with the prediction" in out
    assert "V seed=1000" in out and "‖P⊥(φ(x) − φ(−x))‖/‖φ(x)‖" in out and "barrier" in out


def test_cli_all(capsys):
    assert main(["signs", "all", *SMALL]) == 0
    out = capsys.readouterr().out
    n = len(known_activations())
    assert f"{n}/{n} measured verdicts agree" in out


def test_cli_compare_states_seeds_and_verdict(capsys):
    argv = ["signs", "--compare", "--activations", "relu+tanh,tanh", "--n", "3", "--d", "5", "--ratio", "4",
            "--restarts", "1", "--max-iter", "200", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "data seed 1, V seed 1001, attack seed 1" in out and "verdict" in out and "chance" in out


def test_cli_errors(capsys):
    assert main(["signs"]) == 2
    assert "ACTIVATION" in capsys.readouterr().err
    assert main(["signs", "relu", "--n", "4", "--d", "10", "--p", "11"]) == 2
    assert main(["signs", "nosuch", *SMALL]) == 2


def test_cli_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "barrier.png"
    assert main(["signs", "tanh", *SMALL, "--samples", "2", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- GPU -----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy():
    cp = get_cupy()
    ds = synthetic_sphere(N, D, seed=0)
    for name in ("relu", "relu+tanh"):
        cpu = RandomFeatures(P, D, name, seed=1000).fit(ds.X, ds.y)
        gpu = RandomFeatures(P, D, name, seed=1000, backend="cupy").fit(cp.asarray(ds.X), cp.asarray(ds.y))
        fc, fg = S.flip_difference(ds.X, cpu), S.flip_difference(cp.asarray(ds.X), gpu)
        assert type(fg.odd_projected).__module__.startswith("cupy")
        if name == "relu":
            assert fg.max("odd_projected") <= ROUNDING
        else:
            np.testing.assert_allclose(cp.asnumpy(fg.odd_projected), fc.odd_projected, rtol=1e-9)
        Xg = cp.asarray(ds.X)
        assert S.flipped_loss(Xg, gpu.theta, gpu, [0]) == pytest.approx(S.flipped_loss(ds.X, cpu.theta, cpu, [0]),
                                                                        rel=1e-8, abs=1e-20)
        bp = S.barrier_profile(Xg, gpu.theta, gpu, 0, points=5)
        np.testing.assert_allclose(bp.loss, S.barrier_profile(ds.X, cpu.theta, cpu, 0, points=5).loss,
                                   rtol=1e-8, atol=1e-20)


def test_barrier_default_direction_is_not_the_data_stream():
    """Data drawn from default_rng(0) and the barrier's default direction for (seed 0, sample 0) must differ:
    default_rng([0, 0]) equals default_rng(0), so an untagged stream made u parallel to x_0."""
    from rftheory.models.random_features import RandomFeatures
    from rftheory.theory.signs import barrier_profile

    n, d = 3, 8
    G = np.random.default_rng(0).standard_normal((n, d))
    X = G * (np.sqrt(d) / np.linalg.norm(G, axis=1, keepdims=True))
    X[0] = np.random.default_rng(0).standard_normal(d)
    X[0] *= np.sqrt(d) / np.linalg.norm(X[0])
    model = RandomFeatures(400, d, "relu+tanh", seed=5).fit(X, X[:, 0])
    prof = barrier_profile(X, model.theta, model, sample=0, points=5, seed=0)
    assert np.all(np.isfinite(prof.loss))
