"""Backend dispatch: the NumPy path always, the CuPy path when a GPU is lent."""
import numpy as np
import pytest

from rftheory.backend import array_namespace, cupy_available, resolve_backend, to_backend, to_numpy
from rftheory.data.synthetic import synthetic_sphere
from rftheory.attack.loss import projection_loss
from rftheory.models.random_features import RandomFeatures

from conftest import requires_gpu


def test_numpy_namespace_and_round_trip():
    a = np.arange(3.0)
    assert array_namespace(a, None, 2.0) is np
    assert to_numpy(a) is a
    assert to_backend(a, np) is a
    assert resolve_backend(None) is np and resolve_backend("numpy") is np


def test_unknown_backend_and_missing_gpu_are_clear_errors():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        resolve_backend("jax")
    if not cupy_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_backend("cupy")


def test_import_does_not_need_cupy():
    import subprocess
    import sys

    code = "import sys; sys.modules['cupy'] = None; import rftheory.attack.reconstruct, rftheory.cli; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.gpu
@requires_gpu
def test_cupy_path_matches_numpy():
    cp = resolve_backend("cupy")
    ds = synthetic_sphere(5, 7, seed=0)
    cpu = RandomFeatures(600, 7, "relu+tanh", seed=3).fit(ds.X, ds.y)
    gpu = RandomFeatures(600, 7, "relu+tanh", seed=3, backend="cupy").fit(cp.asarray(ds.X), cp.asarray(ds.y))
    np.testing.assert_allclose(to_numpy(gpu.weights), cpu.weights, rtol=0, atol=0)
    np.testing.assert_allclose(to_numpy(gpu.theta), cpu.theta, rtol=1e-10)
    X_hat = synthetic_sphere(5, 7, seed=9).X
    a = projection_loss(X_hat, cpu.theta, cpu)
    b = projection_loss(cp.asarray(X_hat), gpu.theta, gpu)
    assert array_namespace(b.grad) is cp
    assert b.loss == pytest.approx(a.loss, rel=1e-10)
    np.testing.assert_allclose(to_numpy(b.grad), a.grad, rtol=1e-8, atol=1e-12)
