r"""Memory and disk caches of Hermite expansions.

Results live in memory and on disk (JSON, one file per activation and
option set) under ``$RFTHEORY_CACHE_DIR`` or ``$XDG_CACHE_HOME/rftheory`` or
``~/.cache/rftheory`` (sub-folder ``hermite``); set RFTHEORY_CACHE_DIR to
``off`` to disable the disk cache.  An unwritable folder silently falls back
to memory only.  Only built-in activations, their combinations, "step" and
SymPy expressions are cached on disk (a user's own Activation is cached in
memory only: its callables cannot be keyed).  A file holds the highest order
computed; a lower order is a slice of it, a higher one is recomputed.

No evaluable text on disk
-------------------------
Whoever can write the cache folder must not be able to run code or change
a verdict.  Exact values are therefore stored as an expression *tree* of a
few whitelisted node types (:data:`_FUNCTIONS`, :data:`_CONSTANTS`, integers
as decimal strings, rationals as ``"p/q"``), serialised as JSON lists and
rebuilt by constructing the SymPy objects directly — never through
``sympify``/``parse_expr``/``eval``.  An exact value with any other node
(a Float, a symbol, an unlisted function) keeps the whole entry in memory
only.  Sizes are bounded (digits of an integer, exponents of a power,
nodes and depth of a tree) so that rebuilding a tree cannot be made to
take unbounded time or memory.

Checks before use
-----------------
A file is used only if it passes, in order:

1. its layout (format, version, key, lengths and types of every field);
2. a SHA-256 content hash over the cache key, the order and every stored
   field (catches edits and corruption that leave the layout intact);
3. every stored exact value, evaluated to 30 digits, equals its stored
   float to 1e-12 (relative and absolute);
4. a fresh, independent evaluation of a few coefficients from σ itself
   (adaptive quadrature of μ_k = ∫_0^∞ [σ(x) + (−1)^k σ(−x)] h_k(x) φ(x) dx
   for k = 0..3 and a few further orders up to 40, drawn at random on every
   load) and of E[σ²] agrees with the stored floats to 1e-8 (plus a
   relative 1e-6 and the quadrature's own error estimate).

A file failing any check is ignored with a warning naming it (and is then
overwritten by the recomputed entry); a missing file is silently a miss.
The hash alone is no defence against someone who recomputes it, which is
what checks 3 and 4 are for: a changed coefficient must also agree with σ.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import tempfile
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from .expansion import HermiteExpansion, readonly_array

__all__ = ["cache_dir", "clear_cache", "memory_get", "remember", "disk_load", "disk_store",
           "encode_exact", "decode_exact"]

# Part of every file's key and content: raise it when the JSON layout or a method's numbers change.
# Version 2 replaced the srepr strings of version 1 (parsed by sympify) by whitelisted trees;
# a version-1 file has another name and is never read.
_CACHE_VERSION = 2
_FORMAT = "rftheory-hermite-cache"

_MEMORY: dict = {}
_LOCK = threading.Lock()

# --- bounds on what a stored tree may ask SymPy to build -----------------------------------
_MAX_DIGITS = 2000  # decimal digits of an integer, numerator or denominator
_MAX_EXPONENT = 10_000  # |p|, |q| of a rational exponent of a power (2**10000 has ~3000 digits)
_MAX_NODES = 20_000  # nodes of one tree
_MAX_DEPTH = 64  # nesting of one tree
_INT_RE = re.compile(r"-?\d{1,%d}\Z" % _MAX_DIGITS)
_RAT_RE = re.compile(r"-?\d{1,%d}/\d{1,%d}\Z" % (_MAX_DIGITS, _MAX_DIGITS))

# --- the tolerances of checks 3 and 4 -------------------------------------------------------
_EXACT_RTOL = 1e-12
_FRESH_ATOL = 1e-8
_FRESH_RTOL = 1e-6
_FRESH_MAX_ORDER = 40  # the quadrature of h_k φ gets costly (oscillatory) for large k
_FRESH_EXTRA = 4  # random orders checked besides 0..3


def _functions() -> dict:
    import sympy as sp  # noqa: PLC0415

    return {
        "Add": sp.Add, "Mul": sp.Mul, "Pow": sp.Pow,
        "exp": sp.exp, "log": sp.log, "erf": sp.erf, "erfc": sp.erfc,
        "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
        "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "asinh": sp.asinh, "atanh": sp.atanh,
        "gamma": sp.gamma,
    }


def _constants() -> dict:
    import sympy as sp  # noqa: PLC0415

    return {"pi": sp.pi, "E": sp.E, "EulerGamma": sp.EulerGamma, "Catalan": sp.Catalan}


class _Unstorable(Exception):
    """An exact value with a node outside the whitelist (kept in memory only)."""


def encode_exact(expr):
    """A SymPy number expression as a JSON-ready tree of whitelisted nodes.

    ``["int", "12"]``, ``["rat", "-3/4"]``, ``["const", "pi"]``, ``[name, child, …]`` for
    a function in the whitelist.  Raises ValueError for any other node.
    """
    import sympy as sp  # noqa: PLC0415

    funcs = _functions()
    consts = {v: k for k, v in _constants().items()}

    def enc(e, depth):
        if depth > _MAX_DEPTH:
            raise ValueError("exact value nested too deeply to store")
        if isinstance(e, sp.Integer):
            s = str(int(e))
            if not _INT_RE.match(s):
                raise ValueError("integer too long to store")
            return ["int", s]
        if isinstance(e, sp.Rational):
            s = f"{int(e.p)}/{int(e.q)}"
            if not _RAT_RE.match(s):
                raise ValueError("rational too long to store")
            return ["rat", s]
        if e in consts:
            return ["const", consts[e]]
        name = type(e).__name__
        if name in funcs and type(e) is funcs[name]:
            return [name] + [enc(a, depth + 1) for a in e.args]
        raise ValueError(f"node {name} of an exact value is not storable")

    return enc(expr, 0)


def decode_exact(tree):
    """Rebuild the SymPy expression of :func:`encode_exact` by constructing its objects.

    Nothing is parsed as code: integers by :class:`int` of a decimal string,
    rationals by :class:`fractions.Fraction` of ``"p/q"`` (both matched
    against a digits-only pattern first), functions from the whitelist.
    Raises ValueError for anything else or beyond the size bounds.
    """
    import sympy as sp  # noqa: PLC0415

    funcs = _functions()
    consts = _constants()
    count = [0]

    def dec(t, depth):
        count[0] += 1
        if count[0] > _MAX_NODES or depth > _MAX_DEPTH:
            raise ValueError("exact value too large")
        if not isinstance(t, list) or not t or not isinstance(t[0], str):
            raise ValueError(f"malformed exact value node {t!r:.60}")
        tag = t[0]
        if tag in ("int", "rat", "const"):
            if len(t) != 2 or not isinstance(t[1], str):
                raise ValueError(f"malformed {tag} node")
            if tag == "int":
                if not _INT_RE.match(t[1]):
                    raise ValueError(f"not a decimal integer: {t[1]!r:.60}")
                return sp.Integer(int(t[1]))
            if tag == "rat":
                if not _RAT_RE.match(t[1]):
                    raise ValueError(f"not a rational p/q: {t[1]!r:.60}")
                f = Fraction(t[1])
                return sp.Rational(f.numerator, f.denominator)
            if t[1] not in consts:
                raise ValueError(f"unknown constant {t[1]!r:.60}")
            return consts[t[1]]
        if tag not in funcs:
            raise ValueError(f"node {tag!r:.60} is not in the whitelist")
        args = [dec(a, depth + 1) for a in t[1:]]
        if tag == "Pow":
            if len(args) != 2:
                raise ValueError("Pow needs two arguments")
            ex = args[1]
            if not isinstance(ex, sp.Rational) or abs(ex.p) > _MAX_EXPONENT or ex.q > _MAX_EXPONENT:
                # a symbolic or huge exponent could make SymPy build an enormous number
                raise ValueError("power with an exponent that is not a small rational")
        elif tag not in ("Add", "Mul") and len(args) != 1:
            raise ValueError(f"{tag} takes one argument")
        return funcs[tag](*args)

    return dec(tree, 0)


def cache_dir() -> Path | None:
    """The disk-cache folder for Hermite expansions, or None if disabled.

    ``$RFTHEORY_CACHE_DIR`` (``off``/``none``/``0``/empty disables the disk
    cache), else ``$XDG_CACHE_HOME/rftheory``, else ``~/.cache/rftheory``; the
    expansions go to its ``hermite`` sub-folder.  Read at every call.
    """
    env = os.environ.get("RFTHEORY_CACHE_DIR")
    if env is not None:
        if env.strip().lower() in ("", "off", "none", "0", "false"):
            return None
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg).expanduser() / "rftheory" if xdg else Path.home() / ".cache" / "rftheory"
    return root / "hermite"


def clear_cache(disk: bool = False) -> None:
    """Forget the in-memory expansions; with ``disk=True`` also delete the JSON files."""
    with _LOCK:
        _MEMORY.clear()
    if disk:
        d = cache_dir()
        if d is not None and d.is_dir():
            for f in d.glob("*.json"):
                try:
                    f.unlink()
                except OSError:
                    pass


def memory_get(key):
    """The expansion held in memory under ``key``, or None."""
    with _LOCK:
        return _MEMORY.get(key)


def remember(key, exp: HermiteExpansion) -> None:
    """Hold ``exp`` in memory under ``key`` unless a higher order is held already."""
    with _LOCK:
        old = _MEMORY.get(key)
        if old is None or old.order < exp.order:
            _MEMORY[key] = exp


def _disk_path(key) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha256(repr((_CACHE_VERSION, key)).encode()).hexdigest()[:40]
    return d / f"{h}.json"


def _digest(body: dict) -> str:
    """SHA-256 of the canonical JSON of every stored field (keyed by the cache key and order)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(f"{_FORMAT}\n{_CACHE_VERSION}\n".encode() + text.encode()).hexdigest()


