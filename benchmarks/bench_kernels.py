"""NumPy vs Numba kernels (n=20, d=100, p=20000).

1. the fused σ/σ' (rftheory._engine.kernels);
2. the packed-panel products X̂Vᵀ and WV (rftheory._engine.panel) against NumPy's
   BLAS on the same data, one thread each (the panel kernels' threads are
   added by rftheory._engine.panel_loss, BLAS's by OpenBLAS).

Decides the defaults of ``rftheory.backend.NUMBA_DEFAULT``: a kernel is on by default
only where it is faster here.

    python benchmarks/bench_kernels.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, machine_line, matmul_gflops  # noqa: E402

from rftheory.models.activations import get_activation  # noqa: E402
from rftheory._engine.kernels import fused_value_and_derivative, kernel_coefficients, numba_available  # noqa: E402
from rftheory._engine.panel import (  # noqa: E402
    PANEL_WIDTH,
    TILE_ROWS,
    VECTOR,
    _backward_blocks,
    pack_forward,
    panel_matmul_backward,
    panel_matmul_forward,
)


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
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    n, d, p = 20, 100, 20000
    X = rng.standard_normal((n, d)).astype(np.float32)
    V = rng.standard_normal((p, d)).astype(np.float32)
    W = rng.standard_normal((n, p)).astype(np.float32)
    P = pack_forward(V)
    flops = 2 * n * d * p
    with threadpool_limits(limits=1, user_api="blas"):
        peak = matmul_gflops(np.float32)
        print(f"float32  sgemm 2048² (1 thread): {peak:.1f} GFLOP/s")
        # the kernel alone: W already padded (the loss writes W chunk by chunk, in cache)
        Wp = np.zeros((-(-n // TILE_ROWS) * TILE_ROWS, P.shape[0] * PANEL_WIDTH), dtype=np.float32)
        Wp[:n, :p] = W
        G8 = np.zeros((Wp.shape[0], P.shape[1], VECTOR), dtype=np.float32)
        for name, blas, panel in (("X̂Vᵀ", lambda: X @ V.T, lambda: panel_matmul_forward(X, P, p)),
                                  ("WV", lambda: W @ V, lambda: panel_matmul_backward(W, P, d)),
                                  ("WV, kernel only", lambda: W @ V, lambda: _backward_blocks(Wp, P, G8, 0, P.shape[0], 0))):
            t_blas, t_panel = best_time(blas), best_time(panel)
            print(f"float32  {name:16s} (1 thread)  BLAS {t_blas * 1e3:6.3f} ms = {flops / t_blas / 1e9:5.1f} GFLOP/s   "
                  f"panel {t_panel * 1e3:6.3f} ms = {flops / t_panel / 1e9:5.1f} GFLOP/s "
                  f"({flops / t_panel / 1e9 / peak:.0%} of the 1-thread peak)  -> {'panel' if t_panel < t_blas else 'BLAS'} faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
