"""Every verdict row of ``rftheory check`` (identifiability_checks) can fail: for each, a constructed
case where it FAILS, beside the ordinary case where it passes (the sign row's "≤ 1e-10" branch, for σ
predicted sign-ambiguous: tests/theory/test_sign_verdicts.py)."""
import numpy as np
import pytest

from rftheory.data.synthetic import project_to_sphere, synthetic_sphere
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.identifiability import FixedWeights, identifiability_checks

FAST = dict(starts=8, max_iter=150, theorem2=False, attack_seeding=False)


def _rows(report):
    return {c.quantity.split(" (")[0].split(":")[0]: c for c in report.checks}


def _find(report, prefix):
    return [c for c in report.checks if c.quantity.startswith(prefix)][0]


@pytest.fixture(scope="module")
def ordinary():
    X = synthetic_sphere(3, 5, seed=0).X
    return X, identifiability_checks(X, RandomFeatures(240, 5, "relu+tanh", seed=1000), **FAST)


def test_ordinary_case_passes_every_row(ordinary):
    _, rep = ordinary
    assert rep.passed, [(c.quantity, c.measured, c.threshold) for c in rep.checks if not c.passed]


def test_true_samples_residual_is_reported_not_judged(ordinary):
    _, rep = ordinary
    assert rep.results["truth_residual"] < 1e-12
    assert not any(c.quantity.startswith("max_i R(x_i)") for c in rep.checks)


def test_rank_row_fails_for_duplicate_samples():
    X = synthetic_sphere(3, 5, seed=0).X
    X = np.vstack([X, X[:1]])
    rep = identifiability_checks(X, RandomFeatures(240, 5, seed=1000), **FAST)
    assert not _find(rep, "rank Φ").passed
    assert not _find(rep, "λ_min(K∞)").passed  # a repeated sample: K∞ singular


@pytest.mark.parametrize("prefix", ["‖ΦΦᵀ/p − K∞‖_op", "max|ΦΦᵀ/p − K∞|", "max_i |‖φ(x_i)‖²/p"])
def test_concentration_rows_fail_for_weights_of_another_scale(prefix):
    X = synthetic_sphere(6, 8, seed=0).X
    V = 2.0 * RandomFeatures(4000, 8, seed=1000).weights  # V ~ N(0, 4/d): ΦΦᵀ/p does not tend to K∞
    rep = identifiability_checks(X, FixedWeights(V), **FAST)
    assert not _find(rep, prefix).passed


def test_lambda_min_row_fails_for_too_few_features():
    X = synthetic_sphere(8, 10, seed=0).X
    rep = identifiability_checks(X, RandomFeatures(9, 10, seed=1000), **FAST)  # p = n + 1
    assert not _find(rep, "λ_min(ΦΦᵀ)/p").passed


def test_kernel_certificate_fails_for_near_duplicate_samples():
    X = synthetic_sphere(4, 6, seed=0).X
    X[1] = project_to_sphere((X[0] + 1e-4 * X[1])[None])[0]
    rep = identifiability_checks(X, RandomFeatures(400, 6, seed=1000), **FAST)
    cert = _find(rep, "λ_min(K∞)")
    assert not cert.passed and cert.measured < 0


def test_theorem1_row_fails_below_the_span_limit():
    X = synthetic_sphere(3, 5, seed=0).X
    rep = identifiability_checks(X, RandomFeatures(6, 5, seed=1000), **FAST)  # p = 6 ≤ n + d = 8
    row = _find(rep, "Thm 1")
    assert not row.passed and row.measured <= 1e-6


def test_theorem2_row_fails_when_p_is_at_most_d_plus_one():
    X = synthetic_sphere(2, 6, seed=0).X
    rep = identifiability_checks(X, RandomFeatures(4, 6, seed=1000), **{**FAST, "theorem2": True})
    assert not _find(rep, "Thm 2").passed


def test_sign_row_fails_when_the_affine_span_fills_the_feature_space():
    X = synthetic_sphere(3, 6, seed=0).X
    rep = identifiability_checks(X, RandomFeatures(7, 6, seed=1000), **FAST)  # p ≤ d + 2: col([1, V]) + φ(x) = R^p
    row = _find(rep, "sign flip")
    assert row.relation == ">=" and not row.passed


def test_sign_row_fails_for_an_activation_nearly_sign_symmetric():
    X = synthetic_sphere(3, 5, seed=0).X
    rep = identifiability_checks(X, RandomFeatures(240, 5, "relu+1e-5*tanh", seed=1000), **FAST)
    row = _find(rep, "sign flip")  # predicted identifiable (both parities), measured flip residual ~1e-5
    assert row.relation == ">=" and not row.passed


def test_attack_starts_seed_the_search_below_the_law():
    from rftheory.theory.identifiability import attack_starts

    X = synthetic_sphere(3, 5, seed=0).X
    rows = attack_starts(X, RandomFeatures(8, 5, seed=1000), seed=0)
    assert rows.shape[1] == 5 and len(rows) >= 1
    assert attack_starts(X, RandomFeatures(18, 5, seed=1000)).shape == (0, 5)  # p ≥ nd + 1 = 16: no attack
