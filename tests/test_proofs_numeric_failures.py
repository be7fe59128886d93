"""Every verdict row of proofs_numeric can fail: for each module, a constructed case (weights of another
scale, duplicated weights, too few features, near-duplicate samples, a crippled search, ...) where the
row FAILS.  Module functions and sizes are swapped with monkeypatch only for the test."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import proofs_numeric.lemma_feature_norm as fnorm  # noqa: E402
import proofs_numeric.lemma_kernel_concentration as kconc  # noqa: E402
import proofs_numeric.lemma_lambda_min as lmin  # noqa: E402
import proofs_numeric.sign_lemma_relu as sign  # noqa: E402
import proofs_numeric.theorem1_spurious_gap as thm1  # noqa: E402
import proofs_numeric.theorem2_distinctness as thm2  # noqa: E402
from proofs_numeric._common import seeded_data, seeded_model  # noqa: E402
from rftheory.data.synthetic import project_to_sphere  # noqa: E402
from rftheory.theory.identifiability import FixedWeights  # noqa: E402


def _failed(report, prefix):
    rows = [c for c in report.checks if c.quantity.startswith(prefix) or prefix in c.quantity]
    assert rows, (prefix, [c.quantity for c in report.checks])
    return all(not c.passed for c in rows)


def _scaled(factor):
    def problems(n, d, p, act, seeds):
        for s in seeds:
            yield seeded_data(n, d, s), FixedWeights(factor * seeded_model(p, d, act, s).weights, act)
    return problems


def _duplicated(distinct):
    """V whose p rows repeat only ``distinct`` different rows: the counting of p features fails."""
    def model(p, d, act, s):
        V = seeded_model(distinct, d, act, s).weights
        return FixedWeights(np.asarray(V)[np.arange(p) % distinct], act)
    return model


def test_kernel_concentration_rows_fail_for_weights_of_another_scale(monkeypatch):
    monkeypatch.setitem(kconc.SIZES, "tiny", dict(n=6, d=8, ps=(256, 1024, 4096), seeds=1, activations=("relu+tanh",)))
    monkeypatch.setattr(kconc, "seeded_problems", _scaled(2.0))
    rep = kconc.run("tiny")
    assert _failed(rep, "max ‖E‖_op/ceiling") and _failed(rep, "max max|E_ij|") and _failed(rep, "fitted exponent")


def test_lambda_min_rows_fail(monkeypatch):
    monkeypatch.setitem(lmin.SIZES, "tiny", dict(n=6, d=8, ps=(7, 4096), seeds=1, activations=("relu+tanh",)))
    rep = lmin.run("tiny")  # p = n + 1: λ_min(ΦΦᵀ)/p far below ½ λ_min(K∞)
    assert _failed(rep, "min λ_min(ΦΦᵀ)/(p·λ_min(K∞))")
    monkeypatch.setitem(lmin.SIZES, "tiny", dict(n=6, d=8, ps=(4096,), seeds=1, activations=("relu+tanh",)))
    monkeypatch.setattr(lmin, "seeded_problems", _scaled(0.25))  # V ~ N(0, 1/(16d)): λ_min far from λ_min(K∞)
    assert _failed(lmin.run("tiny"), "max |Δλ_min|/ceiling")

    def near_duplicates(n, d, p, act, seeds):
        for s in seeds:
            X = seeded_data(n, d, s)
            X[1] = project_to_sphere((X[0] + 1e-4 * X[1])[None])[0]
            X[2] = X[3]  # an exact duplicate too: rank n − 1
            yield X, seeded_model(p, d, act, s)

    monkeypatch.setattr(lmin, "seeded_problems", near_duplicates)
    rep = lmin.run("tiny")
    assert _failed(rep, "certified") and _failed(rep, "numerical rank")


def test_feature_norm_rows_fail(monkeypatch):
    monkeypatch.setitem(fnorm.SIZES, "tiny", dict(n=8, d=8, ps=(1600,), seeds=1, activations=("relu+tanh",)))
    monkeypatch.setattr(fnorm, "seeded_problems", _scaled(1.5))
    assert _failed(fnorm.run("tiny"), "max |‖φ‖²/p − Eσ²|/sd")
    real = fnorm.activation_moments

    def monte_carlo(act):  # a crude E[σ²] from 10⁴ Gaussian draws instead of quadrature
        from rftheory.models.activations import get_activation
        g = np.random.default_rng(0).standard_normal(10_000)
        return float(np.mean(get_activation(act).fn(g) ** 2)), real(act)[1]

    monkeypatch.setattr(fnorm, "activation_moments", monte_carlo)
    assert _failed(fnorm.run("tiny"), "Eσ² quad − Hermite")


def test_sign_row_fails_when_col_1_v_fills_the_feature_space(monkeypatch):
    monkeypatch.setitem(sign.SIZES, "tiny", dict(n=3, d=6, mults=(1,), seeds=1, activations=("relu+tanh",)))
    assert _failed(sign.run("tiny"), "relu+tanh: min flip residual")  # p = d ≤ d + 2


def test_sign_row_fails_for_an_activation_nearly_sign_symmetric(monkeypatch):
    monkeypatch.setitem(sign.SIZES, "tiny", dict(n=3, d=6, mults=(32,), seeds=1, activations=("relu+1e-5*tanh",)))
    assert _failed(sign.run("tiny"), "min flip residual")


def test_theorem1_rows_fail_for_duplicated_weights(monkeypatch):
    cfg = dict(thm1.SIZES["tiny"])
    monkeypatch.setitem(thm1.SIZES, "tiny", cfg)
    monkeypatch.setattr(thm1, "seeded_model", _duplicated(6))  # effective p = 6 ≤ n + d − 2 at every p
    rep = thm1.run("tiny")
    assert _failed(rep, "gap/gap∞")
    assert _failed(rep, "span: min gap over p ≥ n + d =")


def test_theorem1_rank_correlation_fails_on_a_grid_too_short_to_show_growth(monkeypatch):
    monkeypatch.setitem(thm1.SIZES, "tiny", dict(thm1.SIZES["tiny"], ratios=(2.0, 16.0)))
    rep = thm1.run("tiny")
    assert _failed(rep, "Spearman")  # two ratios: no rank correlation (NaN fails)
    assert _failed(rep, "median gap at")  # p/(dn) from 2 to 16 only: the gap grows by less than 2


def test_theorem1_rows_fail_for_a_crippled_search(monkeypatch):
    cfg = dict(thm1.SIZES["tiny"], starts=1, max_iter=1, ratios=(16.0,), span_ps=(5, 9))
    monkeypatch.setitem(thm1.SIZES, "tiny", cfg)
    monkeypatch.setattr(thm1, "attack_starts", lambda *a, **k: np.empty((0, 5)))
    rep = thm1.run("tiny")
    assert _failed(rep, "span: max gap over p ≤ n + d − 2")  # one step from one start finds no zero
    assert _failed(rep, "vs min R on far path points")


def test_theorem2_rows_fail(monkeypatch):
    monkeypatch.setitem(thm2.SIZES, "tiny", dict(d=5, ratios=(8,), seeds=1, starts=4, max_iter=150, eps=0.3))
    with monkeypatch.context() as m:
        m.setattr(thm2, "seeded_model", _duplicated(3))  # effective p = 3 ≤ d + 1 at every p
        assert _failed(thm2.run("tiny"), "min mismatch over p/d ≥")
    monkeypatch.setitem(thm2.SIZES, "tiny", dict(d=5, ratios=(8,), seeds=1, starts=1, max_iter=1, eps=0.3))
    assert _failed(thm2.run("tiny"), "control")  # one step from one start does not reach the zero at p = d/2 + 1