def _to_json(exp: HermiteExpansion, key) -> str | None:
    """The file's text, or None when an exact value has a node outside the whitelist."""

    def enc(e):
        return None if e is None else encode_exact(e)

    try:
        exact = [enc(e) for e in exp.exact]
        e2_exact = enc(exp.second_moment_exact)
    except (ValueError, RecursionError):
        return None
    body = {
        "format": _FORMAT,
        "version": _CACHE_VERSION,
        "key": repr(key),
        "order": exp.order,
        "activation": exp.activation,
        "coefficients": [float(v) for v in exp.coefficients],
        "methods": list(exp.methods),
        "exact": exact,
        "error_bounds": [float(v) for v in exp.error_bounds],
        "second_moment": float(exp.second_moment),
        "second_moment_error": float(exp.second_moment_error),
        "second_moment_method": exp.second_moment_method,
        "second_moment_exact": e2_exact,
    }
    return json.dumps(dict(body, digest=_digest(body)))


class _Tampered(ValueError):
    """The file exists but fails a check: ignored with a warning."""


def _float_list(d, name, n, finite=True):
    v = d.get(name)
    if not isinstance(v, list) or len(v) != n or not all(type(x) in (int, float) for x in v):
        raise _Tampered(f"field {name!r} is not a list of {n} numbers")
    if finite and not all(math.isfinite(x) for x in v):
        raise _Tampered(f"field {name!r} holds non-finite numbers")
    return [float(x) for x in v]


