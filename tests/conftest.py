import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from rftheory.backend import NUMBA_DEFAULT, cupy_available

settings.register_profile("ci", max_examples=25, deadline=None)
settings.load_profile("ci")

requires_gpu = pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device (none visible)")


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str):
    """The module benchmarks/<name>.py, loaded from its file (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_one_line_cli_error(argv, msg, out_path, capsys):
    """``rftheory ARGV --out OUT`` refuses with exit status 2, one line naming ``msg``, and writes nothing."""
    from rftheory.cli import main

    try:
        status = main(list(argv) + ["--out", str(out_path)])
    except SystemExit as exc:  # refused by argparse while parsing
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not out_path.exists()


def sphere_rows(rng, n, d):
    X = rng.standard_normal((n, d))
    return X * (np.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


os.environ.setdefault("RFTHEORY_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "rftheory"))


def pytest_sessionfinish(session, exitstatus):
    """An empty selection must never pass: turn "no tests collected" (5) into a failure."""
    if exitstatus == 5:
        session.exitstatus = 1


@pytest.fixture
def blas_path(monkeypatch):
    """Context in which the loss takes the BLAS path (the engine's panel kernel switched off)."""
    def off():
        monkeypatch.setitem(NUMBA_DEFAULT, "panel", False)
    return off


@pytest.fixture(scope="module")
def private_hermite_cache(tmp_path_factory):
    """A fresh Hermite cache folder (and an empty memory cache) for one test module, so that its
    numbers are computed there and no other module's cache is read or written."""
    from rftheory.theory.hermite import clear_cache

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RFTHEORY_CACHE_DIR", str(tmp_path_factory.mktemp("rfcache")))
        clear_cache()
        yield
        clear_cache()


@pytest.fixture(scope="module")
def small_problem():
    """Subspace data (n=3, d=12, r=3) and a fitted random-features model (p=50)."""
    from rftheory.data.subspace import synthetic_subspace
    from rftheory.models.random_features import RandomFeatures

    ds = synthetic_subspace(3, 12, 3, seed=1)
    model = RandomFeatures(50, 12, "relu+tanh", seed=7).fit(ds.X, ds.y)
    return ds, model


@pytest.fixture(scope="module")
def gd_problem():
    """Generic data (r = d = 6), a random-features model (p=400) and its GD from a seeded θ₀."""
    from rftheory.data.subspace import synthetic_subspace
    from rftheory.models.random_features import RandomFeatures
    from rftheory.models.training import rf_gradient_descent

    ds = synthetic_subspace(3, 6, 6, seed=2)  # r = d: generic data
    model = RandomFeatures(400, 6, "relu+tanh", seed=5)
    gd = rf_gradient_descent(model, ds.X, ds.y, init_seed=3, tol=1e-12)
    return ds, model, gd
