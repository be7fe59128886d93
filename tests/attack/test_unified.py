"""The unified formulation (rftheory.attack.unified), the verdict and the audit driver."""
import numpy as np
import pytest

from rftheory.attack.audit import audit, choose_form
from rftheory.attack.loss import feature_map_loss
from rftheory.attack.unified import (FORMS, Formulation, KKTHead, DataSubspace, SubspaceMap, data_subspace,
                                     decay_factor, kkt_multipliers, model_at, span_state, target_matrix)
from rftheory.attack.verdict import LEVELS, judge
from rftheory.data.digits import digits
from rftheory.models.adapters import SmallResNet, TwoLayerMLP, one_hot_targets


def _span_update(rng, m=200, d=30, n=6, c=1.0):
    W0 = rng.standard_normal((m, d)) / np.sqrt(d)
    X = rng.standard_normal((n, d))
    A = rng.standard_normal((m, n)) * 0.05
    return W0, c * W0 + A @ X, X


@pytest.mark.parametrize("c", [1.0, 0.9, 0.6])
def test_decay_factor_recovers_the_scalar_of_weight_decay(c):
    rng = np.random.default_rng(0)
    W0, WT, _ = _span_update(rng, c=c)
    assert decay_factor(WT, W0, 6) == pytest.approx(c, abs=1e-10)


def _mlp_with(W0, WT, outputs=2):
    m, d = W0.shape
    model = TwoLayerMLP(d, m, outputs, "relu", seed=1)
    model.init_params["hidden.weight"] = W0
    model.params["hidden.weight"] = WT
    model.params["head.weight"] = model.params["head.weight"] + 0.1
    return model


def test_data_subspace_spans_the_inputs_and_flags_a_per_coordinate_update():
    rng = np.random.default_rng(1)
    W0, WT, X = _span_update(rng, c=0.8)
    sub = data_subspace(_mlp_with(W0, WT), 6)
    assert sub.c == pytest.approx(0.8, abs=1e-10)
    # every input lies in span(basis): its component outside is round-off
    outside = X - (X @ sub.basis) @ sub.basis.T
    assert np.linalg.norm(outside) < 1e-10 * np.linalg.norm(X)
    assert sub.tail_energy < 1e-20 and span_state(sub) == 0 and sub.usable and sub.signal_rank == 6
    # an Adam-like update: each entry rescaled by its own factor, no longer rank n
    scale = rng.uniform(0.2, 1.8, size=WT.shape)
    bad = data_subspace(_mlp_with(W0, W0 + scale * (WT - 0.8 * W0)), 6)
    assert bad.tail_energy > 1e-2 and span_state(bad) == 2


def test_data_subspace_is_unusable_when_n_reaches_d():
    rng = np.random.default_rng(2)
    W0, WT, _ = _span_update(rng, d=5, n=6)
    sub = data_subspace(_mlp_with(W0, WT), 6)
    assert not sub.usable and sub.notes


def _small_mlp(rng, d=12, m=64, C=3):
    model = TwoLayerMLP(d, m, C, "relu+tanh", seed=3)
    for k, v in model.params.items():
        model.params[k] = v + 0.05 * rng.standard_normal(v.shape)
    return model


def _assert_loss_gradient_matches_fd(X, Theta, model, entries, rel, h=1e-6):
    """The projection loss's gradient at the given entries of X against central differences."""
    res = feature_map_loss(X, Theta, model)
    for i, j in entries:
        E = np.zeros_like(X)
        E[i, j] = h
        fd = (feature_map_loss(X + E, Theta, model, with_grad=False).loss
              - feature_map_loss(X - E, Theta, model, with_grad=False).loss) / (2 * h)
        assert res.grad[i, j] == pytest.approx(fd, rel=rel, abs=1e-9)
    return res


def test_subspace_map_lift_project_and_gradient_match_finite_differences():
    rng = np.random.default_rng(3)
    model = _small_mlp(rng)
    B = np.linalg.qr(rng.standard_normal((12, 5)))[0]
    sub = SubspaceMap(model, B)
    G = rng.standard_normal((4, 5))
    np.testing.assert_allclose(sub.project(sub.lift(G)), G, atol=1e-12)
    assert np.allclose(np.linalg.norm(sub.lift(G), axis=1) / np.linalg.norm(G, axis=1), np.sqrt(12 / 5))
    _assert_loss_gradient_matches_fd(G, rng.standard_normal((64, 3)), sub, [(0, 0), (1, 3), (3, 4)], rel=1e-5)


