"""The counting limits on the √d-sphere, derived in ``counting_limits`` and measured at small shapes.

A row on the sphere has d − 1 freedoms.  Span: φ(x̂) = Φᵀa is p equations in d − 1 + n unknowns, so far
zeros of R exist for p ≤ n + d − 1 (isolated at n + d − 1) and not from p = n + d.  θ: θ = Φ̂ᵀα is p
equations in n(d − 1) + n = nd unknowns, so wrong X̂ reach loss 0 for p ≤ nd and not from nd + 1.
Counting x̂ in R^d instead (d freedoms) would put the limits one feature per row higher: n + d + 1 and
n(d + 1); the measurements below sit between the two and decide for the sphere.
"""
import numpy as np
import pytest

from rftheory.attack.metrics import reconstruction_errors
from rftheory.attack.reconstruct import reconstruct
from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.identifiability import SPURIOUS_ZERO, counting_limits, counting_ratio, span_ratio, spurious_gap

SEEDS = (0, 1, 2)


def test_counting_limits_reduce_to_each_other():
    n, d = 3, 4
    lim = counting_limits(n, d, 20)
    assert lim["span"] == n + d and lim["theta"] == n * d + 1
    for C, first in ((1, lim["theta"]), (n, lim["span"])):  # C = 1 is the law, C = n the span statement
        ok = [p for p in range(n, 40) if (c := counting_limits(n, d, p, C))["equations"] > c["unknowns"]]
        assert ok[0] == first
    assert counting_limits(10, 20, 100, 4)["equations"] == 360 and counting_limits(10, 20, 100, 4)["unknowns"] == 190


@pytest.mark.parametrize("n, d", [(2, 4), (3, 4), (5, 9), (12, 40)])
def test_the_ratios_are_the_same_limits(n, d):
    """counting_ratio and span_ratio are counting_limits as p/(dn): the first p above the ratio is the first
    p the counts call identifiable, and ``boundary`` is the ratio times dn."""
    for C in (1, 2, 3, n, 2 * n):
        first = next(p for p in range(n, 4 * n * d) if (c := counting_limits(n, d, p, C))["equations"] > c["unknowns"])
        assert first == next(p for p in range(n, 4 * n * d) if p / (d * n) > counting_ratio(d, C) + 1e-12)
        assert counting_limits(n, d, first, C)["boundary"] == pytest.approx(counting_ratio(d, C) * d * n)
    assert counting_ratio(d, 1) == 1.0 and counting_limits(n, d, 0)["theta"] == n * d + 1
    assert next(p for p in range(n, 4 * n * d) if p / (d * n) > span_ratio(n, d) + 1e-12) == n + d


@pytest.fixture(scope="module")
def span_gaps():
    """min R over the far region (δ = 0.3) at p = n + d − 2 … n + d + 1, n = 3, d = 4, three seeds."""
    n, d = 3, 4
    gaps = {}
    for s in SEEDS:
        X = synthetic_sphere(n, d, seed=s).X
        for p in range(n + d - 2, n + d + 2):
            gaps[p, s] = spurious_gap(X, RandomFeatures(p, d, "relu+tanh", seed=1000 + s), starts=32, max_iter=300,
                                      seed=s).gap
    return n, d, gaps


def test_span_zeros_exist_up_to_n_plus_d_minus_one(span_gaps):
    n, d, g = span_gaps
    assert all(g[n + d - 2, s] <= SPURIOUS_ZERO for s in SEEDS)  # a curve of zeros through each x_i
    assert any(g[n + d - 1, s] <= SPURIOUS_ZERO for s in SEEDS)  # isolated zeros: the limit is not n + d − 1


def test_no_span_zero_from_n_plus_d(span_gaps):
    n, d, g = span_gaps
    # counting x̂ in R^d would predict zeros at p = n + d; on the sphere there are none
    assert all(g[p, s] > SPURIOUS_ZERO for p in (n + d, n + d + 1) for s in SEEDS), g


def _zero_loss_runs(n, d, p, trials=4):
    """(wrong, right) counts of attack runs from random starts that reach L ≤ 1e-16."""
    wrong = right = 0
    for s in SEEDS:
        ds = synthetic_sphere(n, d, seed=s)
        model = RandomFeatures(p, d, "relu+tanh", seed=1000 + s)
        model.fit(ds.X, ds.y)
        for t in range(trials):
            r = reconstruct(model.theta, model, n, restarts=1, seed=t, strategy="restarts", dtype="float64", tol=1e-20)
            if r.loss <= 1e-16:
                ok = reconstruction_errors(ds.X, np.asarray(r.X_hat)).recovered.all()
                right, wrong = right + int(ok), wrong + int(not ok)
    return wrong, right


def test_theta_limit_is_nd_plus_one_on_the_sphere():
    n, d = 2, 4  # nd = 8, n(d + 1) = 10
    wrong, _ = _zero_loss_runs(n, d, n * d - 1)
    assert wrong >= 1  # below nd: wrong X̂ with θ in their span
    wrong, right = _zero_loss_runs(n, d, n * d + 1)
    assert wrong == 0 and right >= 1  # nd + 1 < n(d + 1): every zero-loss X̂ found is the training set
