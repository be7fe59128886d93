"""NumPy vs Numba for the fused σ/σ' (n=20, p=20000).

Decides the defaults of ``rftheory.kernels``: the kernel is on by default only
where it is faster here.

    python benchmarks/bench_kernels.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, machine_line  # noqa: E402

from rftheory.activations import get_activation  # noqa: E402
from rftheory.kernels import fused_value_and_derivative, kernel_coefficients, numba_available  # noqa: E402


def main() -> int:
    print(machine_line())
    if not numba_available():
        print("numba not installed: nothing to compare")
        return 0
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        Z = rng.standard_normal((20, 20000)).astype(dtype)
        for name in ("relu", "tanh", "relu+tanh"):
            act = get_activation(name)
            t_np = best_time(lambda: fused_value_and_derivative(act, Z, force=False))
            t_nb = best_time(lambda: fused_value_and_derivative(act, Z, force=True))
            print(f"{np.dtype(dtype).name:8s} {name:10s} numpy {t_np * 1e3:7.3f} ms  numba {t_nb * 1e3:7.3f} ms  "
                  f"-> {'numba' if t_nb < t_np else 'numpy'} faster (default: {'numba' if kernel_coefficients(act, Z) is not None else 'numpy'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
