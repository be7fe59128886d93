"""A NumPy-backed stand-in for the CuPy namespace, for exercising the GPU code path without a GPU.

CuPy arrays live on the device; NumPy arrays on the host.  CuPy never converts
between them implicitly:

* ``np.asarray(cupy_array)`` (any ``__array__`` request) raises TypeError;
  the explicit routes are ``cupy.asnumpy(a)`` and ``a.get()``;
* a NumPy ufunc or function given a CuPy array dispatches to CuPy
  (``__array_ufunc__``/``__array_function__``), but mixing a CuPy array with a
  ``numpy.ndarray`` operand (``cupy_a + numpy_b``, ``cupy.dot(cupy_a,
  numpy_b)``) raises TypeError; NumPy *scalars* and Python numbers mix freely;
* ``float()``, ``int()``, ``bool()`` of a one-element array are allowed (a
  synchronising copy of one value), as in CuPy;
* reductions return 0-d device arrays, not host scalars;
* ``cupy.linalg.cholesky`` of a non-positive-definite matrix returns NaNs
  instead of raising.

:class:`FakeArray` wraps an ``np.ndarray`` and enforces these rules;
:data:`fake_cupy` is the namespace (``asarray``, ``asnumpy``, ``linalg``,
``random``, every NumPy function and dtype by name), :data:`fake_cupyx` the
``cupyx.scipy.special``/``cupyx.scipy.linalg`` functions rftheory imports.
:func:`install` puts them in place of CuPy for rftheory (through
``rftheory.backend.get_cupy`` and ``is_cupy_array``) with a pytest
``monkeypatch``.  Host/device mixing in the package then fails on CPU exactly
where it would fail on a GPU.
"""
from __future__ import annotations

import sys
import types

import numpy as np

__all__ = ["FakeArray", "fake_cupy", "fake_cupyx", "install", "ImplicitConversionError"]

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


class ImplicitConversionError(TypeError):
    """Raised where CuPy raises TypeError for an implicit host/device conversion or mixing."""


def _refuse_host(obj, where: str) -> None:
    raise ImplicitConversionError(
        f"fake CuPy: a numpy.ndarray {getattr(obj, 'shape', '')} reached {where} (host/device mixing; "
        "CuPy raises TypeError here: move it with cupy.asarray first)"
    )


