"""Atomic counters and spin waits for the panel loss's threads (Numba, CPU).

:mod:`rftheory._engine.panel_loss` hands one evaluation to its threads once; inside
compiled code they then claim pieces of work from a shared counter and meet
between the two passes by spinning on it, instead of returning to Python and
waking each other through the operating system (a futex round trip per
meeting would cost more than the spin).

All functions act on one element of a C-contiguous int64 array:

* ``atomic_add(ctl, i, k)`` returns the old value of ctl[i] and adds k
  (sequentially consistent: the caller's earlier writes are visible to a
  thread that then reads ctl[i]);
* ``atomic_load(ctl, i)`` reads ctl[i] with acquire ordering;
* ``atomic_store(ctl, i, k)`` writes ctl[i] with release ordering;
* ``cpu_relax()`` is the processor's spin-wait hint (PAUSE on x86-64, a
  no-op elsewhere) and ``yield_processor()`` gives the core away
  (``sched_yield`` on POSIX), so that a spinning thread does not starve
  the one it waits for when there are more threads than cores.
"""
from __future__ import annotations

import os
import platform

__all__ = ["atomic_add", "atomic_load", "atomic_store", "cpu_relax", "yield_processor"]

try:  # pragma: no cover - exercised whenever numba is installed
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    _HAVE_NUMBA = True
except Exception:  # pragma: no cover
    _HAVE_NUMBA = False

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_POSIX = os.name == "posix"


if _HAVE_NUMBA:
    def _element(context, builder, signature, args):
        """Pointer to ctl[i] (int64) from the (array, index) arguments."""
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.gep(builder.bitcast(array.data, ir.IntType(64).as_pointer()), [index])

    def _check(ctl):
        if not (isinstance(ctl, types.Array) and ctl.dtype == types.int64 and ctl.layout == "C"):
            raise TypeError("the control array must be C-contiguous int64")

    @intrinsic
    def atomic_add(typingctx, ctl, i, k):  # pragma: no cover - compiled
        _check(ctl)

        def codegen(context, builder, signature, args):
            value = context.cast(builder, args[2], signature.args[2], types.int64)
            return builder.atomic_rmw("add", _element(context, builder, signature, args), value, "seq_cst")

        return types.int64(ctl, i, k), codegen

    @intrinsic
    def atomic_load(typingctx, ctl, i):  # pragma: no cover - compiled
        _check(ctl)

        def codegen(context, builder, signature, args):
            return builder.load_atomic(_element(context, builder, signature, args), "acquire", 8)

        return types.int64(ctl, i), codegen

    @intrinsic
    def atomic_store(typingctx, ctl, i, k):  # pragma: no cover - compiled
        _check(ctl)

        def codegen(context, builder, signature, args):
            value = context.cast(builder, args[2], signature.args[2], types.int64)
            builder.store_atomic(value, _element(context, builder, signature, args), "release", 8)
            return context.get_dummy_value()

        return types.void(ctl, i, k), codegen

    @intrinsic
    def cpu_relax(typingctx):  # pragma: no cover - compiled
        def codegen(context, builder, signature, args):
            if _X86:
                pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                       "llvm.x86.sse2.pause")
                builder.call(pause, [])
            return context.get_dummy_value()

        return types.void(), codegen

    @intrinsic
    def yield_processor(typingctx):  # pragma: no cover - compiled
        def codegen(context, builder, signature, args):
            if _POSIX:
                sched_yield = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                                             "sched_yield")
                builder.call(sched_yield, [])
            return context.get_dummy_value()

        return types.void(), codegen
