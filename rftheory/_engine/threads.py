"""BLAS thread limits as the engine reads and pins them, cheaply enough to do per evaluation.

Two rules (reasons in brackets):

* the panel kernels run on ``blas_limit()`` threads (the current BLAS limit,
  so that ``threadpoolctl.threadpool_limits(1)``, as set by sweep workers,
  makes them serial too and they never oversubscribe where BLAS would not),
  and on one thread below SMALL_PROBLEM_FLOPS per evaluation;
* while an evaluation runs, BLAS is pinned to one thread where the panel
  kernels do the products (a threaded BLAS call inside would leave OpenBLAS
  threads spinning beside the kernels' own) and, on the BLAS path, below
  SMALL_PROBLEM_FLOPS (threads gain nothing there and oversubscribe a
  busy machine).

Pinning goes through the libraries' own ``*_set_num_threads`` symbols,
found once by threadpoolctl: a few C calls per evaluation, where entering
``threadpoolctl.threadpool_limits`` (a scan of the loaded libraries) would
cost more than the small evaluations it is meant to speed up.  The pin is
counted (:class:`_SerialBlas`): the first evaluation to enter saves the
limits and sets 1, the last to leave restores them, so overlapping
evaluations on several Python threads never leave BLAS pinned.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading

__all__ = ["SMALL_PROBLEM_FLOPS", "blas_limit", "serial_blas", "blas_for"]

SMALL_PROBLEM_FLOPS = 2e7  # 4·rows·d·p per evaluation below which threads do not pay for themselves

_OPENBLAS_AFFIXES = tuple(itertools.product(("", "scipy_"), ("", "64_", "_64")))  # threadpoolctl's symbol names


def _get_set(controller):
    """(get, set) of one BLAS library's thread limit: OpenBLAS's C symbols where it has its own
    pthreads pool (threadpoolctl's setter would make the first calling thread the only one allowed
    to set it), else the controller's methods."""
    if controller.internal_api == "openblas" and getattr(controller, "threading_layer", None) != "openmp":
        for prefix, suffix in _OPENBLAS_AFFIXES:
            get = getattr(controller.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(controller.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return controller.get_num_threads, controller.set_num_threads


class _Libraries:
    """The loaded BLAS libraries' (get, set) pairs, found on first use and again once scipy.linalg
    (whose OpenBLAS is a library of its own) has been imported."""

    def __init__(self):
        self.pairs = None
        self.with_scipy = False

    def __call__(self):
        if self.pairs is None or (not self.with_scipy and "scipy.linalg" in sys.modules):
            self.with_scipy = "scipy.linalg" in sys.modules
            try:
                from threadpoolctl import ThreadpoolController  # noqa: PLC0415

                controllers = ThreadpoolController().select(user_api="blas").lib_controllers
                self.pairs = [_get_set(c) for c in controllers]
            except Exception:  # pragma: no cover - threadpoolctl missing or a BLAS it cannot query
                self.pairs = []
        return self.pairs


_LIBRARIES = _Libraries()


def blas_limit() -> int:
    """The current BLAS thread limit (the smallest over the loaded libraries); ``os.cpu_count()``
    if none can be queried."""
    counts = []
    for get, _ in _LIBRARIES():
        with contextlib.suppress(Exception):
            counts.append(int(get()))
    counts = [c for c in counts if c > 0]
    return max(1, min(counts)) if counts else max(os.cpu_count() or 1, 1)


class _SerialBlas:
    """Context: BLAS on one thread inside, the previous limits restored when the last user leaves.

    Re-entrant and shared by threads (a count under a lock): the limits are
    process-wide, so they are saved by the first entry and restored by the
    last exit only.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = ()

    def __enter__(self):
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                saved = []
                for get, put in _LIBRARIES():
                    n = get()
                    if n != 1:
                        put(1)
                        saved.append((put, n))
                self._saved = saved
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for put, n in self._saved:
                    put(n)
                self._saved = ()
        return False


serial_blas = _SerialBlas()
_AS_SET = contextlib.nullcontext()


def blas_for(flops: float):
    """The BLAS set-up for an evaluation of ``flops`` (4·rows·d·p) on the BLAS path: :data:`serial_blas`
    below SMALL_PROBLEM_FLOPS, else the limits as they are."""
    return serial_blas if flops < SMALL_PROBLEM_FLOPS else _AS_SET
