"""The attack's global moves (rftheory.attack.moves) on tiny problems, and the strategies through reconstruct."""
import numpy as np
import pytest

from rftheory.attack import moves
from rftheory.attack.loss import PreparedProjectionLoss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.attack.options import STRATEGIES, AttackOptions
from rftheory.attack.reconstruct import _lbfgs, reconstruct
from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.random_features import RandomFeatures
from rftheory.optim.sphere import random_sphere


class _Fun:
    """The attack's evaluator as the moves see it: fun(X, with_grad), .single for L-BFGS, .stopped."""

    def __init__(self, theta, model):
        self.loss = PreparedProjectionLoss(theta, model, tangent=True)
        self.callback, self.stopped, self.evaluations = None, False, 0

    def __call__(self, X, with_grad=True):
        return self.loss(X, with_grad=with_grad)

    def single(self, Xs):
        res = self.loss(Xs[0])
        return (res.loss,), res.grad[None]


def _problem(n=4, d=6, p=600, seed=0):
    ds = synthetic_sphere(n, d, seed=seed)
    model = RandomFeatures(p, d, "relu+tanh", seed=seed + 1000, dtype=np.float64).fit(ds.X, ds.y)
    fun = _Fun(model.theta, model)
    return ds, model, fun, (lambda X, iters: _lbfgs(fun, X, iters, 1e-14, []))


