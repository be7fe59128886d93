"""Array-backend dispatch: NumPy always, CuPy when installed and a GPU exists.

Every public function of rftheory takes NumPy or CuPy arrays and returns the
same kind.  The rule is the one of ``cupy.get_array_module``: if any argument
is a CuPy array the CuPy namespace is used, otherwise NumPy.  Importing this
module never imports CuPy eagerly in a way that can fail: a missing CuPy, a
CuPy without a driver, or a machine without a GPU all leave ``cupy_available()``
False and everything on NumPy.
"""
from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

import numpy as np

__all__ = [
    "array_namespace",
    "cupy_available",
    "get_cupy",
    "is_cupy_array",
    "to_numpy",
    "to_backend",
    "resolve_backend",
    "numba_available",
    "numba_enabled",
    "NUMBA_DEFAULT",
]


@functools.lru_cache(maxsize=1)
def get_cupy() -> ModuleType | None:
    """Return the ``cupy`` module if it imports *and* sees a CUDA device, else None."""
    try:
        import cupy  # noqa: PLC0415

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, driver errors ...
        return None


def cupy_available() -> bool:
    """True when CuPy is importable and at least one CUDA device is visible."""
    return get_cupy() is not None


def is_cupy_array(a) -> bool:
    """True for a ``cupy.ndarray`` (checked without importing CuPy)."""
    return type(a).__module__.split(".")[0] == "cupy"


def array_namespace(*arrays) -> ModuleType:
    """The array module (numpy or cupy) for the given arrays.

    Non-array arguments (None, scalars) are ignored.  Mixing NumPy and CuPy
    arrays is allowed; CuPy wins, as with ``cupy.get_array_module``.
    """
    for a in arrays:
        if a is not None and is_cupy_array(a):
            cp = get_cupy()
            if cp is None:  # pragma: no cover - a CuPy array implies CuPy works
                import cupy as cp  # noqa: PLC0415
            return cp
    return np


def to_numpy(a) -> np.ndarray:
    """Copy a CuPy array to the host; return NumPy input unchanged."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def resolve_backend(backend: str | ModuleType | None) -> ModuleType:
    """Map ``"numpy"``/``"cupy"``/``None``/a module to the array module.

    Raises ValueError for an unknown name and RuntimeError when CuPy is asked
    for but no GPU is usable.
    """
    if backend is None or backend is np or backend == "numpy":
        return np
    if isinstance(backend, ModuleType):
        return backend
    if backend == "cupy":
        cp = get_cupy()
        if cp is None:
            raise RuntimeError(
                "backend 'cupy' requested but CuPy is not installed or no CUDA "
                "device is visible; install the 'gpu' extra on a GPU machine or "
                "use backend='numpy'"
            )
        return cp
    raise ValueError(f"unknown backend {backend!r}; use 'numpy' or 'cupy'")


def to_backend(a, xp: ModuleType):
    """Move ``a`` to the array module ``xp`` (host<->device copy if needed)."""
    if xp is np:
        return to_numpy(a)
    return xp.asarray(a)


# ---- Numba (optional compiled CPU kernels) ----

# Which compiled kernels are on by default; benchmarks/bench_kernels.py measures each against NumPy.
NUMBA_DEFAULT = {"relu_tanh": True, "panel": True, "rows": True}


@functools.cache
def numba_available() -> bool:
    """Whether Numba imports (the compiled CPU kernels need it; NumPy paths do not).

    Asked on first use, not at import, so that importing rftheory does not load Numba.
    """
    try:
        importlib.import_module("numba")
    except Exception:  # pragma: no cover - numba missing or broken
        return False
    return True


def numba_enabled(kind: str) -> bool:
    """Whether the Numba kernel ``kind`` ("relu_tanh", "panel", "rows") is on: RFTHEORY_NUMBA, else NUMBA_DEFAULT."""
    if not numba_available():
        return False
    flag = os.environ.get("RFTHEORY_NUMBA", "auto").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return NUMBA_DEFAULT.get(kind, False)
