"""Tests of rftheory.attack.subspace_estimate: the data subspace from ΔW₁ of a two-layer net."""
import math

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from rftheory.attack.subspace_estimate import (
    choose_rank,
    estimate_subspace,
    estimate_subspace_from_training,
    subspace_angles,
)
from rftheory.data.subspace import synthetic_subspace
from rftheory.models.subspace import orthonormal_basis


def _in_span_residual(X, U):
    return np.linalg.norm(X - (X @ U) @ U.T, axis=1) / np.linalg.norm(X, axis=1)


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