def test_extra_rows_stay_below_the_counting_limit():
    assert moves.extra_rows_for(20, 40, 1200) == min(20, 1200 // 41 - 21) == 8
    assert moves.extra_rows_for(10, 20, 4000) == 10  # capped at n
    assert moves.extra_rows_for(20, 40, 880) == 1  # at least one
    assert moves.extra_rows_for(5, 4, 7, requested=9) == 2  # n + k ≤ p
    for n, d, p in [(20, 40, 1000), (10, 100, 1500), (6, 12, 200)]:
        k = moves.extra_rows_for(n, d, p)
        assert k == 1 or (n + k) * (d + 1) < p


def test_near_duplicate_pair_is_found_by_absolute_cosine():
    rng = np.random.default_rng(0)
    X = random_sphere(4, 6, rng)
    assert moves.near_duplicate_pair(X, 0.99) is None
    X[3] = -X[1] + 1e-3 * rng.standard_normal(6)  # antiparallel counts too
    i, j, c = moves.near_duplicate_pair(X, 0.99)
    assert {i, j} == {1, 3} and c > 0.99
    assert moves.near_duplicate_pair(X[:1], 0.99) is None


def test_leave_one_out_losses_stacked_equal_one_by_one():
    ds, model, fun, _ = _problem()
    X = np.vstack([ds.X, random_sphere(1, 6, np.random.default_rng(1))])
    stacked = moves.leave_one_out_losses(fun, X, stacked=True)
    single = moves.leave_one_out_losses(fun, X, stacked=False)
    np.testing.assert_allclose(stacked, single, rtol=1e-10, atol=1e-15)
    assert stacked[-1] < 1e-20 < stacked[:-1].min()  # the truth without the extra row still fits θ


def test_row_to_drop_prefers_a_near_duplicate_pair_over_the_least_useful_row():
    ds, model, fun, _ = _problem()
    extra = random_sphere(1, 6, np.random.default_rng(2))[0]
    X = np.vstack([ds.X, extra])
    assert moves.row_to_drop(fun, X, 0.99, stacked=True) == 4  # the useless extra row
    twin = ds.X[0] + 1e-4 * np.random.default_rng(3).standard_normal(6)
    X = np.vstack([ds.X, twin * np.sqrt(6) / np.linalg.norm(twin)])
    assert moves.row_to_drop(fun, X, 0.99, stacked=True) in (0, 4)


def test_prune_removes_the_extra_rows_and_keeps_the_truth():
    ds, model, fun, local = _problem()
    X = np.vstack([ds.X, random_sphere(2, 6, np.random.default_rng(4))])
    X_hat, L, iterations, _ = moves.prune(fun, local, X, 4, 0.99, stacked=True)
    assert X_hat.shape == (4, 6) and L < 1e-12
    assert np.all(reconstruction_errors(ds.X, X_hat).sign_aware < 1e-6)


def test_overparameterised_start_recovers_a_tiny_problem_and_is_deterministic():
    ds, model, fun, local = _problem()
    runs = [moves.overparameterised_start(fun, local, model, 4, 2, np.random.default_rng(5), 500, 0.99, True)
            for _ in range(2)]
    (X, L, it, _), (X2, L2, _, _) = runs
    assert X.shape == (4, 6) and it > 0 and L < 1e-10
    assert np.all(reconstruction_errors(ds.X, X).recovered)
    np.testing.assert_array_equal(X, X2)


def test_birth_death_move_returns_n_rows_and_flags_duplicates():
    ds, model, fun, local = _problem()
    X0 = random_sphere(4, 6, np.random.default_rng(6))
    X, L, _, _ = local(X0, 50)
    Z, LZ, it, ok = moves.birth_death_move(fun, local, model, X, np.random.default_rng(7), 0.99, True)
    assert Z.shape == (4, 6) and it > 0 and np.isfinite(LZ)
    assert ok == (moves.near_duplicate_pair(Z, 0.99) is None)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_recovers_an_easy_problem_reproducibly(strategy):
    ds = synthetic_sphere(5, 8, seed=1)
    model = RandomFeatures(1200, 8, "relu+tanh", seed=1001).fit(ds.X, ds.y)
    a = reconstruct(model.theta, model, 5, strategy=strategy, restarts=2)
    b = reconstruct(model.theta, model, 5, strategy=strategy, restarts=2)
    np.testing.assert_array_equal(a.X_hat, b.X_hat)
    assert a.loss_at_tol and np.all(reconstruction_errors(ds.X, a.X_hat).recovered)
    assert a.options.strategy == strategy


def test_strategy_options_are_checked():
    with pytest.raises(ValueError, match="unknown strategy"):
        AttackOptions(strategy="annealing")
    with pytest.raises(ValueError, match="merge_cos"):
        AttackOptions(merge_cos=1.0)
    with pytest.raises(ValueError, match="extra_rows"):
        AttackOptions(extra_rows=-1)
    with pytest.raises(TypeError, match="moves"):
        AttackOptions(moves=1.5)


def test_birth_death_recovers_a_near_limit_cell_that_plain_restarts_miss():
    """n=20, d=40, p = 2dn (issue 22's benchmark cell, seed 1): the default restarts stop with one sample
    unrecovered at L ≈ 5e-7; birth-death moves from the same seed recover all 20."""
    ds = synthetic_sphere(20, 40, seed=1, noise=0.1)
    model = RandomFeatures(1600, 40, "relu+tanh", seed=1001, dtype=np.float64).fit(ds.X, ds.y)
    plain = reconstruct(model.theta, model, 20, strategy="restarts")
    moved = reconstruct(model.theta, model, 20, strategy="birthdeath")
    assert not np.all(reconstruction_errors(ds.X, plain.X_hat).recovered) and not plain.loss_at_tol
    assert moved.loss_at_tol and np.all(reconstruction_errors(ds.X, moved.X_hat).recovered)


def test_default_strategy_is_pursuit_and_equals_restarts_when_the_first_restart_reaches_tol():
    assert AttackOptions().strategy == "pursuit"
    ds = synthetic_sphere(10, 20, seed=0)
    model = RandomFeatures(4000, 20, "relu+tanh", seed=1000, dtype=np.float64).fit(ds.X, ds.y)
    a = reconstruct(model.theta, model, 10)
    b = reconstruct(model.theta, model, 10, strategy="restarts")
    c = reconstruct(model.theta, model, 10, strategy="birthdeath")
    assert a.loss_at_tol and a.moves == 0
    for other in (b, c):
        np.testing.assert_array_equal(a.X_hat, other.X_hat)
        assert a.loss == other.loss and a.loss_history == other.loss_history


def test_pursuit_recovers_a_near_limit_cell_that_restarts_and_birth_death_miss():
    """n=8, d=16, p/(dn) = 1.25 (p = 160, seed 0): plain restarts and birth-death moves stop above
    1e-5 with 0/8 samples; the pursuit start and its re-growth moves recover all 8."""
    ds = synthetic_sphere(8, 16, seed=0, noise=0.1)
    model = RandomFeatures(160, 16, "relu+tanh", seed=1000, dtype=np.float64).fit(ds.X, ds.y)
    for strategy in ("restarts", "birthdeath"):
        missed = reconstruct(model.theta, model, 8, strategy=strategy)
        assert not missed.loss_at_tol and not np.any(reconstruction_errors(ds.X, missed.X_hat).recovered)
    found = reconstruct(model.theta, model, 8, strategy="pursuit")
    assert found.loss_at_tol and found.moves >= 1 and found.stop_reason == "tol"
    assert np.all(reconstruction_errors(ds.X, found.X_hat).recovered)


def test_pursuit_honours_the_callback_while_it_grows_rows():
    """A callback that asks to stop is obeyed inside the pursuit (not only between L-BFGS iterations):
    the attack returns after the first question once the restart is over, with stop reason "callback"."""
    ds = synthetic_sphere(8, 16, seed=1, noise=0.1)
    model = RandomFeatures(192, 16, "relu+tanh", seed=1001, dtype=np.float64).fit(ds.X, ds.y)
    plain = reconstruct(model.theta, model, 8, strategy="restarts", restarts=1)
    calls = []

    def cb(X, L):
        calls.append(L)
        return len(calls) > len(plain.loss_history) + 5  # let the restart finish, then stop at once

    res = reconstruct(model.theta, model, 8, strategy="pursuit", restarts=1, callback=cb)
    assert res.stop_reason == "callback" and not res.loss_at_tol
    assert len(calls) <= len(plain.loss_history) + 7


def test_pursuit_falls_back_to_birth_death_for_a_multi_output_theta():
    ds = synthetic_sphere(4, 8, seed=2)
    Y = np.stack([ds.y, -ds.y, ds.y ** 2], axis=1)
    model = RandomFeatures(40, 8, "relu+tanh", seed=1002, dtype=np.float64).fit(ds.X, Y)
    short = dict(restarts=1, moves=2, max_iter=30, reseed=False)  # stops above tol, so the moves run
    a = reconstruct(model.theta, model, 4, strategy="pursuit", **short)
    b = reconstruct(model.theta, model, 4, strategy="birthdeath", **short)
    assert a.moves == 2 and a.stop_reason == "moves"
    np.testing.assert_array_equal(a.X_hat, b.X_hat)
    assert a.loss == b.loss


def test_one_row_has_leave_one_out_loss_one_and_deletes_to_an_empty_set():
    ds, model, fun, local = _problem()
    X = random_sphere(1, 6, np.random.default_rng(2))
    assert moves.delete_row(X, 0).shape == (0, 6)
    np.testing.assert_array_equal(moves.leave_one_out_losses(fun, X, True), [1.0])
    assert moves.least_useful_row(fun, X, True) == 0


def test_pursuit_runs_once_after_the_first_failed_restart_and_ends_after_fruitless_moves(monkeypatch):
    """Strategy "pursuit" searches once, from the first restart that ended above tol, before the next
    restart; its re-growth moves stop after MAX_FRUITLESS_MOVES rejected proposals in a row (here: every
    one), and the other restarts still run when it fails."""
    from rftheory.attack import pursuit, reconstruct as rec

    calls = {"start": 0, "move": 0}
    real_start = pursuit.pursuit_start
    restarts_seen = []

    def start(*a, **k):
        calls["start"] += 1
        return real_start(*a, **k)

    def worse(fun, local, theta, model, X, rng, **k):
        calls["move"] += 1
        return X, float("inf"), 1, True

    monkeypatch.setattr(pursuit, "pursuit_start", start)
    monkeypatch.setattr(pursuit, "pursuit_move", worse)
    ds = synthetic_sphere(8, 16, seed=0, noise=0.1)
    model = RandomFeatures(160, 16, "relu+tanh", seed=1000, dtype=np.float64).fit(ds.X, ds.y)
    res = reconstruct(model.theta, model, 8, restarts=2, max_iter=40, tol=1e-30, moves=rec.MAX_FRUITLESS_MOVES + 5,
                      progress=lambda r, L: restarts_seen.append((r, calls["start"])))
    assert len(res.restarts) == 2 and calls["start"] == 1
    # restart 1, its pursuit's start and every move (r = restarts), then restart 2
    assert restarts_seen == [(0, 0)] + [(2, 1)] * (1 + rec.MAX_FRUITLESS_MOVES) + [(1, 1)]
    assert calls["move"] == rec.MAX_FRUITLESS_MOVES and res.stop_reason == "moves" and not res.loss_at_tol


def test_pursuit_growth_is_lean_only_for_a_large_problem():
    """pursuit_settings: the full growth while one ascent step at STARTS points costs ≤ LEAN_ABOVE_FLOPS,
    the lean one beyond (d = 3072, p = 2dn for 8 rows) in the model's dtype."""
    from types import SimpleNamespace

    from rftheory.attack import pursuit

    small = pursuit.pursuit_settings(SimpleNamespace(p=1250, d=100))
    assert small == dict(starts=pursuit.STARTS, iters=pursuit.ASCENT_ITERATIONS, refit_iter=pursuit.REFIT_ITERATIONS,
                         polish_iter=pursuit.POLISH_ITERATIONS, dtype=np.float64, stall=None)  # float64, own test
    assert pursuit.pursuit_settings(SimpleNamespace(p=49152, d=3072)) == pursuit.LEAN
    edge = int(pursuit.LEAN_ABOVE_FLOPS // (4 * pursuit.STARTS * 100))
    assert pursuit.pursuit_settings(SimpleNamespace(p=edge, d=100))["starts"] == pursuit.STARTS
    assert pursuit.pursuit_settings(SimpleNamespace(p=edge + 1, d=100)) == pursuit.LEAN


def test_proposal_refits_stop_on_a_creeping_plateau_and_a_winner_is_polished(monkeypatch):
    """Lean settings: the pursuit's proposal refits use LEAN["stall"] (stop once L falls by less than half
    over the window); a stalled proposal that beats the current state goes on under the optimiser's own test."""
    from rftheory.attack import pursuit
    from rftheory.attack import reconstruct as rec

    monkeypatch.setattr(pursuit, "LEAN_ABOVE_FLOPS", 0.0)  # lean settings for this small problem
    lenient = pursuit.LEAN["stall"]

    seen = []
    real = rec._lbfgs

    def spy(fun, X, max_iter, tol, history, stall=None):
        out = real(fun, X, max_iter, tol, history, stall=stall)
        seen.append((stall, out[3]))
        return out

    monkeypatch.setattr(rec, "_lbfgs", spy)
    ds = synthetic_sphere(8, 16, seed=0, noise=0.1)
    model = RandomFeatures(160, 16, "relu+tanh", seed=1000, dtype=np.float64).fit(ds.X, ds.y)
    reconstruct(model.theta, model, 8, restarts=1, max_iter=400, tol=1e-30, moves=2)
    proposals = [reason for stall, reason in seen if stall == lenient]
    assert len(proposals) == 3  # the pursuit start and two moves
    assert "stalled" in proposals  # at tol = 1e-30 only the stall test or the cap ends them
    first = next(k for k, (stall, _) in enumerate(seen) if stall == lenient)
    polishes = [k for k in range(first, len(seen)) if seen[k][0] is None]
    assert polishes  # some stalled proposal beats the state before it
    assert all(seen[k - 1] == (lenient, "stalled") for k in polishes)


def test_a_lenient_stall_test_ends_a_creeping_refit_sooner():
    """_lbfgs's stall = (window, rtol): L must fall by rtol·L over window iterations to go on."""
    from rftheory.attack import reconstruct as rec

    ds = synthetic_sphere(8, 16, seed=0, noise=0.1)
    model = RandomFeatures(160, 16, "relu+tanh", seed=1000, dtype=np.float64).fit(ds.X, ds.y)
    fun = rec._Counter(model.theta, model, "true")
    X0 = random_sphere(8, 16, np.random.default_rng(3))
    _, L_strict, it_strict, _ = rec._lbfgs(fun, X0, 3000, 1e-30, [])
    _, L_lenient, it_lenient, why = rec._lbfgs(fun, X0, 3000, 1e-30, [], stall=(20, 0.5))
    assert why == "stalled" and it_lenient < it_strict and L_lenient >= L_strict
