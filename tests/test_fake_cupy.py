"""The GPU code path, run on CPU through a NumPy-backed stand-in for CuPy (tests/fake_cupy.py).

The stand-in refuses implicit host conversion and host/device mixing as CuPy
does, so every ``np.asarray`` of a device array, every NumPy array mixed
into a device computation, fails here as it would on a GPU.  Each test runs
the same computation on NumPy and through the stand-in and compares; the
first tests prove the stand-in does fail on an implicit conversion.  The
real CuPy tests (marked ``requires_gpu``) stay for a machine with a device.
"""
import numpy as np
import pytest

import fake_cupy as fc
from conftest import sphere_rows
from rftheory.attack.loss import projection_loss
from rftheory.attack.reconstruct import reconstruct
from rftheory.backend import array_namespace, resolve_backend, to_numpy
from rftheory.models.adapters import TwoLayerMLP
from rftheory.models.random_features import RandomFeatures

ImplicitConversionError = fc.ImplicitConversionError


@pytest.fixture
def cp(monkeypatch):
    return fc.install(monkeypatch)


# --- the stand-in itself --------------------------------------------------------------------


def test_standin_refuses_implicit_conversion(cp):
    a = cp.asarray(np.arange(6.0).reshape(2, 3))
    assert isinstance(a, fc.FakeArray) and array_namespace(a) is cp and resolve_backend("cupy") is cp
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)  # the deliberately wrong call: a device array taken to the host implicitly
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(a, dtype=np.float64)
    with pytest.raises(TypeError):
        a + np.ones(3)  # host operand in a device expression
    with pytest.raises(TypeError):
        np.ones(3) * a
    with pytest.raises(TypeError):
        cp.concatenate([a, np.ones((1, 3))])
    with pytest.raises(TypeError):
        a @ np.ones(3)
    # explicit routes and what CuPy allows
    np.testing.assert_array_equal(a.get(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(cp.asnumpy(a), to_numpy(a))
    s = a.sum()
    assert isinstance(s, fc.FakeArray) and s.ndim == 0 and float(s) == 15.0
    assert isinstance(np.linalg.norm(a), fc.FakeArray)  # NumPy functions dispatch to the device
    assert isinstance(a * np.float32(2) + 1, fc.FakeArray)  # NumPy scalars mix freely
    assert bool(cp.all(cp.isfinite(cp.linalg.cholesky(-cp.eye(2))))) is False  # CuPy: NaN, no LinAlgError


def test_standin_catches_a_host_conversion_inside_the_package(cp, monkeypatch):
    """A package function that turned a device array into a NumPy one would fail the suite."""
    import rftheory.attack.loss as loss_mod

    rng = np.random.default_rng(0)
    rf = RandomFeatures(40, 4, "relu+tanh", seed=1, backend="cupy")
    X = cp.asarray(sphere_rows(rng, 3, 4))
    rf.fit(X, cp.asarray(rng.standard_normal(3)))
    good = loss_mod.gram_solve

    def leaky_gram_solve(A, b, **kw):
        return good(np.asarray(A), np.asarray(b), **kw)  # a host/device mixing bug

    monkeypatch.setattr(loss_mod, "gram_solve", leaky_gram_solve)
    with pytest.raises(TypeError, match="Implicit conversion"):
        projection_loss(X, rf.theta, rf)


# --- the package through the stand-in -------------------------------------------------------


def _rf_pair(cp, act="relu+tanh", dtype=np.float64, n=3, d=5, p=80, seed=2, **kw):
    rng = np.random.default_rng(seed)
    X = sphere_rows(rng, n, d)
    y = rng.standard_normal(n)
    host = RandomFeatures(p, d, act, seed=seed, dtype=dtype, **kw).fit(X, y)
    dev = RandomFeatures(p, d, act, seed=seed, dtype=dtype, backend="cupy", **kw).fit(cp.asarray(X), cp.asarray(y))
    assert isinstance(dev.theta, fc.FakeArray)
    return rng, X, host, dev


@pytest.mark.parametrize("act", ["relu+tanh", "gelu", "erf", "sigmoid", "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_projection_loss_through_standin(cp, act, dtype):
    rng, X, host, dev = _rf_pair(cp, act, dtype)
    np.testing.assert_allclose(dev.theta.get(), host.theta, rtol=1e-6, atol=1e-9)
    Xh = sphere_rows(rng, 3, 5).astype(dtype)
    ref = projection_loss(Xh, host.theta, host)
    got = projection_loss(cp.asarray(Xh), dev.theta, dev)
    assert isinstance(got.grad, fc.FakeArray) and isinstance(got.alpha, fc.FakeArray)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert got.loss == pytest.approx(ref.loss, rel=tol, abs=tol)
    np.testing.assert_allclose(got.grad.get(), ref.grad, rtol=tol * 100, atol=tol)
    # batched, tangent, ReLU surrogate, streamed V
    stack = np.stack([Xh, sphere_rows(rng, 3, 5).astype(dtype)])
    ref_b = projection_loss(stack, host.theta, host, tangent=True, derivative="relu")
    got_b = projection_loss(cp.asarray(stack), dev.theta, dev, tangent=True, derivative="relu")
    np.testing.assert_allclose(to_numpy(got_b.loss), ref_b.loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_b.grad.get(), ref_b.grad, rtol=tol * 100, atol=tol)


def test_projection_loss_streamed_weights_through_standin(cp):
    rng, X, host, dev = _rf_pair(cp, "relu+tanh", np.float64, p=70, store_weights=False, block_rows=16)
    Xh = sphere_rows(rng, 3, 5)
    ref = projection_loss(Xh, host.theta, host)
    got = projection_loss(cp.asarray(Xh), dev.theta, dev)
    assert got.loss == pytest.approx(ref.loss, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(got.grad.get(), ref.grad, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("opts", [
    dict(),
    dict(batch_restarts=True),
    dict(optimizer="momentum", lr=0.05, max_iter=60),
    dict(dtype="float64", reseed=False),
])
def test_reconstruct_through_standin(cp, opts):
    rng, X, host, dev = _rf_pair(cp, "relu+tanh", np.float64, n=2, d=3, p=60)
    kw = dict(restarts=2, max_iter=150, seed=0)
    kw.update(opts)
    res = reconstruct(dev.theta, dev, 2, **kw)
    assert isinstance(res.X_hat, fc.FakeArray)
    assert res.X_hat.shape == (2, 3)
    assert np.isfinite(res.loss) and 0.0 <= res.loss <= 1.0
    ref = reconstruct(host.theta, host, 2, **kw)
    if kw.get("dtype") == "float64":  # both on the BLAS path in float64: the same arithmetic
        assert res.loss == pytest.approx(ref.loss, rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(res.X_hat.get(), ref.X_hat, rtol=1e-5, atol=1e-7)
    else:  # the host runs the compiled float32 engine: same problem, other rounding
        assert abs(res.loss - ref.loss) < 0.5 or min(res.loss, ref.loss) < 1e-6


def test_identifiability_checks_through_standin(cp):
    from rftheory.theory.identifiability import FixedWeights, kernel_concentration, single_sample_residual

    rng, X, host, dev = _rf_pair(cp, "relu+tanh", np.float64, n=3, d=4, p=200)
    Xh = sphere_rows(rng, 2, 4)
    ref = to_numpy(single_sample_residual(Xh, X, host))
    got = single_sample_residual(cp.asarray(Xh), cp.asarray(X), dev)
    assert isinstance(got, fc.FakeArray)
    np.testing.assert_allclose(got.get(), ref, rtol=1e-8, atol=1e-12)
    kc_ref = kernel_concentration(X, host, order=8)
    kc = kernel_concentration(cp.asarray(X), dev, order=8)
    for f in kc_ref._fields:
        assert not isinstance(getattr(kc, f), fc.FakeArray), f  # figures are host numbers
        assert float(getattr(kc, f)) == pytest.approx(float(getattr(kc_ref, f)), rel=1e-7, abs=1e-12), f
    fw = FixedWeights(cp.asarray(host.weights), host.activation)
    assert fw.xp is cp
    np.testing.assert_allclose(single_sample_residual(cp.asarray(Xh), cp.asarray(X), fw).get(), ref, rtol=1e-8,
                               atol=1e-12)


@pytest.mark.parametrize("act", ["relu", "tanh", "relu+tanh"])
def test_mlp_adapter_through_standin(cp, act):
    rng = np.random.default_rng(4)
    host = TwoLayerMLP(5, 9, 2, act, seed=3)
    dev = TwoLayerMLP(5, 9, 2, act, seed=3, backend="cupy")
    for k in host.params:
        assert isinstance(dev.params[k], fc.FakeArray)
        np.testing.assert_array_equal(dev.params[k].get(), host.params[k])
    X = rng.standard_normal((4, 5))
    F = dev.features(cp.asarray(X))
    assert isinstance(F, fc.FakeArray)
    np.testing.assert_allclose(F.get(), host.features(X), rtol=1e-12, atol=1e-14)
    G = rng.standard_normal((4, host.p))
    np.testing.assert_allclose(dev.features_vjp(cp.asarray(X), cp.asarray(G)).get(), host.features_vjp(X, G),
                               rtol=1e-10, atol=1e-12)
    theta = rng.standard_normal(host.p)
    ref = projection_loss(X, theta, host)
    got = projection_loss(cp.asarray(X), cp.asarray(theta), dev)
    assert got.loss == pytest.approx(ref.loss, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(got.grad.get(), ref.grad, rtol=1e-7, atol=1e-10)
