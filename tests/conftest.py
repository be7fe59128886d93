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
