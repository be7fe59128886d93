"""Tests of rftheory.attack.subspace: the attack in a known subspace, the Δθ objective
for GD from θ₀, the CLI's subspace options, and the CuPy pipeline."""
import math

import numpy as np
import pytest

from rftheory.attack.loss import projection_loss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.attack.reconstruct import reconstruct
from rftheory.attack.subspace import delta_theta_loss, subspace_reconstruct
from rftheory.attack.subspace_estimate import estimate_subspace_from_training
from rftheory.backend import cupy_available
from rftheory.cli import main
from rftheory.data.subspace import synthetic_subspace
from rftheory.models.random_features import RandomFeatures
from rftheory.models.subspace import SubspaceRandomFeatures
from rftheory.models.training import rf_gradient_descent

requires_gpu = pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device (none visible)")


def _in_span_residual(X, U):
    return np.linalg.norm(X - (X @ U) @ U.T, axis=1) / np.linalg.norm(X, axis=1)


# -- attack in a known subspace -----------------------------------------------------------


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


def test_delta_theta_objective_and_attack(gd_problem):
    ds, model, gd = gd_problem
    assert delta_theta_loss(ds.X, gd.theta, gd.theta0, model, with_grad=False).loss < 1e-12
    assert delta_theta_loss(ds.X, gd.theta, None, model, with_grad=False).loss > 0.5  # θ_T is not in the span
    assert delta_theta_loss(ds.X, gd.theta, None, model).loss == pytest.approx(
        projection_loss(ds.X, gd.theta, model).loss, rel=1e-12)
    res = reconstruct(gd.delta_theta, model, 3, seed=0)
    assert reconstruction_errors(ds.X, res.X_hat).recovered.all()


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