def _in_kkt_cone(alpha, atol=1e-12):
    pos = (alpha > atol).sum(axis=1)
    return bool(np.all(pos <= 1) and np.allclose(alpha.sum(axis=1), 0, atol=1e-10))


def test_kkt_multipliers_lie_in_the_cone_and_beat_feasible_points():
    rng = np.random.default_rng(4)
    n, p, C = 5, 40, 3
    Phi = rng.standard_normal((n, p))
    Theta = rng.standard_normal((p, C))
    A, B = Phi @ Phi.T, Phi @ Theta
    alpha = kkt_multipliers(A, B)
    assert _in_kkt_cone(alpha)

    def obj(a):
        return float(np.sum((Theta - Phi.T @ a) ** 2))

    y = np.argmax(np.linalg.solve(A, B), axis=1)
    for _ in range(200):  # random feasible points with the same labels never do better
        lam = rng.exponential(size=(n, C))
        a = -lam
        a[np.arange(n), y] = 0
        a[np.arange(n), y] = -a.sum(axis=1)
        assert obj(a) >= obj(alpha) - 1e-9


def test_kkt_multipliers_equal_the_free_solution_inside_the_cone():
    rng = np.random.default_rng(5)
    n, p, C = 4, 30, 3
    Phi = rng.standard_normal((n, p))
    alpha_true = -rng.uniform(0.1, 1, size=(n, C))
    alpha_true[np.arange(n), [0, 1, 2, 0]] = 0
    alpha_true[np.arange(n), [0, 1, 2, 0]] = -alpha_true.sum(axis=1)
    Theta = Phi.T @ alpha_true
    np.testing.assert_allclose(kkt_multipliers(Phi @ Phi.T, Phi @ Theta), alpha_true, atol=1e-8)


def test_kkt_head_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    model = KKTHead(_small_mlp(rng))
    X = rng.standard_normal((4, 12))
    res = _assert_loss_gradient_matches_fd(X, rng.standard_normal((64, 3)), model, [(0, 1), (2, 7), (3, 11)],
                                           rel=1e-4)
    assert _in_kkt_cone(res.alpha)


def test_model_at_init_uses_the_initial_body_and_keeps_the_head():
    rng = np.random.default_rng(7)
    model = _small_mlp(rng)
    at0 = model_at(model, "init")
    fresh = TwoLayerMLP(12, 64, 3, "relu+tanh", seed=3)
    X = rng.standard_normal((3, 12))
    np.testing.assert_array_equal(at0.features(X), fresh.features(X))
    assert at0.params["head.weight"] is model.params["head.weight"]
    assert model_at(model, "trained") is model
    Theta = target_matrix(model, FORMS["span-init"], c=0.5)
    np.testing.assert_allclose(Theta, (model.params["head.weight"] - 0.5 * model.init_params["head.weight"]).T)
    np.testing.assert_array_equal(target_matrix(model, FORMS["kkt"]), model.params["head.weight"].T)


def test_formulation_refuses_gradients_at_init_without_init():
    with pytest.raises(ValueError, match="cannot take gradients at θ₀"):
        Formulation(target="trained", point="init")
    with pytest.raises(ValueError, match="point must be"):
        Formulation(point="middle")


def _sub(tail, tail_w):
    return DataSubspace(np.eye(3), 1.0, np.ones(3), tail, tail_w, 3, True)


def test_span_state_reads_rounding_as_holding_and_a_large_tail_as_violated():
    assert span_state(_sub(1e-5, 1e-11)) == 0
    assert span_state(_sub(0.5, 1e-11)) == 0  # a tiny update: its whole tail is rounding of the weights
    assert span_state(_sub(5e-3, 1e-6)) == 1
    assert span_state(_sub(6e-2, 1.6e-3)) == 2  # the Adam run of the benchmark