def _number(d, name):
    v = d.get(name)
    if type(v) not in (int, float) or not math.isfinite(v):
        raise _Tampered(f"field {name!r} is not a finite number")
    return float(v)


def _from_json(text: str, key) -> HermiteExpansion:
    """The expansion of a file that passes checks 1–3 (module docstring); _Tampered otherwise."""
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise _Tampered(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("version") != _CACHE_VERSION:
        raise _Tampered("not a version-%d Hermite cache file" % _CACHE_VERSION)
    if d.get("key") != repr(key):
        raise _Tampered("its key is not the key of its name")
    digest = d.pop("digest", None)
    if not isinstance(digest, str) or digest != _digest(d):
        raise _Tampered("content hash does not match")
    K = d.get("order")
    if type(K) is not int or K < 0:
        raise _Tampered("field 'order' is not an order")
    n = K + 1
    coefficients = _float_list(d, "coefficients", n)
    bounds = _float_list(d, "error_bounds", n, finite=False)
    methods = d.get("methods")
    exact_t = d.get("exact")
    strings = (d.get("activation"), d.get("second_moment_method"))
    if (not isinstance(methods, list) or len(methods) != n or not all(isinstance(m, str) for m in methods)
            or not isinstance(exact_t, list) or len(exact_t) != n or not all(isinstance(s, str) for s in strings)):
        raise _Tampered("fields 'methods', 'exact', 'activation' or 'second_moment_method' malformed")
    e2, e2err = _number(d, "second_moment"), d.get("second_moment_error")
    if type(e2err) not in (int, float):
        raise _Tampered("field 'second_moment_error' is not a number")
    try:
        exact = [None if t is None else decode_exact(t) for t in exact_t]
        e2_exact = None if d.get("second_moment_exact") is None else decode_exact(d["second_moment_exact"])
    except (ValueError, TypeError, ZeroDivisionError, RecursionError) as exc:
        raise _Tampered(f"an exact value is not a whitelisted expression ({exc})") from None
    # check 3: exact values agree with the stored floats
    for k, (e, v) in enumerate(list(zip(exact, coefficients)) + [(e2_exact, e2)]):
        if e is None:
            continue
        try:
            ev = complex(e.evalf(30))
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _Tampered(f"exact value {k} does not evaluate to a number ({exc})") from None
        if ev.imag != 0 or not abs(ev.real - v) <= _EXACT_RTOL * max(1.0, abs(v)):
            what = "E[σ²]" if k == n else f"μ_{k}"
            raise _Tampered(f"exact {what} = {ev.real!r} disagrees with its stored float {v!r}")
    return HermiteExpansion(
        activation=strings[0],
        coefficients=readonly_array(coefficients),
        methods=tuple(methods),
        exact=tuple(exact),
        error_bounds=readonly_array(bounds),
        second_moment=e2,
        second_moment_error=float(e2err),
        second_moment_method=strings[1],
        second_moment_exact=e2_exact,
    )


def _fresh_orders(K: int) -> list:
    low = list(range(min(K, 3) + 1))
    pool = range(4, min(K, _FRESH_MAX_ORDER) + 1)
    return low + sorted(random.sample(pool, min(_FRESH_EXTRA, len(pool))))


def _fresh_coefficient(fn, k: int) -> tuple[float, float]:
    """μ_k = ∫_0^∞ [σ(x) + (−1)^k σ(−x)] h_k(x) φ(x) dx by adaptive quadrature, and its error estimate."""
    from scipy.integrate import quad  # noqa: PLC0415

    sq = [math.sqrt(j) for j in range(k + 2)]
    s = 1.0 if k % 2 == 0 else -1.0

    def f(x):
        ph = math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        if ph == 0.0:
            return 0.0
        v = np.asarray(fn(np.array([x, -x], dtype=np.float64)), dtype=np.float64)
        a, b = 1.0, x
        if k == 0:
            h = 1.0
        else:
            for j in range(1, k):
                a, b = b, (x * b - sq[j] * a) / sq[j + 1]
            h = b
        return (float(v[0]) + s * float(v[1])) * h * ph

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val, err = quad(f, 0.0, np.inf, epsabs=1e-11, epsrel=1e-10, limit=400)
    return float(val), float(err)


def _fresh_check(exp: HermiteExpansion, fn) -> None:
    """Check 4 (module docstring): a few μ_k and E[σ²] recomputed from σ; _Tampered on disagreement."""
    from .quadrature import quad_second_moment  # noqa: PLC0415

    for k in _fresh_orders(exp.order):
        v, err = _fresh_coefficient(fn, k)
        stored = float(exp.coefficients[k])
        tol = _FRESH_ATOL + _FRESH_RTOL * abs(v) + 10.0 * err + min(float(exp.error_bounds[k]), _FRESH_ATOL)
        if not math.isfinite(v) or not abs(stored - v) <= tol:
            raise _Tampered(f"stored μ_{k} = {stored!r} but σ gives {v!r}")
    v, err = quad_second_moment(fn)
    tol = _FRESH_ATOL + _FRESH_RTOL * abs(v) + 10.0 * err
    if not abs(exp.second_moment - v) <= tol:
        raise _Tampered(f"stored E[σ²] = {exp.second_moment!r} but σ gives {v!r}")


def disk_load(key, fn=None) -> HermiteExpansion | None:
    """The expansion stored under ``key``, or None (no file, or a file that fails its checks).

    ``fn`` is σ as a NumPy function, used for the fresh evaluation of check 4
    (module docstring); without it only checks 1–3 are made.  A file failing a
    check is reported with a warning naming it.
    """
    path = _disk_path(key)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError) or not path.exists():
            return None
        warnings.warn(f"Hermite cache file {path} is unreadable ({exc}); recomputing", RuntimeWarning, stacklevel=3)
        return None
    try:
        exp = _from_json(text, key)
        if fn is not None:
            try:
                _fresh_check(exp, fn)
            except _Tampered:
                raise
            except Exception as exc:  # noqa: BLE001 - a check that cannot run cannot vouch for the file
                raise _Tampered(f"the fresh evaluation failed ({type(exc).__name__}: {exc})") from None
    except _Tampered as exc:
        warnings.warn(
            f"Hermite cache file {path} failed its integrity check ({exc}); ignored and recomputed",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return exp


def disk_store(key, exp: HermiteExpansion) -> None:
    """Write ``exp`` under ``key`` (atomically); nothing when the folder is unwritable or an exact
    value is not storable (see the module docstring)."""
    path = _disk_path(key)
    if path is None:
        return
    text = _to_json(exp, key)
    if text is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # not writable: memory-only
