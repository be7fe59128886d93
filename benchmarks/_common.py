"""Shared helpers of the benchmark scripts (timing, machine matmul peak)."""
from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor(), else "unknown CPU"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def kernel_width() -> str:
    """The packed-panel kernels' float32 vector width on this host (rftheory._engine.panel.VECTOR)."""
    try:
        from rftheory._engine import panel  # noqa: PLC0415

        return f"{panel.VECTOR}-lane panel kernels" if panel.panel_kernels_available() else "no Numba"
    except Exception as error:  # pragma: no cover - reported, not fatal
        return f"panel kernels unavailable ({error})"


def machine_line() -> str:
    return (f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} logical cores, {kernel_width()}, "
            f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f} "
            f"(figures are only comparable on a quiet machine)")


def best_time(fn, repeat: int = 5, min_time: float = 0.2) -> float:
    """Median over ``repeat`` rounds of the mean time per call (each round ≥ min_time s)."""
    fn()
    rounds = []
    for _ in range(repeat):
        k, start = 0, time.perf_counter()
        while True:
            fn()
            k += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        rounds.append(elapsed / k)
    return statistics.median(rounds)


def matmul_sampler(dtype, size: int = 2048):
    """sample(repeat, min_time) -> measured GEMM GFLOP/s of this machine (all cores, the BLAS numpy uses),
    on one pair of size×size matrices made once."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size)).astype(dtype)
    B = rng.standard_normal((size, size)).astype(dtype)

    def sample(repeat: int = 3, min_time: float = 0.5) -> float:
        return 2 * size**3 / best_time(lambda: A @ B, repeat=repeat, min_time=min_time) / 1e9

    return sample


def matmul_gflops(dtype, size: int = 2048) -> float:
    """Measured GEMM throughput of this machine (all cores, the BLAS numpy uses)."""
    return matmul_sampler(dtype, size)()


def memory_line() -> str:
    """Total and available memory (MemTotal, MemAvailable of /proc/meminfo), or a note that they are unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in info if line.split()[1:2]}
        return (f"memory: {fields['MemTotal'] / 2**20:.1f} GiB total, {fields['MemAvailable'] / 2**20:.1f} GiB "
                f"available; {os.cpu_count()} logical cores")
    except (OSError, KeyError, ValueError, IndexError):
        return f"memory: unknown; {os.cpu_count()} logical cores"
