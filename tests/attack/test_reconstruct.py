"""Acceptance of the attack: recovery above the threshold, and
L ≈ 0 without recovery below it."""
import numpy as np
import pytest

from rftheory.data.synthetic import synthetic_sphere
from rftheory.attack.loss import projection_loss
from rftheory.attack.metrics import chance_levels, reconstruction_errors
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import reconstruct

N, D = 10, 20


def _attack(seed, ratio, activation="relu+tanh", **kw):
    ds = synthetic_sphere(N, D, seed=seed)
    model = RandomFeatures(int(ratio * N * D), D, activation, seed=seed + 1000).fit(ds.X, ds.y)
    result = reconstruct(model.theta, model, N, seed=seed, **kw)
    return ds, model, result, reconstruction_errors(ds.X, result.X_hat)


def test_recovers_every_sample_above_the_threshold_for_most_seeds():
    full = 0
    for seed in range(5):
        _, _, result, errs = _attack(seed, ratio=20)
        assert result.loss < 1e-8
        full += bool(np.all(errs.sign_aware < 0.05))
    assert full >= 4, f"only {full}/5 seeds recovered every sample"


@pytest.mark.parametrize("seed", [0, 1])
def test_zero_loss_is_not_success_below_the_threshold(seed):
    ds, model, result, errs = _attack(seed, ratio=0.25)
    chance = chance_levels(ds.X, seed=seed)
    assert result.loss < 1e-8  # the loss is fitted ...
    assert errs.recovered_fraction == 0.0  # ... but nothing is recovered
    assert errs.sign_aware.mean() > 0.8 * chance["sign_aware"]
    assert abs(errs.signed.mean() - chance["signed"]) < 0.25


def test_reconstruction_is_reproducible_and_on_the_sphere():
    a = _attack(3, ratio=2, max_iter=200, restarts=1)[2]
    b = _attack(3, ratio=2, max_iter=200, restarts=1)[2]
    assert np.array_equal(a.X_hat, b.X_hat)
    np.testing.assert_allclose(np.linalg.norm(a.X_hat, axis=1), np.sqrt(D))


def test_float32_attack_reports_the_float64_loss_of_its_x_hat():
    _, model, result, _ = _attack(4, ratio=3, max_iter=100, restarts=1)
    assert result.X_hat.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(result.X_hat, axis=1), np.sqrt(D), rtol=1e-14)
    assert result.loss == projection_loss(result.X_hat, model.theta, model, with_grad=False).loss


def test_result_loss_is_the_loss_of_x_hat():
    _, model, result, _ = _attack(4, ratio=3, max_iter=300, restarts=2, dtype=None)
    assert result.loss == pytest.approx(projection_loss(result.X_hat, model.theta, model).loss, rel=1e-9, abs=1e-15)
    assert min(result.restarts) == pytest.approx(result.loss)  # the best restart, its pursuit included, is the result
    assert result.loss_history[-1] == pytest.approx(result.loss)
    if result.reseeds == 0:  # line-searched steps never increase the loss
        assert all(b <= a for a, b in zip(result.loss_history, result.loss_history[1:]))


def test_momentum_optimizer_decreases_the_loss():
    ds = synthetic_sphere(6, 8, seed=1)
    model = RandomFeatures(1000, 8, "relu+tanh", seed=5).fit(ds.X, ds.y)
    result = reconstruct(model.theta, model, 6, optimizer="momentum", lr=0.05, max_iter=300, restarts=1, reseed=False)
    assert result.loss < 0.5 * result.loss_history[0]


