"""The sign-ambiguity verdict rows can fail on valid input.

A row "flip residual ≤ 1e-10" (``rftheory check``'s sign row and proofs_numeric's sign rows, among
them "φ(−x_i) on span Φ") is judged where the Hermite parity report predicts an exact ambiguity.  Then
φ(−x) = ±φ(x) + a·1 + b·Vx holds identically and the residual is round-off, so what the rows test is
the prediction: it reads μ_k for k ≤ 20 and counts |μ_k| > 1e-10 (+ its error bound) as non-zero.  An
activation whose parity-breaking part lies below that tolerance or above that order is predicted
ambiguous and measured not to be: the rows FAIL.
"""
import math
import sys
from pathlib import Path

import numpy as np
from numpy.polynomial.hermite_e import hermeder, hermeval
from scipy.special import eval_hermitenorm

from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.activations import Activation
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.hermite import AMBIGUOUS_AFFINE, SIGN_SYMMETRIC, parity_report
from rftheory.theory.identifiability import ROUNDOFF_RESIDUAL, identifiability_checks, sign_lemma

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import proofs_numeric.sign_lemma_relu as sign  # noqa: E402

FAST = dict(starts=8, max_iter=150, theorem2=False, attack_seeding=False)
ORDER = 21  # one above the orders the parity prediction reads (20)


def abs_plus_high_order_odd(c: float = 0.1, k: int = ORDER) -> Activation:
    """σ(z) = |z| + c·h_k(z), h_k = He_k/√k! with k odd: even up to order k − 1, odd at order k."""
    coef = np.zeros(k + 1)
    coef[k] = 1.0 / math.sqrt(math.factorial(k))
    dcoef = hermeder(coef)
    return Activation(f"abs+{c:g}*h{k}", lambda z: np.abs(z) + c * hermeval(z, coef),
                      lambda z: np.sign(z) + c * hermeval(z, dcoef))


def _sign_row(report):
    return [c for c in report.checks if c.quantity.startswith("sign flip")][0]


def _problem(activation, p=240):
    X = synthetic_sphere(3, 5, seed=0).X
    return X, RandomFeatures(p, 5, activation, seed=1000)


def test_check_sign_row_passes_for_an_exactly_even_activation():
    rep = identifiability_checks(*_problem("abs"), **FAST)
    row = _sign_row(rep)
    assert row.relation == "<=" and row.passed and row.measured <= 1e-13


def test_check_sign_row_fails_for_a_parity_breaking_term_below_the_report_tolerance():
    act = "abs+5e-10*tanh"  # μ_1 = 3.0e-10 counts, μ_3 = −7.4e-11 does not: "even plus linear"
    rep = parity_report(act, 20)
    assert rep.prediction == AMBIGUOUS_AFFINE and rep.odd_nonzero == ()
    row = _sign_row(identifiability_checks(*_problem(act), **FAST))
    assert row.relation == "<=" and not row.passed and row.measured > ROUNDOFF_RESIDUAL


def test_check_sign_row_fails_for_a_parity_breaking_term_beyond_the_report_order():
    act = abs_plus_high_order_odd()
    assert parity_report(act, 20).prediction == SIGN_SYMMETRIC  # reads an even σ
    assert parity_report(act, ORDER).odd_nonzero == (ORDER,)  # one order more sees the odd term
    row = _sign_row(identifiability_checks(*_problem(act), **FAST))
    assert row.relation == "<=" and not row.passed and row.measured > 1e-2


def test_sign_lemma_flip_of_the_high_order_term_matches_its_odd_part():
    """Independent of the span code: φ(x) − φ(−x) = 2c·h_21(Vx), so φ(−x) ∉ span{φ(x), 1, V} when p > d + 2."""
    act = abs_plus_high_order_odd()
    X, model = _problem(act, p=40)
    Z = X @ np.asarray(model.weights).T
    he = eval_hermitenorm(ORDER, Z) / math.sqrt(math.factorial(ORDER))  # SciPy's He_21, not NumPy's series
    np.testing.assert_allclose(act.fn(Z) - act.fn(-Z), 2 * 0.1 * he, rtol=1e-9, atol=1e-9)
    sl = sign_lemma(X, model)
    assert sl.affine_residual > 1e-2 and sl.span_flip_residual > 1e-2


def test_proofs_numeric_sign_rows_fail_beyond_the_report_order(monkeypatch):
    act = abs_plus_high_order_odd()
    monkeypatch.setitem(sign.SIZES, "tiny", dict(n=3, d=6, mults=(8,), seeds=1, activations=(act, "abs")))
    rep = sign.run("tiny")
    rows = {c.quantity: c for c in rep.checks}
    bad_span = rows[f"{act.name}: max residual of φ(−x_i) on span Φ"]
    bad_affine = rows[f"{act.name}: max flip residual mod col([1,V])"]
    assert not bad_span.passed and bad_span.measured > 1e-2
    assert not bad_affine.passed and bad_affine.measured > 1e-2
    assert rows["abs: max residual of φ(−x_i) on span Φ"].passed  # the exact symmetry beside it passes
    assert not rep.passed
