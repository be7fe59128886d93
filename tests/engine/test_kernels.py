"""Fused σ/σ' (NumPy and Numba) against the separate definitions; the
feature-map protocol path of the loss against the RF path and finite
differences (multi-output Θ)."""
import numpy as np
import pytest

from rftheory.models.activations import get_activation, known_activations
from rftheory._engine.kernels import fused_value_and_derivative, numba_available
from rftheory.attack.loss import feature_map_loss, projection_loss
from rftheory.models.random_features import RandomFeatures

from conftest import sphere_rows


@pytest.mark.parametrize("name", known_activations() + ["0.5*relu+2*tanh", "gelu+silu"])
def test_value_and_derivative_equals_fn_and_deriv(name, rng):
    act = get_activation(name)
    Z = rng.standard_normal((7, 301)) * 3
    F, D = act.value_and_derivative(Z)
    np.testing.assert_allclose(F, act.fn(Z), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(D, act.deriv(Z), rtol=1e-14, atol=1e-15)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("name", ["relu", "tanh", "relu+tanh", "0.5*relu+2*tanh"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_numba_kernels_match_numpy(name, dtype, tol, rng):
    act = get_activation(name)
    Z = (rng.standard_normal((9, 1001)) * 2).astype(dtype)
    Z[0, :3] = 0.0  # σ'(0) convention: relu'(0) = 0
    F, D = fused_value_and_derivative(act, Z, force=True)
    F0, D0 = fused_value_and_derivative(act, Z, force=False)
    assert F.dtype == dtype and D.dtype == dtype
    np.testing.assert_allclose(F, F0, rtol=tol, atol=tol)
    np.testing.assert_allclose(D, D0, rtol=tol, atol=tol)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_default_kernel_choice_follows_the_measurements(monkeypatch):
    """Numba by default for float32 and for float64 relu; NumPy for float64 tanh, and for a float64
    tanh part on an AVX-512 host (NumPy's vectorised tanh is faster there)."""
    from rftheory._engine import kernels

    monkeypatch.delenv("RFTHEORY_NUMBA", raising=False)
    Z32, Z64 = np.zeros((2, 8), np.float32), np.zeros((2, 8))
    act = get_activation
    assert kernels.kernel_coefficients(act("relu+tanh"), Z32) == (1.0, 1.0)
    assert kernels.kernel_coefficients(act("tanh"), Z32) == (0.0, 1.0)
    assert kernels.kernel_coefficients(act("relu"), Z64) == (1.0, 0.0)
    assert kernels.kernel_coefficients(act("tanh"), Z64) is None
    for wide in (True, False):
        monkeypatch.setattr(kernels, "_wide_host", lambda: wide)
        expected = None if wide else (1.0, 1.0)
        assert kernels.kernel_coefficients(act("relu+tanh"), Z64) == expected
        assert kernels.kernel_coefficients(act("relu+tanh"), Z64, force=True) == (1.0, 1.0)


class _WrappedRF:
    """An RF model seen only through the feature-map protocol."""

    def __init__(self, rf):
        self.rf, self.p, self.d, self.dtype, self.xp = rf, rf.p, rf.d, rf.dtype, rf.xp

    def features(self, X):
        return self.rf.features(X)

    def features_vjp(self, X, G):
        _, D = self.rf.activation.value_and_derivative(self.rf.preactivations(X))
        return (G * D) @ self.rf.weights


def test_feature_map_path_equals_random_features_path(rng):
    n, d = 4, 6
    X = sphere_rows(rng, n, d)
    rf = RandomFeatures(700, d, "relu+tanh", seed=2).fit(X, rng.standard_normal(n))
    X_hat = sphere_rows(rng, n, d)
    a = projection_loss(X_hat, rf.theta, rf)
    b = projection_loss(X_hat, rf.theta, _WrappedRF(rf))
    assert b.loss == pytest.approx(a.loss, rel=1e-12)
    np.testing.assert_allclose(b.grad, a.grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(b.alpha, a.alpha, rtol=1e-10)


def test_multi_output_loss_gradient_matches_finite_differences(rng):
    n, d, C = 3, 5, 4
    rf = RandomFeatures(400, d, "tanh", seed=7)
    model = _WrappedRF(rf)
    Theta = rng.standard_normal((400, C))
    X_hat = sphere_rows(rng, n, d)
    res = feature_map_loss(X_hat, Theta, model)
    # multi-output loss is the ‖Θ‖²-weighted mean of the per-column losses
    cols = [feature_map_loss(X_hat, Theta[:, c], model).loss for c in range(C)]
    weights = (Theta * Theta).sum(axis=0) / (Theta * Theta).sum()
    assert res.loss == pytest.approx(float(np.dot(weights, cols)), rel=1e-12)
    h = 1e-6
    fd = np.zeros_like(X_hat)
    for i in range(n):
        for j in range(d):
            E = np.zeros_like(X_hat)
            E[i, j] = h
            fd[i, j] = (feature_map_loss(X_hat + E, Theta, model, with_grad=False).loss
                        - feature_map_loss(X_hat - E, Theta, model, with_grad=False).loss) / (2 * h)
    assert np.linalg.norm(res.grad - fd) / np.linalg.norm(fd) < 1e-5
