"""The attack at image scale (issue 25): per-iteration time against the memory roofline, batched
restarts, recovery of real colour photographs, and the authors' CIFAR-sized configuration.

Yardstick (measured in the same run): at n=10, d=3072 the two products of an
evaluation are memory-bound (each float32 element of V meets only R·n̂ rows),
so the floor of one iteration is two reads of V.  The roofline time is
2·t_read, t_read the best of ``--reads`` timings of ``V.sum(dtype=float32)``
(a NumPy reduction over the same V, one full read).  The figure is
roofline / (seconds per L-BFGS iteration): 100 % means an iteration costs two
plain reads of V.

Checks (PASS/FAIL each):

1. per iteration ≥ 70 % of the roofline at n=10, d=3072, p=2dn: ``--pairs``
   pairs, each a roofline sample then an attack of 2·``--iterations``
   iterations on a model fitted to synthetic sphere data (float32; time per
   iteration over the last ``--iterations``, from callback time stamps, as
   bench_iteration.py does); median fraction over the pairs;
2. 4 batched restarts (one stack (4, n, d)) cost ≤ 1.5× one restart per
   evaluation of the loss: median over alternated pairs of the ratio.  Printed
   beside it, the floor this machine allows: an evaluation of R restarts does
   2 products of 2·R·n·d·p flops, so it costs at least
   max(2·t_read, 4·R·n·d·p / peak), peak the best of ``--reads`` timings of a
   2048×2048 float32 matmul (NumPy's BLAS, all cores; skinny products run
   slower, so this floor is optimistic), measured in the same run; the floor
   of R = 4 over that of R = 1 is the least ratio physics allows;
3. time to recovery of 8 photographs (rftheory.data.photos, 32×32×3) at
   p = 2dn: every sign-aware error ≤ 0.05 (checked every 10 iterations) in
   under 10 minutes; the run is stopped at 10 minutes (``--skip-recovery``);
4. the authors' configuration n=10, d=3072, p=100 000 (10 photographs) run to
   recovery or ``--authors-limit`` seconds: iterations, seconds and peak memory
   (ru_maxrss) are reported (``--skip-authors``).

Both recovery runs use the attack's defaults (``--max-iter`` caps each restart).

``--quick``: a smoke run at d = 768 (16×16×3 images), two pairs, a few
iterations, the recovery parts on the same small size.

    python benchmarks/bench_large.py [--quick] [--skip-recovery] [--skip-authors]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, memory_line  # noqa: E402

ROOFLINE_TARGET = 0.70
BATCH = 4
BATCH_TARGET = 1.5
ERROR = 0.05
RECOVERY_SECONDS = 600.0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="image side: d = 3·size² (default 32: d = 3072)")
    ap.add_argument("--ratio", type=float, default=2.0, help="p/(dn) of checks 1–3 (default 2)")
    ap.add_argument("--pairs", type=int, default=7, help="roofline sample + iterations pairs (default 7)")
    ap.add_argument("--iterations", type=int, default=20, help="timed L-BFGS iterations per pair (default 20)")
    ap.add_argument("--reads", type=int, default=5, help="timed reads of V per roofline sample (best of)")
    ap.add_argument("--authors-p", type=int, default=100_000)
    ap.add_argument("--authors-limit", type=float, default=1800.0,
                    help="seconds after which the authors' configuration run is stopped (default 1800)")
    ap.add_argument("--max-iter", type=int, default=None,
                    help="iteration cap of each restart of the recovery runs (default: the attack's own)")
    ap.add_argument("--quick", action="store_true", help="smoke run: d = 768, 2 pairs, 5 iterations")
    ap.add_argument("--skip-recovery", action="store_true")
    ap.add_argument("--skip-authors", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.pairs, args.iterations, args.reads = 16, 2, 5, 2
        args.authors_p = min(args.authors_p, 4 * 3 * 16 * 16 * args.n)
    return args


def roofline_fraction(read_seconds: float, iteration_seconds: float) -> float:
    """(2 reads of V) / (one iteration): the share of the memory roofline an iteration reaches."""
    return 2.0 * read_seconds / iteration_seconds


def read_time(V, reads: int) -> float:
    """Best of ``reads`` timings of one full NumPy read of V (V.sum in float32)."""
    best = float("inf")
    for _ in range(max(reads, 1)):
        start = time.perf_counter()
        V.sum(dtype=np.float32)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(reads: int, size: int = 2048) -> float:
    """Best of ``reads`` timings of a size×size float32 matmul (NumPy's BLAS, all cores), in flop/s."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size), dtype=np.float32)
    B = rng.standard_normal((size, size), dtype=np.float32)
    A @ B
    best = float("inf")
    for _ in range(max(reads, 1)):
        start = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def evaluation_floor(rows: int, d: int, p: int, read_seconds: float, peak: float) -> float:
    """Least seconds of one evaluation with ``rows`` = R·n̂ rows: two reads of V, or the two products'
    4·rows·d·p flops at the measured matmul peak, whichever is longer."""
    return max(2.0 * read_seconds, 4.0 * rows * d * p / peak)


def iteration_time(model, theta, n, iterations: int) -> float:
    """Seconds per L-BFGS iteration of ``reconstruct`` (float32, one restart), steady state: the time
    between the callback stamps of the last ``iterations`` of 2·``iterations`` (the first iterations'
    line searches take several evaluations each; later ones about one).  Strategy "restarts": the
    run ends at its iteration cap (tol = 0 is never reached), with no global moves after it."""
    from rftheory.attack.reconstruct import reconstruct  # noqa: PLC0415

    stamps = []
    reconstruct(theta, model, n, restarts=1, max_iter=2 * iterations, reseed=False, tol=0.0, strategy="restarts",
                callback=lambda X, L: stamps.append(time.perf_counter()))
    tail = stamps[-(iterations + 1):]
    return (tail[-1] - tail[0]) / max(len(tail) - 1, 1)


def recover(ds, p: int, limit: float, max_iter=None, seed: int = 1000):
    """Fit a random-features model on ``ds`` and attack it with the package defaults (``max_iter`` if
    given) until every sign-aware error ≤ ERROR, or ``limit`` seconds have passed (the callback stops
    the attack): (recovered, iterations, seconds, worst error)."""
    from rftheory.attack.metrics import reconstruction_errors  # noqa: PLC0415
    from rftheory.attack.reconstruct import reconstruct  # noqa: PLC0415
    from rftheory.models.random_features import RandomFeatures  # noqa: PLC0415

    n, d = ds.X.shape
    model = RandomFeatures(p, d, "relu+tanh", seed=seed, dtype=np.float32).fit(ds.X, ds.y)
    state = {"k": 0}

    def done(X, loss):
        state["k"] += 1
        if time.perf_counter() - start > limit:
            return True
        return state["k"] % 10 == 0 and bool(np.all(reconstruction_errors(ds.X, X).sign_aware <= ERROR))

    start = time.perf_counter()
    res = reconstruct(model.theta, model, n, callback=done, **({} if max_iter is None else {"max_iter": max_iter}))
    seconds = time.perf_counter() - start
    worst = float(reconstruction_errors(ds.X, res.X_hat).sign_aware.max())
    return worst <= ERROR, res.iterations, seconds, worst


def main(argv=None) -> int:
    args = parse_args(argv)
    from rftheory.attack.loss import PreparedProjectionLoss  # noqa: PLC0415
    from rftheory.attack.reconstruct import random_sphere  # noqa: PLC0415
    from rftheory.data.photos import photos  # noqa: PLC0415
    from rftheory.data.synthetic import synthetic_sphere  # noqa: PLC0415
    from rftheory.models.random_features import RandomFeatures, features_for_ratio  # noqa: PLC0415

    print(machine_line())
    print(memory_line())
    n, d = args.n, 3 * args.size**2
    p = features_for_ratio(args.ratio, d, n)
    ds = synthetic_sphere(n, d, seed=0)
    model = RandomFeatures(p, d, "relu+tanh", seed=1, dtype=np.float32).fit(ds.X, ds.y)
    theta = model.theta
    print(f"problem: n={n}, d={d}, p={p} (p/(dn)={args.ratio:g}); V float32 {model._V.nbytes / 1e9:.2f} GB")
    ok = True

    # 1. per iteration against the memory roofline
    iteration_time(model, theta, n, 2)  # compilation, packing
    fractions, times = [], []
    for k in range(args.pairs):
        t_read = read_time(model._V, args.reads)
        t_it = iteration_time(model, theta, n, args.iterations)
        fractions.append(roofline_fraction(t_read, t_it))
        times.append(t_it)
        print(f"  pair {k + 1}: read {t_read * 1e3:6.1f} ms ({model._V.nbytes / t_read / 1e9:5.1f} GB/s), roofline "
              f"{2 * t_read * 1e3:6.1f} ms, iteration {t_it * 1e3:6.1f} ms = {fractions[-1]:.0%}")
    frac = statistics.median(fractions)
    good = frac >= ROOFLINE_TARGET
    ok &= good
    print(f"per iteration: median {statistics.median(times) * 1e3:.1f} ms = {frac:.0%} of the roofline "
          f"(range {min(fractions):.0%}–{max(fractions):.0%}); target ≥ {ROOFLINE_TARGET:.0%} -> "
          f"{'PASS' if good else 'FAIL'}")

    # 2. batched restarts share the reads of V
    loss = PreparedProjectionLoss(theta, model, tangent=True)
    one = random_sphere(n, d, np.random.default_rng(1)).astype(np.float32)
    stack = np.stack([random_sphere(n, d, np.random.default_rng(k)) for k in range(BATCH)]).astype(np.float32)
    loss(one), loss(stack)
    ratios, ones, floors = [], [], []
    for _ in range(max(args.pairs, 3)):
        t_read, peak = read_time(model._V, args.reads), matmul_peak(args.reads)
        floors.append((evaluation_floor(BATCH * n, d, p, t_read, peak) / evaluation_floor(n, d, p, t_read, peak),
                       peak, evaluation_floor(BATCH * n, d, p, t_read, peak)))
        start = time.perf_counter()
        loss(one)
        t1 = time.perf_counter() - start
        start = time.perf_counter()
        loss(stack)
        ratios.append((time.perf_counter() - start) / t1)
        ones.append(t1)
    ratio = statistics.median(ratios)
    good = ratio <= BATCH_TARGET
    ok &= good
    print(f"batched restarts: {BATCH} restarts cost {ratio:.2f}× one per evaluation (median of {len(ratios)}; "
          f"range {min(ratios):.2f}–{max(ratios):.2f}; one restart {statistics.median(ones) * 1e3:.1f} ms); "
          f"target ≤ {BATCH_TARGET}× -> {'PASS' if good else 'FAIL'}")
    floor, peak, floor_batch = (statistics.median(f[i] for f in floors) for i in range(3))
    print(f"  compute floor: matmul peak {peak / 1e9:.0f} GFLOP/s (2048² float32, all cores); {BATCH} restarts need "
          f"≥ {floor_batch * 1e3:.0f} ms per evaluation = {floor:.2f}× the floor of one (max of 2 reads of V and "
          f"its products at that peak): {BATCH_TARGET}× is {'within' if floor <= BATCH_TARGET else 'beyond'} "
          f"what this machine can do")
    del loss, model

    # 3. recovery of 8 photographs at p = 2dn
    if not args.skip_recovery:
        ds = photos(8, size=args.size)
        p8 = features_for_ratio(args.ratio, d, 8)
        rec, its, secs, worst = recover(ds, p8, RECOVERY_SECONDS, args.max_iter)
        good = rec and secs < RECOVERY_SECONDS
        ok &= good
        print(f"recovery of 8 photographs ({args.size}×{args.size}×3, p={p8}): {its} iterations, {secs:.1f} s, "
              f"worst sign-aware error {worst:.3f}; target all ≤ {ERROR} in < {RECOVERY_SECONDS:.0f} s -> "
              f"{'PASS' if good else 'FAIL'}")

    # 4. the authors' configuration
    if not args.skip_authors:
        ds = photos(n, size=args.size)
        rec, its, secs, worst = recover(ds, args.authors_p, args.authors_limit, args.max_iter)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
        print(f"authors' configuration n={n}, d={d}, p={args.authors_p}: {'recovered' if rec else 'NOT recovered'} "
              f"(worst sign-aware error {worst:.3f}) in {its} iterations, {secs:.1f} s; peak memory {peak:.2f} GiB")
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