def _unwrap(obj, where: str, allow_host: bool = False):
    """Replace FakeArrays by their data (recursively in lists/tuples/dicts); refuse host arrays."""
    if isinstance(obj, FakeArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        if not allow_host:
            _refuse_host(obj, where)
        return obj
    if isinstance(obj, (list, tuple)):
        out = [_unwrap(o, where, allow_host) for o in obj]
        return type(obj)(out) if type(obj) in (list, tuple) else type(obj)(*out)
    if isinstance(obj, dict):
        return {k: _unwrap(v, where, allow_host) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """Arrays (and NumPy scalars, which CuPy returns as 0-d arrays) become FakeArrays."""
    if isinstance(obj, np.ndarray):
        return FakeArray(obj)
    if isinstance(obj, np.generic) and not isinstance(obj, (np.str_, np.bytes_)):
        return FakeArray(np.asarray(obj))
    if isinstance(obj, tuple):
        items = [_wrap(o) for o in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


class FakeArray:
    """A device array stand-in: an ``np.ndarray`` that refuses implicit conversion to the host."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError("FakeArray wraps an np.ndarray")
        self._a = a

    # -- the explicit routes to the host --------------------------------------------------------
    def get(self, stream=None, order="C", out=None):
        return np.array(self._a, order=order, copy=True)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        return self._a.__index__()

    # -- the implicit route, refused as CuPy does --------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise ImplicitConversionError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"numpy.{ufunc.__name__}"
        inputs = _unwrap(inputs, where)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], where)
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        where = f"numpy.{func.__name__}"
        return _wrap(func(*_unwrap(args, where), **_unwrap(kwargs, where)))

    # -- ndarray protocol -------------------------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def nbytes(self):
        return self._a.nbytes

    @property
    def T(self):
        return FakeArray(self._a.T)

    @property
    def flags(self):
        return self._a.flags

    @property
    def strides(self):
        return self._a.strides

    @property
    def real(self):
        return FakeArray(self._a.real)

    @property
    def imag(self):
        return FakeArray(self._a.imag)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for row in self._a:
            yield _wrap(row)

    def __repr__(self):
        return f"FakeArray({self._a!r})"

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "indexing", allow_host=True)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "indexing", allow_host=True)] = _unwrap(value, "item assignment", allow_host=True)

    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__/__array_struct__: no back door to the host buffer
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            where = f"ndarray.{name}"
            return _wrap(attr(*_unwrap(args, where), **_unwrap(kwargs, where)))

        return method

    def __copy__(self):
        return FakeArray(self._a.copy())

    def __deepcopy__(self, memo):
        return FakeArray(self._a.copy())


def _binary(name):
    def op(self, other):
        if isinstance(other, np.ndarray):
            _refuse_host(other, f"FakeArray.{name}")
        other = other._a if isinstance(other, FakeArray) else other
        result = getattr(self._a, name)(other)
        return NotImplemented if result is NotImplemented else _wrap(result)

    op.__name__ = name
    return op


def _unary(name):
    def op(self):
        return _wrap(getattr(self._a, name)())

    op.__name__ = name
    return op


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
           "lshift", "rshift"):
    for _f in (f"__{_n}__", f"__r{_n}__", f"__i{_n}__"):
        setattr(FakeArray, _f, _binary(_f))
for _f in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(FakeArray, _f, _binary(_f))
for _f in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(FakeArray, _f, _unary(_f))
FakeArray.__hash__ = None


def _function(fn, name, allow_host=False):
    def call(*args, **kwargs):
        where = f"cupy.{name}"
        return _wrap(fn(*_unwrap(args, where, allow_host), **_unwrap(kwargs, where, allow_host)))

    call.__name__ = name.rsplit(".", 1)[-1]
    call.__qualname__ = name
    return call


class _Namespace(types.ModuleType):
    """A module whose functions are NumPy's (or ``source``'s) behind the device rules."""

    def __init__(self, name, source, overrides=None):
        super().__init__(name)
        self._source = source
        self._overrides = dict(overrides or {})

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._overrides:
            return self._overrides[name]
        attr = getattr(self._source, name)
        if isinstance(attr, type) or isinstance(attr, (types.ModuleType, np.dtype)) or not callable(attr):
            return attr  # dtypes (np.float32 as a dtype argument), constants
        return _function(attr, f"{self.__name__}.{name}")


def _asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """Host → device (explicit: allowed, as ``cupy.asarray``)."""
    if isinstance(a, FakeArray):
        out = a._a if dtype is None else a._a.astype(dtype, copy=False)
        return a if out is a._a else FakeArray(out)
    return FakeArray(np.array(_unwrap(a, "cupy.asarray", allow_host=True), dtype=dtype, order=order or "K",
                              copy=True))


def _array(a, dtype=None, copy=True, order="K", ndmin=0):
    a = _unwrap(a, "cupy.array", allow_host=True)
    return FakeArray(np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Device → host (explicit: allowed, as ``cupy.asnumpy``)."""
    if isinstance(a, FakeArray):
        return a.get(order=order)
    return np.asarray(a, order=order)


def _get_array_module(*args):
    return fake_cupy if any(isinstance(a, FakeArray) for a in args) else np


def _cholesky(a):
    """As CuPy: NaNs, not LinAlgError, for a matrix that is not positive definite."""
    a = _unwrap(a, "cupy.linalg.cholesky")
    try:
        return FakeArray(np.linalg.cholesky(a))
    except np.linalg.LinAlgError:
        return FakeArray(np.full(a.shape, np.nan, dtype=np.result_type(a.dtype, np.float32)))


fake_linalg = _Namespace("cupy.linalg", np.linalg, {"cholesky": _cholesky})
fake_random = _Namespace("cupy.random", np.random)
fake_cupy = _Namespace(
    "cupy",
    np,
    {
        "ndarray": FakeArray,
        "asarray": _asarray,
        "asanyarray": _asarray,
        "ascontiguousarray": lambda a, dtype=None: _asarray(np.ascontiguousarray(a._a if isinstance(a, FakeArray)
                                                                                  else a, dtype=dtype)),
        "array": _array,
        "asnumpy": _asnumpy,
        "get_array_module": _get_array_module,
        "linalg": fake_linalg,
        "random": fake_random,
        "__version__": "fake",
    },
)


def _scipy_namespace(name, module):
    return _Namespace(name, module)


def _fake_cupyx_modules() -> dict:
    import scipy.linalg
    import scipy.special

    special = _scipy_namespace("cupyx.scipy.special", scipy.special)
    linalg = _scipy_namespace("cupyx.scipy.linalg", scipy.linalg)
    scipy_ns = types.ModuleType("cupyx.scipy")
    scipy_ns.special, scipy_ns.linalg = special, linalg
    root = types.ModuleType("cupyx")
    root.scipy = scipy_ns
    return {"cupyx": root, "cupyx.scipy": scipy_ns, "cupyx.scipy.special": special, "cupyx.scipy.linalg": linalg}


fake_cupyx = None  # made by install(): imports SciPy


def is_fake_array(a) -> bool:
    """The stand-in's ``is_cupy_array``: a FakeArray (or a real CuPy array) is on the device."""
    return isinstance(a, FakeArray) or type(a).__module__.split(".")[0] == "cupy"


def install(monkeypatch):
    """Make rftheory see :data:`fake_cupy` as CuPy for the rest of a test (pytest ``monkeypatch``).

    ``rftheory.backend.get_cupy`` returns the stand-in, ``is_cupy_array``
    recognises :class:`FakeArray` (in every rftheory module that imported
    it by name), and ``cupyx.scipy.{special,linalg}`` resolve to SciPy behind
    the same device rules.
    """
    global fake_cupyx
    import rftheory.backend as backend

    original = backend.is_cupy_array
    monkeypatch.setattr(backend, "get_cupy", lambda: fake_cupy)
    for name, module in list(sys.modules.items()):
        if (name == "rftheory" or name.startswith("rftheory.")) and getattr(module, "is_cupy_array", None) is original:
            monkeypatch.setattr(module, "is_cupy_array", is_fake_array)
    mods = _fake_cupyx_modules()
    fake_cupyx = mods["cupyx"]
    for name, module in mods.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake_cupy
