"""Tests for rftheory.theory.hermite.kernel: K∞ = Σ μ_k² (XXᵀ/d)^{∘k}, with a Monte Carlo check."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rftheory.backend import cupy_available, get_cupy
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.hermite import KernelLimit, hermite_coefficients, kernel_limit


pytestmark = pytest.mark.usefixtures("private_hermite_cache")


# --- limiting kernel --------------------------------------------------------------


def _sphere(n, d, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X * (math.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True))


def test_kernel_limit_basic():
    X = _sphere(7, 12)
    res = kernel_limit(X, "relu+tanh", 20)
    assert isinstance(res, KernelLimit)
    K, bound = res
    e = hermite_coefficients("relu+tanh", 20)
    assert K.shape == (7, 7) and np.allclose(K, K.T)
    assert np.all(np.abs(np.diag(K) - e.second_moment) <= bound)
    assert bound >= e.truncation_error
    assert np.linalg.eigvalsh(K).min() > 0
    # direct (non-Horner) evaluation
    rho = X @ X.T / 12
    direct = sum(c**2 * rho**k for k, c in enumerate(e.coefficients))
    np.testing.assert_allclose(K, direct, atol=1e-13)
    # cross kernel
    Y = _sphere(3, 12, seed=1)
    KY, _ = kernel_limit(X, "relu", 10, Y=Y)
    assert KY.shape == (7, 3)


def test_kernel_limit_requires_sphere():
    X = np.random.default_rng(0).standard_normal((4, 10))
    with pytest.raises(ValueError, match="sphere"):
        kernel_limit(X, "relu")
    K, _ = kernel_limit(X, "relu", check_sphere=False)
    assert K.shape == (4, 4)


def test_kernel_limit_monte_carlo_rate():
    """Empirical ΦΦᵀ/p → K∞ with error ~ 1/√p (V ~ N(0, 1/d), rows on the √d-sphere)."""
    n, d = 6, 16
    X = _sphere(n, d, seed=3)
    Kinf, bound = kernel_limit(X, "relu+tanh", 40)
    assert bound < 1e-3  # ≪ the Monte Carlo error at the largest p
    ps = [250, 1000, 4000, 16000]
    errs = []
    for p in ps:
        e = []
        for seed in range(4):
            Phi = RandomFeatures(p, d, "relu+tanh", seed=seed).features(X)
            e.append(np.sqrt(np.mean((Phi @ Phi.T / p - Kinf) ** 2)))
        errs.append(np.mean(e))
    slope = np.polyfit(np.log(ps), np.log(errs), 1)[0]
    assert -0.8 < slope < -0.3, (slope, errs)
    assert errs[-1] < 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_kernel_limit_cupy():
    cp = get_cupy()
    X = _sphere(5, 8)
    K, b = kernel_limit(cp.asarray(X), "relu", 10)
    assert type(K).__module__.startswith("cupy")
    np.testing.assert_allclose(cp.asnumpy(K), kernel_limit(X, "relu", 10)[0], atol=1e-12)
