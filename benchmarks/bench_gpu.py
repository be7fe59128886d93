"""The attack on the GPU (CuPy): seconds per L-BFGS iteration and the fraction of
the device's measured float32 matmul throughput.

For each problem (synthetic, relu+tanh, float32; default n=20, d=100 and
p = 20000, the CPU benchmarks' problem, and p = 10⁶, large enough to keep a large GPU busy)
the model is fitted on the device and ``--pairs`` times a matmul peak sample
(size×size float32 through cuBLAS, CuPy's default: no TF32 unless
CUPY_TF32=1) is taken right before ``--iterations`` (100) iterations of
``reconstruct`` (after a warm-up run, time per iteration from callback time
stamps; each iteration brings the loss to the host, so the stamps follow the
device).  Printed per pair and as medians:

    fraction = (evaluations per iteration · (4ndp + 2n²p) / seconds per iteration) / peak

``--backend numpy`` runs the same measurement on the CPU (the attack's CPU
path, for checking the script without a GPU; the CPU verdict is
bench_iteration.py's).  Without CuPy or a CUDA device, ``--backend cupy`` (the
default) says so and exits with status 2.

``--image-scale`` measures CIFAR's size instead: n = 10, d = 3072 and
p ∈ {2dn = 61440, 100 000} (the authors' configuration; V is 0.75 and 1.2 GB
in float32).

    python benchmarks/bench_gpu.py [--backend cupy] [--n 20 --d 100 --p 20000 1000000 --pairs 5]
    python benchmarks/bench_gpu.py --image-scale
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

from rftheory.backend import get_cupy  # noqa: E402
from rftheory.data.synthetic import synthetic_sphere  # noqa: E402
from rftheory.models.random_features import RandomFeatures  # noqa: E402
from rftheory.attack.reconstruct import reconstruct  # noqa: E402

NO_DEVICE = 2  # exit status when the CuPy backend is asked for but no GPU is usable


def synchronize(xp) -> None:
    """Wait for the device's queued work (nothing to wait for on NumPy)."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


def matmul_peak(xp, size: int, min_time: float = 0.3) -> float:
    """Measured float32 GEMM GFLOP/s of the backend: best of 3 rounds of ≥ min_time s each."""
    rng = np.random.default_rng(0)
    A = xp.asarray(rng.standard_normal((size, size), dtype=np.float32))
    B = xp.asarray(rng.standard_normal((size, size), dtype=np.float32))
    A @ B  # warm-up: library load, kernel choice
    synchronize(xp)
    best = 0.0
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while True:
            A @ B
            calls += 1
            synchronize(xp)
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = max(best, 2 * size**3 * calls / elapsed / 1e9)
    return best


def iteration_time(model, theta, n: int, iterations: int) -> tuple[float, float]:
    """(seconds per L-BFGS iteration, evaluations per iteration): steady state over ``iterations``
    iterations of ``reconstruct`` (float32, one restart), after a warm-up run."""
    kw = dict(restarts=1, max_iter=iterations, reseed=False, tol=0.0, dtype=np.float32, strategy="restarts")
    reconstruct(theta, model, n, **kw)
    stamps = []
    res = reconstruct(theta, model, n, callback=lambda X, L: stamps.append(time.perf_counter()), **kw)
    if len(stamps) < 2:
        raise RuntimeError(f"the attack stopped after {len(stamps)} iteration(s); nothing to time")
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), res.evaluations / max(res.iterations, 1)


def measure(xp, n: int, d: int, p: int, pairs: int, size: int, iterations: int) -> float:
    """Print the pairs for one problem; return the median fraction of the peak."""
    ds = synthetic_sphere(n, d, seed=0)
    backend = "numpy" if xp is np else "cupy"
    model = RandomFeatures(p, d, "relu+tanh", seed=1000, backend=backend).fit(xp.asarray(ds.X), xp.asarray(ds.y))
    flops = 4 * n * d * p + 2 * n * n * p
    print(f"\nproblem: n={n}, d={d}, p={p}, relu+tanh, float32, {flops / 1e6:.1f} MFLOP per evaluation; "
          f"{pairs} pairs (matmul peak {size}², then {iterations} iterations after a warm-up run)")
    fractions, times = [], []
    for k in range(pairs):
        peak = matmul_peak(xp, size)
        t_iter, evals = iteration_time(model, model.theta, n, iterations)
        rate = evals * flops / t_iter / 1e9
        fractions.append(rate / peak)
        times.append(t_iter)
        print(f"  pair {k + 1:2d}: peak {peak:9.1f} GFLOP/s, {t_iter * 1e3:8.3f} ms per iteration "
              f"({evals:.2f} evaluations) = {rate:9.1f} GFLOP/s = {fractions[-1]:.1%}")
    frac = statistics.median(fractions)
    print(f"  median: {statistics.median(times) * 1e3:.3f} ms per iteration, {frac:.1%} of the measured matmul peak "
          f"(range {min(fractions):.1%}–{max(fractions):.1%})")
    return frac


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("cupy", "numpy"), default="cupy",
                    help="cupy: the GPU (default); numpy: the same measurement on the CPU, to check the script")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--p", type=int, nargs="+", default=[20000, 1000000], help="feature counts, one problem each")
    ap.add_argument("--pairs", type=int, default=5, help="peak sample + attack run pairs per problem (default 5)")
    ap.add_argument("--iterations", type=int, default=100, help="timed L-BFGS iterations per run (default 100)")
    ap.add_argument("--size", type=int, default=None,
                    help="matmul size of the peak sample (default 8192 on the GPU, 2048 on the CPU)")
    ap.add_argument("--image-scale", action="store_true",
                    help="n=10, d=3072, p = 61440 and 100000 (overrides --n, --d and --p)")
    args = ap.parse_args(argv)
    if args.image_scale:
        args.n, args.d, args.p = 10, 3072, [2 * 3072 * 10, 100_000]
    for name in ("n", "d", "pairs", "iterations"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if min(args.p) < args.n:
        ap.error("every --p must be at least --n")
    if args.backend == "cupy":
        xp = get_cupy()
        if xp is None:
            print("bench_gpu: CuPy is not installed or no CUDA device is visible: nothing measured "
                  "(install the 'gpu' extra on a GPU machine, or pass --backend numpy to check the script)",
                  file=sys.stderr)
            return NO_DEVICE
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"device: {name}, CuPy {xp.__version__}")
    else:
        xp = np
    print(machine_line())
    size = args.size or (8192 if xp is not np else 2048)
    results = {p: measure(xp, args.n, args.d, p, args.pairs, size, args.iterations) for p in args.p}
    print("\nper L-BFGS iteration, median fraction of the measured float32 matmul peak: "
          + "; ".join(f"p={p}: {f:.1%}" for p, f in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