def test_judge_levels_follow_each_figure():
    ok = dict(p=2000, n=10, k=10, outputs=1)
    assert judge(1e-6, 0.5, subspace=_sub(1e-6, 1e-12), agreement=1.0, **ok).level == LEVELS[0]
    assert judge(1e-3, 0.5, **ok).level == LEVELS[1]  # ratio 2e-3: between the cuts
    v = judge(0.3, 0.5, **ok)
    assert v.violated and "random guess" in v.words()
    v = judge(1e-6, 0.5, subspace=_sub(6e-2, 1e-3), **ok)
    assert v.violated and "Adam" in v.words()
    v = judge(1e-12, 0.5, p=50, n=10, k=10)
    assert v.violated and "counting" in v.words()
    v = judge(1e-6, 0.5, agreement=0.0, second_loss=2e-6, **ok)
    assert v.violated and "different inputs" in v.words()


def _gd_mlp(n=8, width=1024, seed=0):
    ds = digits(n, classes=(0, 1, 2), seed=seed)
    Y, _ = one_hot_targets(ds.y)
    model = TwoLayerMLP(64, width, Y.shape[1], "relu", seed=seed + 10)
    model.fit(ds.X, Y, train="all", tol=1e-6, max_steps=3000)
    return ds, model


def test_audit_recovers_a_gd_trained_mlp_and_says_the_assumptions_hold():
    from rftheory.attack.metrics import reconstruction_errors

    ds, model = _gd_mlp()
    res = audit(model, 8, restarts=2)
    assert res.form_name == "span-init" and res.subspace.usable
    assert reconstruction_errors(ds.X, res.X_hat).recovered.all()
    assert res.verdict.holds, res.verdict.words()
    assert res.agrees.all() and res.reliable.all()


def test_audit_of_an_avg_pool_resnet_is_violated_by_counting():
    ds = digits(6, classes=(0, 1), seed=0)
    model = SmallResNet((1, 8, 8), 8, 1, 1, "relu", pool="avg", seed=0)
    model.fit(ds.X, ds.y, train="last", tol=1e-6, max_steps=500)
    res = audit(model, 6, restarts=1, max_iter=100)
    assert res.subspace is None
    assert res.verdict.violated and "counting" in res.verdict.words()
    with pytest.raises(ValueError, match="linearly dependent"):
        audit(model, 9)


def test_choose_form_follows_the_initialisation():
    rng = np.random.default_rng(8)
    model = _small_mlp(rng)
    assert choose_form(model)[0] == "span-init"
    for k in model.init_params:
        model.init_params[k] = np.zeros_like(model.init_params[k])
    assert choose_form(model)[0] == "kkt"
    with pytest.raises(ValueError, match="needs the initialisation"):
        choose_form(model, "span-init")
    with pytest.raises(ValueError, match="form must be"):
        choose_form(model, "ntk")


def test_subspace_loss_gradient_matches_torch_autograd():
    """The projection loss through SubspaceMap and the initial body, differentiated by torch."""
    torch = pytest.importorskip("torch", reason="autograd cross-check needs torch")
    rng = np.random.default_rng(2)
    model = TwoLayerMLP(10, 40, 2, "relu+tanh", seed=3)
    for k in model.params:
        model.params[k] = model.params[k] + 0.1 * rng.standard_normal(model.params[k].shape)
    B = np.linalg.qr(rng.standard_normal((10, 4)))[0]
    sub = SubspaceMap(model_at(model, "init"), B)
    G = rng.standard_normal((3, 4))
    Theta = rng.standard_normal((40, 2))
    ours = feature_map_loss(G, Theta, sub)

    Gt = torch.tensor(G, requires_grad=True)
    W0 = torch.tensor(model.init_params["hidden.weight"])
    b0 = torch.tensor(model.init_params["hidden.bias"])
    Z = (np.sqrt(10 / 4) * Gt @ torch.tensor(B).T) @ W0.T + b0
    F = torch.relu(Z) + torch.tanh(Z)
    T = torch.tensor(Theta)
    alpha = torch.linalg.solve(F @ F.T, F @ T)
    loss = ((T - F.T @ alpha) ** 2).sum() / (T ** 2).sum()
    loss.backward()
    assert float(loss.detach()) == pytest.approx(ours.loss, rel=1e-10)
    np.testing.assert_allclose(ours.grad, Gt.grad.numpy(), rtol=1e-7, atol=1e-12)