def test_init_is_used_and_truth_is_a_fixed_point():
    ds = synthetic_sphere(5, 6, seed=2)
    model = RandomFeatures(800, 6, "tanh", seed=3).fit(ds.X, ds.y)
    result = reconstruct(model.theta, model, 5, init=ds.X, restarts=1)
    assert result.iterations == 0 and result.loss_at_tol
    np.testing.assert_allclose(result.X_hat, ds.X)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(n=0), ValueError, "positive integer"),
        (dict(n=2000), ValueError, "n̂=2000 > p"),
        (dict(n=5, optimizer="adam"), ValueError, "unknown optimizer"),
        (dict(n=5, restarts=0), ValueError, "restarts"),
        (dict(n=5, init=np.ones((4, 6))), ValueError, "rows but n=5"),
        (dict(n=5, lr=-1.0), ValueError, "lr"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    ds = synthetic_sphere(5, 6, seed=2)
    model = RandomFeatures(800, 6, "tanh", seed=3).fit(ds.X, ds.y)
    n = kwargs.pop("n")
    with pytest.raises(exc, match=match):
        reconstruct(model.theta, model, n, **kwargs)


def test_bad_theta():
    model = RandomFeatures(100, 4, "tanh")
    with pytest.raises(ValueError, match="non-finite"):
        reconstruct(np.full(100, np.nan), model, 3)
    with pytest.raises(ValueError, match="length 99 but p=100"):
        reconstruct(np.ones(99), model, 3)


def test_batched_restarts_recover_and_are_reproducible():
    ds, model, result, errs = _attack(1, ratio=20, batch_restarts=True, restarts=3)
    assert result.loss_at_tol and np.all(errs.sign_aware < 0.05)
    again = _attack(1, ratio=20, batch_restarts=True, restarts=3)[2]
    assert np.array_equal(result.X_hat, again.X_hat)


def test_callback_sees_iterates_and_can_stop_the_attack():
    ds = synthetic_sphere(5, 6, seed=2)
    model = RandomFeatures(800, 6, "tanh", seed=3).fit(ds.X, ds.y)
    seen = []

    def stop_after_five(X, loss):
        seen.append(loss)
        assert X.shape == (5, 6)
        return len(seen) >= 5

    result = reconstruct(model.theta, model, 5, restarts=3, callback=stop_after_five)
    assert len(seen) == 5 and result.iterations == 5 and len(result.restarts) == 1
    assert result.stop_reason == "callback" and not result.loss_at_tol


def test_batched_callback_stops_the_joint_phase():
    ds = synthetic_sphere(5, 6, seed=2)
    model = RandomFeatures(800, 6, "tanh", seed=3).fit(ds.X, ds.y)
    seen = []
    result = reconstruct(model.theta, model, 5, restarts=3, batch_restarts=True,
                         callback=lambda X, loss: seen.append(loss) or len(seen) >= 4)
    assert len(seen) == 4 and result.stop_reason == "callback"


def test_options_record_and_keyword_overrides_are_the_same_run():
    """reconstruct(θ, model, n, options) with an AttackOptions record, the old keywords, or a record
    with keyword overrides on top: one validated record, one run."""
    from rftheory.attack.options import AttackOptions
    from rftheory.attack.reconstruct import OPTIMIZERS
    from rftheory.optim.lbfgs import STOP_REASONS

    from rftheory.attack import options

    assert OPTIMIZERS is options.OPTIMIZERS
    ds = synthetic_sphere(5, 6, seed=2)
    model = RandomFeatures(800, 6, "tanh", seed=3).fit(ds.X, ds.y)
    opts = AttackOptions(restarts=1, max_iter=60, dtype="float64", reseed=False)
    a = reconstruct(model.theta, model, 5, opts)
    b = reconstruct(model.theta, model, 5, restarts=1, max_iter=60, dtype=np.float64, reseed=False)
    c = reconstruct(model.theta, model, 5, AttackOptions(max_iter=60, reseed=False), restarts=1, dtype="float64")
    assert a.options == b.options == c.options == opts
    np.testing.assert_array_equal(a.X_hat, b.X_hat)
    np.testing.assert_array_equal(a.X_hat, c.X_hat)
    assert a.stop_reason in STOP_REASONS and a.loss_history == b.loss_history
    assert reconstruct(model.theta, model, 5, dtype=None, max_iter=5).options.dtype == "model"
    with pytest.raises(TypeError):
        reconstruct(model.theta, model, 5, not_an_option=1)


def test_stop_reason_names_why_the_best_restart_stopped():
    _, _, done, _ = _attack(0, ratio=20, restarts=1)
    assert done.loss_at_tol and done.stop_reason == "tol"
    _, _, short, _ = _attack(0, ratio=20, restarts=1, max_iter=3, strategy="restarts")
    assert not short.loss_at_tol and short.stop_reason == "max_iter" and short.iterations == 3
    _, _, moved, _ = _attack(0, ratio=20, restarts=1, max_iter=3, moves=2)
    assert moved.loss_at_tol or moved.stop_reason == "moves"


def test_converged_is_a_deprecated_alias_of_loss_at_tol():
    _, _, result, _ = _attack(0, ratio=20, restarts=1)
    with pytest.warns(DeprecationWarning, match="loss_at_tol"):
        assert result.converged is result.loss_at_tol is True


def test_stopping_words_never_claim_recovery_on_the_loss_alone():
    """A loss at tolerance is 'evidence of recovery only above p = nd', with p/(dn) and the counting limit on
    the sphere printed; at or below the limit it is no evidence; a loss above tolerance names why the
    optimiser stopped."""
    from rftheory.attack.reconstruct import stopping_words

    _, _, result, _ = _attack(0, ratio=20, restarts=1)
    words = result.verdict_words()
    assert words.startswith("loss at tolerance") and "evidence of recovery only above p = nd" in words
    assert "p/(dn) = 20" in words and "counting limit on the sphere p/(dn) > 1, i.e. p ≥ nd + 1" in words
    assert "p is above the limit" in words
    below = stopping_words(1e-12, 1e-10, True, "tol", p=50, d=20, n_hat=10)
    assert "p/(dn) = 0.25" in below and "no evidence of recovery" in below
    above_tol = stopping_words(1e-3, 1e-10, False, "stalled", p=4000, d=20, n_hat=10)
    assert above_tol.startswith("loss above tolerance") and "stalled" in above_tol
    for text in (words, below, above_tol):
        assert "converged" not in text and "success" not in text


def test_result_records_p_and_d_for_the_counting_limit():
    _, model, result, _ = _attack(0, ratio=20, restarts=1)
    assert (result.p, result.d) == (model.p, model.d)


def test_stopping_words_use_the_multi_output_counting_limit():
    """With C outputs the counting limit on the sphere is p/(dn) > 1/d + (d − 1)/(dC): at p/(dn) = 0.5,
    d = 10, the words say 'above' for C = 4 (limit 0.325) and 'below ... no evidence' for C = 1 (limit 1)."""
    from rftheory.attack.reconstruct import stopping_words

    n, d = 6, 10
    p = n * d // 2
    four = stopping_words(1e-11, 1e-10, True, "tol", p, d, n, outputs=4)
    one = stopping_words(1e-11, 1e-10, True, "tol", p, d, n)
    assert "p/(dn) > 1/d + (d − 1)/(dC) = 0.325 with C = 4" in four and "p is above the limit" in four
    assert "p = n + n(d − 1)/C" in four
    assert "p/(dn) > 1, i.e. p ≥ nd + 1" in one and "no evidence of recovery" in one


def test_stopping_words_put_the_one_output_limit_at_nd_plus_one():
    """Counting on the sphere (n = 2, d = 4: wrong zero-loss X̂ measured up to p = nd = 8, none from 9):
    p = 8 is at the limit, no evidence; p = 9 is above it.  The R^d count n(d + 1) = 10 would say below."""
    from rftheory.attack.reconstruct import stopping_words

    at = stopping_words(1e-12, 1e-10, True, "tol", p=8, d=4, n_hat=2)
    above = stopping_words(1e-12, 1e-10, True, "tol", p=9, d=4, n_hat=2)
    assert "at or below the limit" in at and "no evidence of recovery" in at
    assert "p is above the limit" in above and "no evidence" not in above
    # C = 3, n = 2, d = 4: C(p − n) > n(d − 1) = 6 from p = 5 (the boundary p = 4 is at the limit)
    assert "no evidence" in stopping_words(1e-12, 1e-10, True, "tol", p=4, d=4, n_hat=2, outputs=3)
    assert "above the limit" in stopping_words(1e-12, 1e-10, True, "tol", p=5, d=4, n_hat=2, outputs=3)
