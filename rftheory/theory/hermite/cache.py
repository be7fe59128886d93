r"""Memory and disk caches of Hermite expansions.

Results live in memory and on disk (JSON, one file per activation and
option set) under ``$RFTHEORY_CACHE_DIR`` or ``$XDG_CACHE_HOME/rftheory`` or
``~/.cache/rftheory`` (sub-folder ``hermite``); set RFTHEORY_CACHE_DIR to
``off`` to disable the disk cache.  An unwritable folder silently falls back
to memory only.  Only built-in activations, their combinations, "step" and
SymPy expressions are cached on disk (a user's own Activation is cached in
memory only: its callables cannot be keyed).  A file holds the highest order
computed; a lower order is a slice of it, a higher one is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from .expansion import HermiteExpansion, readonly_array

__all__ = ["cache_dir", "clear_cache", "memory_get", "remember", "disk_load", "disk_store"]

_CACHE_VERSION = 1  # part of every file's key: raise it when the JSON layout or a method's numbers change

_MEMORY: dict = {}
_LOCK = threading.Lock()


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


def _to_json(exp: HermiteExpansion, key) -> str:
    def sre(e):
        if e is None:
            return None
        import sympy as sp  # noqa: PLC0415

        return sp.srepr(e)

    return json.dumps(
        {
            "version": _CACHE_VERSION,
            "key": repr(key),
            "activation": exp.activation,
            "coefficients": [float(v) for v in exp.coefficients],
            "methods": list(exp.methods),
            "exact": [sre(e) for e in exp.exact],
            "error_bounds": [float(v) for v in exp.error_bounds],
            "second_moment": exp.second_moment,
            "second_moment_error": exp.second_moment_error,
            "second_moment_method": exp.second_moment_method,
            "second_moment_exact": sre(exp.second_moment_exact),
        }
    )


def _from_json(text: str, key) -> HermiteExpansion | None:
    d = json.loads(text)
    if d.get("version") != _CACHE_VERSION or d.get("key") != repr(key):
        return None
    exact_s = d["exact"]
    if any(s is not None for s in exact_s) or d["second_moment_exact"] is not None:
        import sympy as sp  # noqa: PLC0415

        def parse(s):
            return None if s is None else sp.sympify(s)

    else:

        def parse(s):
            return None

    return HermiteExpansion(
        activation=d["activation"],
        coefficients=readonly_array(d["coefficients"]),
        methods=tuple(d["methods"]),
        exact=tuple(parse(s) for s in exact_s),
        error_bounds=readonly_array(d["error_bounds"]),
        second_moment=float(d["second_moment"]),
        second_moment_error=float(d["second_moment_error"]),
        second_moment_method=d["second_moment_method"],
        second_moment_exact=parse(d["second_moment_exact"]),
    )


def disk_load(key) -> HermiteExpansion | None:
    path = _disk_path(key)
    if path is None:
        return None
    try:
        return _from_json(path.read_text(), key)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, AttributeError):
        return None


def disk_store(key, exp: HermiteExpansion) -> None:
    path = _disk_path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(_to_json(exp, key))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # not writable: memory-only
