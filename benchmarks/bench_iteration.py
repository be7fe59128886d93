"""Seconds per loss/gradient evaluation and per L-BFGS iteration, achieved
GFLOP/s, and the fraction of this machine's measured matmul throughput.

Problem: synthetic n=20, d=100, p=20000, relu+tanh.  One
evaluation does the two n×d×p products (4ndp flops) plus the Gram and the
two matrix–vector products with θ (2n²p + 4np); the figure counts 4ndp + 2n²p.

float32 (the attack's default) is measured on both code paths of
rftheory.attack.loss: the fused packed-panel kernels (rftheory._engine, the
default where Numba is installed) and the BLAS path (NumPy/OpenBLAS, the
fallback), each with the thread set-up the loss gives itself (panel: its
own threads, as many as the BLAS limit, with BLAS pinned to one thread
during each evaluation so that no OpenBLAS thread spins beside them; BLAS
path: OpenBLAS's threads).  Because a shared virtual
machine's speed drifts by tens of per cent from one second to the next,
each of ``--rounds`` rounds measures the sgemm peak (2048×2048, all cores)
and then the evaluations (table of figures).

The verdict is on whole iterations of the attack: 100 L-BFGS iterations of
``reconstruct`` (float32, its evaluations and the optimiser's own work
included; time per iteration from callback time stamps, after a warm-up
run). ``--pairs`` times, an sgemm peak sample (0.3 s) is taken right
before such a run, and the fraction (iteration GFLOP/s) / (that sample's
peak) is recorded: peak and iteration see the machine in the same second.
The verdict uses the median fraction over the pairs (its quartiles are
printed too).

    python benchmarks/bench_iteration.py [--n 20 --d 100 --p 20000 --rounds 3 --pairs 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, machine_line, matmul_sampler  # noqa: E402

from rftheory._engine import kernels  # noqa: E402
from rftheory.data.synthetic import synthetic_sphere  # noqa: E402
from rftheory.attack.loss import projection_loss  # noqa: E402
from rftheory._engine.panel_loss import panel_coefficients  # noqa: E402
from rftheory._engine.threads import blas_limit  # noqa: E402
from rftheory.models.random_features import RandomFeatures  # noqa: E402
from rftheory.attack.reconstruct import random_sphere, reconstruct  # noqa: E402

TARGET = 0.5
BATCH = 3  # batched restarts: R·n rows share the passes over V


def _with_panel(enabled: bool, fn):
    saved = kernels.NUMBA_DEFAULT["panel"]
    kernels.NUMBA_DEFAULT["panel"] = enabled
    try:
        return fn()
    finally:
        kernels.NUMBA_DEFAULT["panel"] = saved


def _iteration_time(model, theta, n, dtype, warm_up: bool = True) -> tuple[float, float]:
    """(seconds per L-BFGS iteration, evaluations per iteration) over 100 iterations of ``reconstruct``.

    Steady state: the time from the first iteration's end to the last's
    (callback time stamps) over the iterations between, so the call's
    one-off set-up (casting, packing, the initial evaluation) is not spread
    over them.
    """
    # plain L-BFGS iterations: no re-seeding and no birth-death moves (their leave-one-out and
    # n̂ + 1-row evaluations are another workload)
    kw = dict(restarts=1, max_iter=100, reseed=False, tol=0.0, dtype=dtype, strategy="restarts")
    if warm_up:
        reconstruct(theta, model, n, **kw)  # compilation, packing
    stamps = []
    res = reconstruct(theta, model, n, callback=lambda X, L: stamps.append(time.perf_counter()), **kw)
    its = max(res.iterations, 1)
    return (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1), res.evaluations / its


def _min_time(fn, calls: int = 100) -> float:
    fn()
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _breakdown(model, X, theta) -> None:
    """Single-thread parts of one panel evaluation (fastest of 100 calls each)."""
    from rftheory._engine import panel, panel_loss  # noqa: PLC0415

    n, d = X.shape
    P = panel_loss.packed_panels(model)
    blocks = P.shape[0]
    theta = panel_loss.padded_theta(theta, P)  # pass 1 reads θ over whole panels
    ws = panel_loss._workspace(P, theta, (1, n, d), *model.activation.relu_tanh, False)
    panel_loss._prepare(X, ws)  # X̂ packed into ws.Xt
    ws.alpha[...] = np.random.default_rng(0).standard_normal((1, n))
    pieces = range(ws.bounds.size - 1)
    G8 = panel.aligned_zeros((ws.F.shape[0], P.shape[1], panel.VECTOR))

    def each_piece(step, *args):
        return lambda: [step(ws, k, *args) for k in pieces]

    parts = {
        "pass 1 (X̂Vᵀ, σ, σ', v, Gram)": each_piece(panel_loss._features_pass),
        "  of which the X̂Vᵀ kernel": lambda: panel._forward_blocks(ws.Xt, P, ws.F, 0, blocks),
        "pass 2 (r, W, WV)": each_piece(panel_loss._residual_pass, True),
        "  of which the WV kernel": lambda: panel._backward_blocks(ws.F, P, G8, 0, blocks, 0),
        "  of which r alone": each_piece(panel_loss._residual_pass, False),
    }
    with threadpool_limits(limits=1, user_api="blas"):  # the engine follows: one thread
        whole = _min_time(lambda: projection_loss(X, theta, model))
        times = {k: _min_time(f) for k, f in parts.items()}
    print(f"\nsingle-thread breakdown of one panel evaluation (fastest of 100 calls): whole {whole * 1e3:.2f} ms")
    for k, t in times.items():
        print(f"  {k:32s} {t * 1e3:6.2f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--p", type=int, default=20000)
    ap.add_argument("--activation", default="relu+tanh")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved peak/evaluation rounds (default 3)")
    ap.add_argument("--pairs", type=int, default=15,
                    help="peak sample + attack run pairs behind the per-iteration verdict (default 15)")
    args = ap.parse_args(argv)
    n, d, p = args.n, args.d, args.p
    print(machine_line())
    ds = synthetic_sphere(n, d, seed=0)
    model = RandomFeatures(p, d, args.activation, seed=1000).fit(ds.X, ds.y)
    X_hat = random_sphere(n, d, np.random.default_rng(1))
    stack = np.stack([random_sphere(n, d, np.random.default_rng(k)) for k in range(BATCH)])
    flops = 4 * n * d * p + 2 * n * n * p
    work32, work64 = model.astype(np.float32), model.astype(np.float64)
    X32, X64, S32 = X_hat.astype(np.float32), X_hat.astype(np.float64), stack.astype(np.float32)
    has_panel = panel_coefficients(work32) is not None
    print(f"problem: n={n}, d={d}, p={p}, {args.activation}; {flops / 1e6:.0f} MFLOP per evaluation; "
          f"panel kernels: {'yes' if has_panel else 'no (Numba missing or activation not a·relu+b·tanh)'}; "
          f"threads: {blas_limit()}")

    cases = {  # name -> (callable, flops per call)
        "float32 panel": (lambda: projection_loss(X32, model.theta, work32), flops),
        "float32 BLAS": (lambda: _with_panel(False, lambda: projection_loss(X32, model.theta, work32)), flops),
        f"float32 panel, {BATCH} restarts batched": (lambda: projection_loss(S32, model.theta, work32), BATCH * flops),
        f"float32 BLAS, {BATCH} restarts batched":
            (lambda: _with_panel(False, lambda: projection_loss(S32, model.theta, work32)), BATCH * flops),
        "float64 BLAS": (lambda: projection_loss(X64, model.theta, work64), flops),
    }
    if not has_panel:
        cases = {k: v for k, v in cases.items() if "panel" not in k}
    samplers = {name: matmul_sampler(np.dtype(name)) for name in ("float32", "float64")}
    times = {k: [] for k in cases}
    fractions = {k: [] for k in cases}
    peaks = {name: [] for name in samplers}
    _iteration_time(work32, model.theta, n, np.float32)  # compile and pack before the rounds
    for r in range(args.rounds):
        for name, sample in samplers.items():
            peaks[name].append(sample())
        for name, (fn, fl) in cases.items():
            t = best_time(fn)  # each path sets its threads itself, per evaluation
            times[name].append(t)
            fractions[name].append(fl / t / 1e9 / peaks[name.split()[0]][-1])
        print(f"round {r + 1}: sgemm peak {peaks['float32'][-1]:6.1f} GFLOP/s; "
              + "; ".join(f"{k} {times[k][-1] * 1e3:.2f} ms = {fractions[k][-1]:.1%}" for k in times))

    print("\nper evaluation, medians over rounds (fraction = evaluation GFLOP/s / same round's matmul peak):")
    print(f"  matmul peak: float32 {statistics.median(peaks['float32']):.1f} GFLOP/s "
          f"(range {min(peaks['float32']):.0f}–{max(peaks['float32']):.0f}), float64 {statistics.median(peaks['float64']):.1f}")
    for name, (_, fl) in cases.items():
        t = statistics.median(times[name])
        print(f"  {name:38s} {t * 1e3:7.2f} ms = {fl / t / 1e9:6.1f} GFLOP/s = "
              f"{statistics.median(fractions[name]):5.1%} of peak (rounds {min(fractions[name]):.1%}–{max(fractions[name]):.1%}; "
              f"fastest round {min(times[name]) * 1e3:.2f} ms)")
    for label, work, enabled in (("float32 BLAS path", work32, False), ("float64", work64, True)):
        # the model already in the attack's dtype: steady state (no per-call cast and packing of V)
        t_iter, evals = _with_panel(enabled and kernels.NUMBA_DEFAULT["panel"],
                                    lambda work=work: _iteration_time(work, model.theta, n, work.dtype))
        print(f"  L-BFGS iteration, {label:24s} {t_iter * 1e3:7.2f} ms ({evals:.2f} evaluations/iteration)")
    if has_panel:
        _breakdown(work32, X32, model.theta)

    # the verdict: whole iterations of the attack, each run right after its own peak sample
    print(f"\nper L-BFGS iteration of the attack (float32, {args.pairs} pairs: sgemm peak sample, then 100 "
          f"iterations after a warm-up run):")
    pair_fractions, pair_times = [], []
    for k in range(args.pairs):
        peak = samplers["float32"](repeat=1, min_time=0.3)
        t_iter, evals = _iteration_time(work32, model.theta, n, np.float32)
        pair_times.append(t_iter)
        pair_fractions.append(evals * flops / t_iter / 1e9 / peak)
        print(f"  pair {k + 1:2d}: peak {peak:6.1f} GFLOP/s, {t_iter * 1e3:5.2f} ms per iteration "
              f"({evals:.2f} evaluations) = {evals * flops / t_iter / 1e9:6.1f} GFLOP/s = {pair_fractions[-1]:.1%}")
    q1, frac_iter, q3 = statistics.quantiles(pair_fractions, n=4) if args.pairs > 1 else [pair_fractions[0]] * 3
    key = "float32 panel" if has_panel else "float32 BLAS"
    print(f"per evaluation (float32, the attack's default path '{key}'): {statistics.median(fractions[key]):.1%} "
          f"of matmul peak (median over rounds)")
    print(f"per iteration: median {statistics.median(pair_times) * 1e3:.2f} ms; fraction of peak: median "
          f"{frac_iter:.1%}, quartiles {q1:.1%}–{q3:.1%}, range {min(pair_fractions):.1%}–{max(pair_fractions):.1%}")
    ok = frac_iter >= TARGET
    print(f"target: ≥ {TARGET:.0%} of matmul peak per L-BFGS iteration (float32, the attack's default path; median "
          f"over pairs) -> {'PASS' if ok else 'FAIL'} ({frac_iter:.1%})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
