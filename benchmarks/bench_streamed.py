"""p = 10^6, d = 100, n = 20 with streamed V (never stored): fit, a few
loss/gradient evaluations and L-BFGS iterations; peak memory and time.

V alone would be 10^8 float64 = 800 MB; streamed, memory holds one block of
V (plus the prefetched next one) and the n×p features.

    python benchmarks/bench_streamed.py [--p 1000000] [--iterations 3]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

from rftheory.data.synthetic import synthetic_sphere  # noqa: E402
from rftheory.attack.loss import projection_loss  # noqa: E402
from rftheory.models.random_features import RandomFeatures  # noqa: E402
from rftheory.attack.reconstruct import reconstruct  # noqa: E402

LIMIT_GB = 24.0


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args(argv)
    print(machine_line())
    ds = synthetic_sphere(args.n, args.d, seed=0)
    start = time.perf_counter()
    model = RandomFeatures(args.p, args.d, "relu+tanh", seed=1000, store_weights=False).fit(ds.X, ds.y)
    print(f"fit (streamed V, float64): {time.perf_counter() - start:.1f} s, train residual {model.train_residual:.1e}")
    work = model.astype("float32")
    start = time.perf_counter()
    res = projection_loss(ds.X.astype("float32"), model.theta, work)
    print(f"one float32 evaluation at the truth: {time.perf_counter() - start:.1f} s, loss {res.loss:.1e}")
    start = time.perf_counter()
    out = reconstruct(model.theta, model, args.n, restarts=1, max_iter=args.iterations, reseed=False, tol=0.0,
                      strategy="restarts")
    t = time.perf_counter() - start
    print(f"attack: {out.iterations} L-BFGS iterations, {out.evaluations} evaluations in {t:.1f} s "
          f"({t / max(out.evaluations, 1):.1f} s/evaluation), loss {out.loss_history[0]:.3f} -> {out.loss:.3f}")
    peak = peak_gb()
    ok = peak < LIMIT_GB
    print(f"peak resident memory {peak:.2f} GB (limit {LIMIT_GB:.0f} GB) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
