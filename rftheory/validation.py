"""Input checks shared by the public functions: clear ValueError/TypeError
messages for wrong shapes, non-finite values and wrong types."""
from __future__ import annotations

import numpy as np

from .backend import array_namespace, is_cupy_array

__all__ = ["check_matrix", "check_vector", "check_finite", "check_count", "check_float_dtype"]


def _as_array(a, name):
    if is_cupy_array(a) or isinstance(a, np.ndarray):
        return a
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from exc
    return arr


def _describe_minimum(minimum: int) -> str:
    return {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer ≥ {minimum}")


def check_count(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) ≥ ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be {_describe_minimum(minimum)}, got {value!r}")
    return int(value)


def check_float_dtype(dtype) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise TypeError."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_finite(a, name: str):
    """Raise ValueError if ``a`` contains NaN or ±inf."""
    xp = array_namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        bad = int(xp.sum(~xp.isfinite(a)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return a


def _real_array(a, name: str, ndim: int, what: str):
    """``a`` as a real array of ``ndim`` dimensions (``what`` describes them in the error)."""
    a = _as_array(a, name)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {what}, got shape {tuple(a.shape)}")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real-valued, got dtype {a.dtype}")
    return a


def check_matrix(a, name: str, *, cols: int | None = None, cols_name: str = "columns", rows: int | None = None, rows_name: str = "rows"):
    """Return ``a`` as a finite real 2-D array, checking its shape."""
    a = _real_array(a, name, 2, "2-D (one sample per row)")
    if cols is not None and a.shape[1] != cols:
        raise ValueError(f"{name} has {a.shape[1]} columns but {cols_name}={cols}")
    if rows is not None and a.shape[0] != rows:
        raise ValueError(f"{name} has {a.shape[0]} rows but {rows_name}={rows}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    return check_finite(a, name)


def check_vector(a, name: str, *, length: int | None = None, length_name: str = "length"):
    """Return ``a`` as a finite real 1-D array of the given length."""
    a = _real_array(a, name, 1, "1-D")
    if length is not None and a.shape[0] != length:
        raise ValueError(f"{name} has length {a.shape[0]} but {length_name}={length}")
    return check_finite(a, name)
