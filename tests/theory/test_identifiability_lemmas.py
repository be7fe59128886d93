"""identifiability.lemmas: kernel concentration, moments, feature norms, rank and the sign lemma
against their definitions and closed forms."""
import math

import numpy as np
import pytest

from rftheory.models.random_features import RandomFeatures
from rftheory.theory.hermite import hermite_coefficients, kernel_limit
from rftheory.theory.identifiability.lemmas import (
    activation_moments,
    feature_norms,
    feature_rank,
    gaussian_union_z,
    kernel_concentration,
    sign_lemma,
)

from conftest import sphere_rows


def test_kernel_concentration_definitions(rng):
    n, d, p = 5, 6, 300
    X = sphere_rows(rng, n, d)
    model = RandomFeatures(p, d, "relu", seed=6)
    kc = kernel_concentration(X, model)
    Phi = np.asarray(model.features(X))
    E = Phi @ Phi.T / p - kernel_limit(X, "relu", 60).kernel
    assert kc.op_error == pytest.approx(np.linalg.norm(E, 2), rel=1e-10)
    assert kc.max_error == pytest.approx(np.abs(E).max(), rel=1e-10)
    var = np.array([[np.var(Phi[i] * Phi[j], ddof=1) for j in range(n)] for i in range(n)])
    assert kc.fro_scale == pytest.approx(np.sqrt(var.sum() / p), rel=1e-10)
    assert kc.lambda_min_emp == pytest.approx(np.linalg.eigvalsh(Phi @ Phi.T)[0] / p, rel=1e-10)
    # matrix Bernstein plug-ins, written out: L = (max_k ‖φ_k‖² + ‖K∞‖)/p, s² = ‖(1/p)Σ_k (φ_kφ_kᵀ − K∞)²‖/p
    K = kernel_limit(X, "relu", 60).kernel
    L = (np.max(np.sum(Phi**2, axis=0)) + np.linalg.norm(K, 2)) / p
    M = sum(np.linalg.matrix_power(np.outer(Phi[:, k], Phi[:, k]) - K, 2) for k in range(p)) / p
    s2 = np.linalg.norm(M, 2) / p
    assert kc.bernstein_L == pytest.approx(L, rel=1e-10) and kc.bernstein_s2 == pytest.approx(s2, rel=1e-8)
    ell = math.log(2 * n / 0.01)
    t = L * ell / 3 + math.sqrt((L * ell / 3) ** 2 + 2 * s2 * ell)
    assert kc.op_ceiling == pytest.approx(t + n * kc.kernel_bound, rel=1e-10)
    assert 2 * n * math.exp(-(t * t / 2) / (s2 + L * t / 3)) == pytest.approx(0.01, rel=1e-9)
    assert gaussian_union_z(10, 0.01) == pytest.approx(math.sqrt(2 * math.log(2000)))
    assert feature_rank(X, model) == (n, n)


def test_activation_moments_closed_forms():
    m2, m4 = activation_moments("relu")
    assert m2 == pytest.approx(0.5, rel=1e-10) and m4 == pytest.approx(1.5, rel=1e-10)
    m2, m4 = activation_moments("abs")
    assert m2 == pytest.approx(1.0, rel=1e-10) and m4 == pytest.approx(3.0, rel=1e-10)
    m2, _ = activation_moments("tanh")
    assert m2 == pytest.approx(hermite_coefficients("tanh", 10).second_moment, rel=1e-10)


def test_feature_norms_standardisation(rng):
    X = sphere_rows(rng, 6, 8)
    model = RandomFeatures(500, 8, "relu", seed=2)
    fn = feature_norms(X, model)
    Phi = np.asarray(model.features(X))
    np.testing.assert_allclose(fn.norms_sq, (Phi**2).sum(axis=1) / 500, rtol=1e-12)
    assert fn.sd == pytest.approx(math.sqrt((1.5 - 0.25) / 500))
    assert fn.max_z == pytest.approx(np.abs(fn.norms_sq - 0.5).max() / fn.sd)


def test_sign_lemma_predictions(rng):
    X = sphere_rows(rng, 3, 6)
    for act, pred_small in (("relu", True), ("tanh", True), ("abs", True), ("relu+tanh", False)):
        sl = sign_lemma(X, RandomFeatures(120, 6, act, seed=1))
        assert (sl.affine_residual <= 1e-12) is pred_small, act
    assert sign_lemma(X, RandomFeatures(120, 6, "relu", seed=1)).identity_error == 0.0
