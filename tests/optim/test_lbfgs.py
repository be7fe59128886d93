"""The one Riemannian L-BFGS (rftheory.optim.lbfgs): same iterates as the optimisers it replaced,
batched runs equal single runs, every stop reason, the constraint hook."""
import math
from pathlib import Path

import numpy as np
import pytest

from rftheory.attack.reconstruct import reconstruct
from rftheory.backend import numba_available, numba_enabled
from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.random_features import RandomFeatures
from rftheory.optim.lbfgs import STOP_REASONS, riemannian_lbfgs
from rftheory.optim.sphere import random_sphere, retract_to_sphere
from rftheory.theory.identifiability import cap_cosine, distinctness_check, minimize_residual
from rftheory.theory.identifiability.search import _ExcludeCaps

# Reference values computed by the optimisers this module replaced (reconstruct's _lbfgs,
# _lbfgs_batched and identifiability's riemannian_lbfgs, as of commit d99c7ee), by running the
# calls of the tests below with that code and saving their outputs with np.savez.
REFERENCE = Path(__file__).parent / "data" / "old_optimiser_reference.npz"
# The float32 references were made with the compiled kernels (row kernels and the fused panel loss);
# without them the same algorithm rounds differently.
compiled = pytest.mark.skipif(not (numba_available() and numba_enabled("rows") and numba_enabled("panel")),
                              reason="float32 references need the compiled kernels")


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REFERENCE))


