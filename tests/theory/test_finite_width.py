"""Tests of rftheory.theory.finite_width: the package's kernel concentration bound
(Hoeffding / truncation), its inputs, a Monte Carlo check that it holds, and
the empirical threshold sweep."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats

from rftheory.backend import cupy_available
from rftheory.theory.finite_width import (
    BOUND_LABEL,
    activation_range,
    empirical_threshold,
    fourth_moment,
    gram_accuracy,
    kernel_deviation,
    kernel_width_bound,
    measured_gram_width,
    measured_kernel_width,
)

requires_gpu = pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device (none visible)")


def sphere(rng, n, d):
    X = rng.standard_normal((n, d))
    return X * (math.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True))


def erf_kernel(X):
    """E[erf(u)erf(v)] = (2/π)·arcsin(2ρ/3) for standard normals with correlation ρ."""
    rho = np.clip(X @ X.T / X.shape[1], -1, 1)
    return 2 / np.pi * np.arcsin(2 * rho / 3)


def relu_kernel(X):
    """Arc-cosine kernel: E[relu(u)relu(v)] = (√(1−ρ²) + ρ(π − arccos ρ))/(2π)."""
    rho = np.clip(X @ X.T / X.shape[1], -1, 1)
    return (np.sqrt(1 - rho**2) + rho * (np.pi - np.arccos(rho))) / (2 * np.pi)


# -- the bounded (Hoeffding) regime -------------------------------------------------------


@pytest.mark.parametrize("act, width", [("tanh", 2.0), ("erf", 2.0), ("sigmoid", 1.0)])
def test_bounded_bound_is_hoeffding_formula(act, width):
    """tanh, erf ∈ (−1, 1): products in (−1, 1), w = 2; sigmoid ∈ (0, 1): w = 1."""
    n, delta, eps = 5, 0.05, 0.1
    b = kernel_width_bound(n, delta, eps, act)
    N = n * (n + 1) // 2
    ref = width**2 * math.log(2 * N / delta) / (2 * eps**2)
    assert b.regime == "bounded" and b.entries == N and b.label == BOUND_LABEL
    assert b.p >= math.ceil(ref)  # never below the exact-range formula
    assert b.p <= math.ceil(ref * (1 + 1e-5))  # the certified range is only slightly wider
    assert b.summand_range[1] - b.summand_range[0] == pytest.approx(width, rel=1e-5)


@pytest.mark.parametrize("act, fn", [("tanh", np.tanh), ("softplus", lambda z: np.logaddexp(0, z))])
def test_activation_range_contains_grid_values(act, fn):
    z = np.random.default_rng(0).uniform(-5, 5, 10000)
    lo, hi = activation_range(act, 5.0)
    assert lo <= fn(z).min() and fn(z).max() <= hi
    assert hi - lo == pytest.approx(fn(5.0) - fn(-5.0), rel=1e-5)  # monotone: the range is [σ(−T), σ(T)]
    with pytest.raises(ValueError, match="unbounded"):
        activation_range("relu")


@given(n=st.integers(1, 30), delta=st.floats(1e-6, 0.5), eps=st.floats(1e-3, 0.5),
       act=st.sampled_from(["tanh", "erf", "sigmoid"]))
def test_bounded_bound_monotone(n, delta, eps, act):
    b = kernel_width_bound(n, delta, eps, act)
    assert kernel_width_bound(n + 1, delta, eps, act).p >= b.p
    assert kernel_width_bound(n, delta / 2, eps, act).p >= b.p
    assert kernel_width_bound(n, delta, eps * 1.5, act).p <= b.p
    bb = kernel_width_bound(n, delta, eps, act, inequality="bernstein")
    w = b.summand_range[1] - b.summand_range[0]
    ref = 2 * (b.moment4 + w * eps / 3) * math.log(2 * b.entries / delta) / eps**2
    assert math.ceil(ref) <= bb.p <= math.ceil(ref) + 1


# -- the unbounded (truncation) regime ----------------------------------------------------


@pytest.mark.parametrize("act, m4", [("relu", 1.5), ("abs", 3.0), ("leaky_relu", 1.5 * (1 + 0.01**4))])
def test_fourth_moment_closed_forms(act, m4):
    """E[g⁴] = 3; relu keeps half of it, abs all of it."""
    assert fourth_moment(act) == pytest.approx(m4, rel=1e-8)


@pytest.mark.parametrize("act", ["relu", "relu+tanh", "gelu"])
@pytest.mark.parametrize("inequality", ["hoeffding", "bernstein"])
def test_truncated_bound_satisfies_its_conditions(act, inequality):
    n, delta, eps = 4, 0.1, 0.05
    b = kernel_width_bound(n, delta, eps, act, inequality=inequality)
    assert b.regime == "truncated" and b.truncation > 0
    T, N, M4 = b.truncation, n * (n + 1) // 2, b.moment4
    Q = special.ndtr(-T)
    assert 2 * b.p * n * Q <= delta / 2 * (1 + 1e-9)  # truncation event
    assert 2 * math.sqrt(M4 * Q) <= eps / 2 * (1 + 1e-9)  # bias
    lo, hi = b.summand_range
    w = hi - lo
    assert lo <= 0 <= hi  # the truncated value 0 is in the range
    a, c = activation_range(act, T)
    assert hi >= max(a * a, c * c) and lo <= min(a * c, 0)
    t = eps / 2
    need = (w * w * math.log(4 * N / delta) / (2 * t * t) if inequality == "hoeffding"
            else 2 * (M4 + w * t / 3) * math.log(4 * N / delta) / (t * t))
    assert need <= b.p <= need + 1
    # T is the smallest level meeting both conditions at this p (no slack left)
    Tmin = max(-special.ndtri(delta / (4 * b.p * n)), -special.ndtri((eps / 4) ** 2 / M4))
    assert T == pytest.approx(Tmin, rel=1e-9)


def test_truncation_bias_bound_holds():
    """|E[Y 1_A]| ≤ 2(M₄ Q(T))^{1/2}: compare with the bias computed by 2-D quadrature for relu."""
    from scipy import integrate

    rho, T = 0.3, 1.5
    relu = lambda z: max(z, 0.0)  # noqa: E731
    phi2 = stats.multivariate_normal([0, 0], [[1, rho], [rho, 1]]).pdf
    full = integrate.dblquad(lambda v, u: relu(u) * relu(v) * phi2([u, v]), 0, 12, 0, 12)[0]
    inner = integrate.dblquad(lambda v, u: relu(u) * relu(v) * phi2([u, v]), 0, T, 0, T)[0]
    bias = full - inner
    assert full == pytest.approx((math.sqrt(1 - rho**2) + rho * (math.pi - math.acos(rho))) / (2 * math.pi), rel=1e-6)
    assert 0 < bias <= 2 * math.sqrt(1.5 * special.ndtr(-T))


def test_bad_targets():
    for kw in (dict(n=0, delta=0.1, eps=0.1), dict(n=3, delta=1.0, eps=0.1), dict(n=3, delta=0.1, eps=0.0)):
        with pytest.raises(ValueError):
            kernel_width_bound(**kw)
    with pytest.raises(ValueError, match="inequality"):
        kernel_width_bound(3, 0.1, 0.1, inequality="chernoff")


# -- Monte Carlo: the bound holds, and it is not vacuous-by-construction ---------------------


def test_kernel_deviation_against_closed_form_kernels():
    rng = np.random.default_rng(1)
    X = sphere(rng, 4, 10)
    # unbiasedness: E K̂ = K∞; the mean over trials of K̂ − K∞ at one entry is centred
    for act, ref in (("erf", erf_kernel(X)), ("relu", relu_kernel(X))):
        dev = kernel_deviation(X, 20000, act, trials=5, reference=ref, seed=2)
        assert dev.max() < 0.05  # p = 20000: max entrywise error ~ 4·(0.7/√p)
        dev_small = kernel_deviation(X, 20, act, trials=5, reference=ref, seed=2)
        assert dev_small.min() > dev.max()
    # the default reference (Hermite series of rftheory.theory.hermite) agrees with the closed form
    d1 = kernel_deviation(X, 500, "erf", trials=3, seed=5)
    d2 = kernel_deviation(X, 500, "erf", trials=3, seed=5, reference=erf_kernel(X))
    np.testing.assert_allclose(d1, d2, atol=1e-6)


@pytest.mark.parametrize("act, kernel, inequality", [("erf", erf_kernel, "hoeffding"), ("relu", relu_kernel, "bernstein")])
def test_bound_holds_by_monte_carlo(act, kernel, inequality):
    """At the suggested p, the fraction of V with max|K̂ − K∞| > ε is ≤ δ; at p/100 it is not."""
    rng = np.random.default_rng(7)
    n, delta, eps = 3, 0.1, 0.05
    X = sphere(rng, n, 8)
    b = kernel_width_bound(n, delta, eps, act, inequality=inequality)
    ref = kernel(X)
    found, fails = measured_kernel_width(X, eps, delta, [max(n, b.p // 100), b.p], act, trials=40, reference=ref)
    assert fails[1] <= delta  # the bound holds (it is conservative: in practice 0)
    assert fails[0] > delta  # and the check can fail: 100× narrower is not enough
    assert found == b.p


def test_gram_accuracy_uses_lambda_min():
    rng = np.random.default_rng(3)
    X = sphere(rng, 5, 6)
    eps, lam = gram_accuracy(X, "relu", fraction=0.5)
    lam_ref = np.linalg.eigvalsh(relu_kernel(X))[0]
    assert lam <= lam_ref + 1e-12  # certified lower bound (truncation error subtracted)
    assert lam == pytest.approx(lam_ref, rel=0.2)
    assert eps == pytest.approx(0.5 * lam / 5)
    with pytest.raises(ValueError, match="not certified positive"):
        gram_accuracy(np.vstack([X[:2], X[:1]]), "relu")  # duplicate row: singular K∞


def test_measured_gram_width_against_direct_eigenvalues():
    rng = np.random.default_rng(4)
    X = sphere(rng, 3, 5)
    found, fails, lam = measured_gram_width(X, 0.1, [3, 4000], "relu", trials=10)
    assert lam == pytest.approx(np.linalg.eigvalsh(relu_kernel(X))[0], rel=0.2)
    assert fails[1] == 0.0 and found == 4000  # p = 4000: λ_min(ΦΦᵀ/p) concentrates near λ_min(K∞)
    # p = n = 3: compare with the same draws done by hand
    bad = 0
    r = np.random.default_rng([0, 3, 0x6A])
    for _ in range(10):
        V = r.standard_normal((3, 5)) / math.sqrt(5)
        F = np.maximum(X @ V.T, 0)
        bad += np.linalg.eigvalsh(F @ F.T / 3)[0] < 0.5 * lam
    assert fails[0] == bad / 10 and fails[0] > 0.1


# -- empirical threshold -------------------------------------------------------------------


def test_empirical_threshold_small_sweep():
    res = empirical_threshold(2, 10, [200, 8], seeds=(0, 1), search="full", restarts=1, max_iter=300)
    assert res.p_values == [8, 200]
    assert res.success == [0.0, 1.0]  # p = 8 ≪ dn = 20 fails, p = 10·dn succeeds
    assert res.threshold == 200 and len(res.details) == 4
    assert all(0 <= L <= 1 for Ls in res.losses for L in Ls)
    with pytest.raises(ValueError, match="rank"):
        empirical_threshold(2, 10, [8], search="known")
    with pytest.raises(ValueError, match="at least n"):
        empirical_threshold(4, 10, [2])


def test_empirical_threshold_known_subspace_below_full():
    """Known subspace: recovery at p = 4rn = 64 for all seeds; full search fails there (d=40, r=4, n=4)."""
    kw = dict(seeds=(0, 1, 2, 3), rank=4, restarts=2, max_iter=1000)
    known = empirical_threshold(4, 40, [64], search="known", **kw)
    full = empirical_threshold(4, 40, [64], search="full", **kw)
    assert known.success == [1.0] and full.success == [0.0]


@pytest.mark.gpu
@requires_gpu
def test_kernel_deviation_cupy():
    import cupy as cp

    X = sphere(np.random.default_rng(0), 3, 6)
    dev = kernel_deviation(cp.asarray(X), 1000, "erf", trials=3, reference=cp.asarray(erf_kernel(X)))
    assert isinstance(dev, cp.ndarray) and float(dev.max()) < 0.2
