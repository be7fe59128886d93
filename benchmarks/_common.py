"""Shared helpers of the benchmark scripts (timing, machine matmul peak)."""
from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np


def machine_line() -> str:
    return (f"machine: {platform.machine()}, {os.cpu_count()} logical cores, numpy {np.__version__}, "
            f"load average {os.getloadavg()[0]:.2f} (figures are only comparable on a quiet machine)")


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