def _check_attack(ref, tag, result, rtol):
    counts = [result.iterations, result.evaluations, result.reseeds]
    np.testing.assert_array_equal(counts, ref[f"{tag}_counts"])
    np.testing.assert_allclose(result.loss_history, ref[f"{tag}_hist"], rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(result.restarts, ref[f"{tag}_restarts"], rtol=rtol)
    np.testing.assert_allclose(result.X_hat, ref[f"{tag}_X"], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("tag,kw", [
    ("seq64", dict(restarts=2, max_iter=40, dtype=np.float64, reseed=False, stop_at_tol=False, strategy="restarts")),
    pytest.param("seq32", dict(restarts=1, max_iter=40, reseed=False, strategy="restarts"), marks=compiled),
    ("batch64", dict(restarts=3, max_iter=8, dtype=np.float64, batch_restarts=True, reseed=False, strategy="restarts")),
])
def test_attack_iterates_are_those_of_the_old_optimiser(ref, tag, kw):
    """Sequential restarts (float64 and the float32 default), and batched restarts."""
    ds = synthetic_sphere(6, 8, seed=2)
    model = RandomFeatures(3 * 6 * 8, 8, "relu+tanh", seed=1002).fit(ds.X, ds.y)
    _check_attack(ref, tag, reconstruct(model.theta, model, 6, seed=3, **kw), rtol=1e-9)


@compiled
def test_attack_with_reseeding_is_that_of_the_old_optimiser(ref):
    """A run of the default (float32) attack with a greedy re-seed (its one-row refit runs the
    optimiser too), to convergence.  Long runs amplify rounding: the compiled kernels use fastmath,
    and Numba's cached and freshly compiled code may round differently, so a float64 twin of this
    run is not pinned."""
    ds = synthetic_sphere(6, 8, seed=1)
    model = RandomFeatures(4 * 6 * 8, 8, "relu+tanh", seed=1001).fit(ds.X, ds.y)
    result = reconstruct(model.theta, model, 6, seed=1, restarts=1, max_iter=300)
    _check_attack(ref, "reseed32", result, rtol=1e-6)
    assert result.stop_reason == "tol" and result.loss_at_tol


@pytest.fixture(scope="module")
def problem(ref):
    X = ref["id_X"]
    return X, RandomFeatures(8 * X.shape[1] * 3, X.shape[1], "relu+tanh", seed=2)


def test_identifiability_searches_follow_the_old_optimiser(ref, problem):
    """Unconstrained: the same iterates for 6 iterations.  Constrained: the same iterates until the
    first change of a run's bound set (the old code kept H₀'s scale γ across it, the one optimiser
    restarts from steepest descent): 2 iterations of the excluded caps, 1 of the kept cap."""
    X, rf = problem
    free = minimize_residual(X, rf, starts=4, max_iter=6, seed=0)
    np.testing.assert_allclose(free.X_hat, ref["id_free_Xhat"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(free.residual, ref["id_free_R"], rtol=1e-9)
    np.testing.assert_array_equal(free.iterations, ref["id_free_iters"])
    caps = minimize_residual(X, rf, starts=4, delta=0.3, max_iter=2, seed=1)
    np.testing.assert_allclose(caps.X_hat, ref["id_caps_Xhat"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(caps.residual, ref["id_caps_R"], rtol=1e-9)
    np.testing.assert_array_equal(caps.iterations, ref["id_caps_iters"])
    pair = distinctness_check(X[:2], rf, starts=3, max_iter=1, seed=0)
    np.testing.assert_allclose(pair.pair, ref["id_dist_pair"], rtol=1e-10, atol=1e-10)
    assert pair.mismatch == pytest.approx(float(ref["id_dist_M"]), rel=1e-9)


def test_constrained_search_reaches_the_old_minima(ref, problem):
    """Run to the end, the capped search finds the same local minima from the same 16 starts."""
    X, rf = problem
    full = minimize_residual(X, rf, starts=16, delta=0.3, seed=1)
    np.testing.assert_allclose(np.sort(full.residual), ref["id_caps_minima"], rtol=1e-6)


def _linear(a):
    """f(x) = −⟨a, x⟩ summed over rows; one row per run: minimum −√d‖a‖ at x = √d a/‖a‖."""

    def fun(Xs):
        return -(Xs @ a).sum(axis=1), np.broadcast_to(-a, Xs.shape).copy()

    return fun


def _quartic(A):
    """A non-convex smooth objective per run: f(X) = Σ_i (x_iᵀ A x_i)² / d² over the rows."""

    def fun(Xs):
        q = np.einsum("rnd,de,rne->rn", Xs, A, Xs)
        d = Xs.shape[-1]
        return (q ** 2).sum(axis=1) / d**2, 4 * q[..., None] * (Xs @ A) / d**2

    return fun


def test_batched_runs_equal_single_runs(rng):
    """Each run of a batch follows the iterates it follows alone (own memory, steps and line search)."""
    d = 7
    B = rng.standard_normal((d, d))
    fun = _quartic(B + B.T)
    X0 = np.stack([random_sphere(3, d, rng) for _ in range(4)])
    together = riemannian_lbfgs(fun, X0, max_iter=40, tol=-1.0, gradient="euclidean")
    for k in range(4):
        alone = riemannian_lbfgs(fun, X0[k : k + 1], max_iter=40, tol=-1.0, gradient="euclidean")
        np.testing.assert_allclose(together.X[k], alone.X[0], rtol=1e-12, atol=1e-12)
        assert together.history[k] == pytest.approx(alone.history[0], rel=1e-12)
        assert together.stop_reason[k] == alone.stop_reason[0] and together.iterations[k] == alone.iterations[0]
    assert together.evaluations < sum(
        riemannian_lbfgs(fun, X0[k : k + 1], max_iter=40, tol=-1.0, gradient="euclidean").evaluations
        for k in range(4))


def test_closed_form_minimum_and_stop_reasons(rng):
    d = 5
    a = rng.standard_normal(d)
    best = -math.sqrt(d) * np.linalg.norm(a)
    X0 = np.stack([random_sphere(1, d, rng) for _ in range(3)])
    res = riemannian_lbfgs(_linear(a), X0, max_iter=200, gradient="euclidean", tol=-math.inf)
    np.testing.assert_allclose(res.f, best, rtol=1e-10)
    assert set(res.stop_reason) <= {"stalled", "line_search"} and all(r in STOP_REASONS for r in res.stop_reason)
    assert [h[0] for h in res.history] == pytest.approx(list(_linear(a)(X0)[0]))
    assert all(np.all(np.diff(h) <= 0) for h in res.history)  # Armijo steps never increase f

    assert riemannian_lbfgs(_linear(a), X0, max_iter=2, gradient="euclidean", tol=-math.inf).stop_reason == (
        "max_iter",) * 3
    tol_run = riemannian_lbfgs(_linear(a), X0, max_iter=200, gradient="euclidean", tol=0.999 * best)
    assert tol_run.stop_reason == ("tol",) * 3 and np.all(tol_run.f <= 0.999 * best)
    grad_run = riemannian_lbfgs(_linear(a), X0, max_iter=200, gradient="euclidean", tol=-math.inf, grad_tol=1e-3)
    assert grad_run.stop_reason == ("gradient",) * 3
    peer = riemannian_lbfgs(_linear(a), np.concatenate([X0, -X0 + 0.0]), max_iter=200, gradient="euclidean",
                            tol=0.999 * best, stop_all_at_tol=True)
    assert "tol" in peer.stop_reason and set(peer.stop_reason) <= {"tol", "peer"}
    seen = []
    stop = riemannian_lbfgs(_linear(a), X0, max_iter=200, gradient="euclidean", tol=-math.inf,
                            callback=lambda k, X, f: seen.append((k, f)) or len(seen) >= 4)
    assert stop.stop_reason == ("callback",) * 3 and len(seen) == 4
    assert riemannian_lbfgs(lambda X: (np.full(len(X), np.nan), np.zeros(X.shape)), X0).stop_reason == (
        "not_finite",) * 3


def test_line_search_failure_is_a_stop_reason(rng):
    """An objective no step can decrease (its gradient lies): steepest descent fails, the run stops."""
    X0 = random_sphere(2, 4, rng)[None]

    def liar(Xs):
        return np.sum(Xs[..., 0], axis=1), -np.ones(Xs.shape)  # claims descent along +1, f rises along it

    res = riemannian_lbfgs(liar, X0, max_iter=50, gradient="euclidean", tol=-math.inf)
    assert res.stop_reason == ("line_search",) and res.history[0] == [res.f[0]]


def test_constraint_hook_keeps_runs_feasible(rng):
    """With a cap cut out around the minimiser, every iterate stays outside it and the minimum sits
    on its boundary: −√d‖a‖c."""
    d = 5
    a = rng.standard_normal(d)
    na = np.linalg.norm(a)
    c = cap_cosine(0.4)
    caps = _ExcludeCaps((math.sqrt(d) * a / na)[None, :], c)
    X0 = caps.project(retract_to_sphere(rng.standard_normal((6, 1, d))))
    seen = []
    res = riemannian_lbfgs(_linear(a), X0, max_iter=300, tol=-math.inf, gradient="euclidean", memory=10,
                           constraint=caps, callback=lambda k, X, f: seen.append(X.copy()) and False)
    np.testing.assert_allclose(res.f, -math.sqrt(d) * na * c, rtol=1e-8)
    cos = np.array([float(X[0] @ a) / (math.sqrt(d) * na) for X in seen])
    assert np.all(cos <= c + 1e-9)


def test_bad_arguments(rng):
    X0 = random_sphere(2, 3, rng)
    with pytest.raises(ValueError, match="shape"):
        riemannian_lbfgs(_linear(np.ones(3)), X0)
    with pytest.raises(ValueError, match="gradient"):
        riemannian_lbfgs(_linear(np.ones(3)), X0[None], gradient="tangent")
