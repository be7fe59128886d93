"""The vector width the compiled kernels are written for, fixed at import from the host.

VECTOR float32 lanes per hardware vector: 16 where the host has AVX-512F,
else 8 (AVX2 and anything narrower: 8-lane code is correct everywhere LLVM
can lower it).  A portable target named through NUMBA_CPU_NAME or
NUMBA_CPU_FEATURES gets 8 too, because Numba's on-disk cache is keyed by
the same CPU name and features and a cached kernel must match them.
"""
from __future__ import annotations

__all__ = ["VECTOR"]


def _host_vector_lanes() -> int:
    """float32 lanes of the widest vector register Numba will compile for: 16 with AVX-512F, else 8."""
    try:
        from llvmlite import binding as llvm
        from numba.core import config

        if config.CPU_NAME or config.CPU_FEATURES:  # a portable (e.g. cached-for-another-host) target: stay at 8
            return 8
        return 16 if llvm.get_host_cpu_features().get("avx512f", False) else 8
    except Exception:  # pragma: no cover - no Numba / no host query: the 8-lane layout is always correct
        return 8


VECTOR = _host_vector_lanes()  # float32 lanes per hardware vector the kernels are written for
