"""``rftheory law``: the phase diagram of the law of data reconstruction.

Sweeps p/(dn) over a grid of (activation, n, d, seed), attacks every trained
RF model, writes a tidy CSV (resumable), prints success rates and the
estimated critical ratio with a bootstrap interval, and optionally plots.
"""
from __future__ import annotations

import argparse
import math
import os
import time

from ..experiments.law import (
    DEFAULT_ACTIVATIONS,
    DEFAULT_RATIOS,
    DEFAULT_SEEDS,
    DEFAULT_SIZES,
    critical_ratio,
    make_grid,
    summarize,
    sweep,
)
from ..data.synthetic import synthetic_sphere
from ..attack.metrics import DEFAULT_THRESHOLD, chance_levels
from ._types import add_attack_options, attack_options, positive_below, positive_float, positive_int

HELP = "phase diagram: reconstruction success vs p/(dn), critical ratio with bootstrap interval"


def size_pair(text: str) -> tuple[int, int]:
    try:
        n, d = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NxD such as 4x8, got {text!r}") from None
    if n < 1 or d < 1:
        raise argparse.ArgumentTypeError(f"expected positive NxD, got {text!r}")
    return n, d


def seed_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


level_value = positive_below(1.0, "a level in (0, 1)")


def add_parser(sub):
    p = sub.add_parser(
        "law",
        help=HELP,
        description=(
            "Measure the law of data reconstruction as a phase diagram. For every cell "
            "(activation σ, n, d, ratio r = p/(dn), seed): draw n samples uniform on the √d-sphere "
            "with linear labels (seed), train the RF model σ(Vx)ᵀθ with p = round(r·d·n) features "
            "(V seed = seed+1000) as the min-norm interpolator, attack θ with random restarts, and "
            "match the reconstruction to the data. A cell succeeds when every sample is recovered "
            "(sign-aware relative error ≤ --threshold), never judged by the loss: for n ≤ p ≲ dn "
            "wrong reconstructions reach loss 0. Cells with p < n cannot be trained and count as "
            "failures. Rows go to --out as soon as each cell finishes (Ctrl-C keeps them; the same "
            "command resumes, running only the missing cells). Prints success rates, the median "
            "error and the critical ratio r_c where success becomes likely, with a bootstrap "
            "interval over seeds. The default grid is relu+tanh, (n,d) = 4x8 5x9 6x10, 12 ratios "
            "and 4 seeds: 144 cells."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("grid")
    g.add_argument("--activation", nargs="+", default=list(DEFAULT_ACTIVATIONS), metavar="σ",
                   help="activation(s) σ, e.g. relu+tanh tanh relu, or sums such as '0.5*relu+tanh'")
    g.add_argument("--sizes", nargs="+", type=size_pair, default=[f"{n}x{d}" for n, d in DEFAULT_SIZES],
                   metavar="NxD", help="(n, d) pairs: n training samples of dimension d")
    g.add_argument("--n", nargs="+", type=positive_int, default=None, metavar="N",
                   help="sample counts; with --d sweeps the product n × d instead of --sizes")
    g.add_argument("--d", nargs="+", type=positive_int, default=None, metavar="D",
                   help="input dimensions; with --n sweeps the product n × d instead of --sizes")
    g.add_argument("--ratios", nargs="+", type=positive_float, default=list(DEFAULT_RATIOS), metavar="R",
                   help="values of p/(dn); p = round(R·d·n), R < 1/d gives p < n (no interpolation)")
    g.add_argument("--seeds", nargs="+", type=seed_value, default=list(DEFAULT_SEEDS), metavar="S",
                   help="seeds: seed S draws the data (S), V (S+1000) and the attack's initialisations (S)")
    a = p.add_argument_group("attack (per cell: rftheory.attack.options.AttackOptions, seeded by the cell's seed; "
                             "the defaults of rftheory reconstruct)")
    add_attack_options(a)
    a.add_argument("--threshold", type=positive_float, default=DEFAULT_THRESHOLD,
                   help="a sample is recovered when its sign-aware relative error is at most this; "
                        "a cell succeeds when all its samples are")
    a.add_argument("--noise", type=float, default=0.1, help="label noise of the synthetic data")
    e = p.add_argument_group("execution and output")
    e.add_argument("--out", default="rftheory_law.csv", metavar="FILE.csv",
                   help="tidy results table (one row per cell, full configuration and package version); "
                        "cells already in it are skipped, so rerunning resumes; also FILE.parquet if "
                        "pyarrow is installed")
    e.add_argument("--fresh", action="store_true", help="delete --out first instead of resuming from it")
    e.add_argument("--plot", default=None, metavar="FILE.png",
                   help="write the phase-diagram figure (.png, .svg or .pdf)")
    e.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes (default: all CPUs, here "
                        f"{os.cpu_count() or 1}); 1 runs serially in this process")
    e.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the cells on a Dask distributed cluster, e.g. tcp://host:8786 "
                        "(needs dask.distributed, and rftheory installed on the workers); overrides --workers")
    e.add_argument("--no-progress", action="store_true", help="do not show the tqdm progress bar (shown on stderr by default)")
    c = p.add_argument_group("critical ratio")
    c.add_argument("--method", choices=("logistic", "interpolate"), default="logistic",
                   help="logistic: ML fit of P(success) = 1/(1+exp(-k(ln r - ln r_c))); interpolate: "
                        "where the success rate crosses 1/2 (linear in ln r)")
    c.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap resamples of the seeds")
    c.add_argument("--level", type=level_value, default=0.95, help="confidence level of the interval")
    c.add_argument("--boot-seed", type=seed_value, default=0, help="seed of the bootstrap resampling")
    p.set_defaults(func=run)
    return p


def _fmt_rate(v):
    return "   -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:4.2f}"


def _fmt_err(v):
    if v is None or math.isnan(v):
        return "     -"
    return f"{v:6.3f}" if v >= 0.01 else f"{v:6.0e}"


def _print_matrix(summary, ratios, key, fmt, title, extra=None):
    groups: dict = {}
    for s in summary:
        groups.setdefault((s["activation"], s["n"], s["d"]), {})[s["ratio"]] = s[key]
    width = max(len(fmt(0.0)), 5)
    print(f"  {title}")
    head = "    " + f"{'σ, n, d':<22}" + "".join(f"{r:>{width + 1}g}" for r in ratios)
    if extra is not None:
        head += f"{extra[0]:>{width + 3}}"
    print(head)
    for (act, n, d), vals in sorted(groups.items()):
        label = f"{act}, {n}, {d}"
        line = "    " + f"{label:<22}" + "".join(f"{fmt(vals.get(r)):>{width + 1}}" for r in ratios)
        if extra is not None:
            line += f"{fmt(extra[1][(n, d)]):>{width + 3}}"
        print(line)


def run(args) -> int:
    start = time.perf_counter()
    n_list, d_list = args.n, args.d
    if (n_list is None) != (d_list is None):
        raise ValueError("give both --n and --d (their product is swept), or --sizes NxD ...")
    sizes = None if n_list is not None else [s if isinstance(s, tuple) else size_pair(s) for s in args.sizes]
    options = attack_options(args)
    grid_kw = dict(
        activations=args.activation, sizes=sizes, ratios=args.ratios, seeds=args.seeds, n=n_list, d=d_list,
        attack=options, threshold=args.threshold, noise=args.noise,
    )
    cells = make_grid(**grid_kw)  # validates before anything is written
    if args.plot is not None and not args.plot.lower().endswith((".png", ".svg", ".pdf")):
        raise ValueError(f"--plot must end in .png, .svg or .pdf, got {args.plot!r}")
    if args.fresh and os.path.exists(args.out):
        os.remove(args.out)

    used_sizes = sorted({(c.n, c.d) for c in cells})
    executor = (f"Dask scheduler {args.scheduler}" if args.scheduler else
                f"{args.workers or os.cpu_count() or 1} local process(es)" if (args.workers or os.cpu_count() or 1) > 1
                else "serial")
    print("rftheory law")
    print(f"  grid        σ ∈ {{{', '.join(dict.fromkeys(c.activation for c in cells))}}}, "
          f"(n, d) ∈ {{{', '.join(f'({n},{d})' for n, d in used_sizes)}}}, "
          f"p/(dn) ∈ {{{', '.join(f'{r:g}' for r in dict.fromkeys(c.ratio for c in cells))}}}, "
          f"seeds {{{', '.join(str(s) for s in dict.fromkeys(c.seed for c in cells))}}}: {len(cells)} cells")
    per_cell = options.describe().replace(f", seed={options.seed},", ", seed=the cell's seed,")
    print(f"  attack      {per_cell}")
    print(f"  success     every sample's sign-aware error ≤ {args.threshold:g} (not the loss)")
    print(f"  output      {args.out}  ({executor})", flush=True)

    bar = {"obj": None}
    state = {"computed": 0}

    def on_start(todo, resumed):
        print(f"  cells       {todo} to run, {resumed} resumed from {args.out}", flush=True)
        if todo and not args.no_progress:
            from tqdm.auto import tqdm  # noqa: PLC0415

            import sys  # noqa: PLC0415

            tty = sys.stderr.isatty()
            bar["obj"] = tqdm(total=todo, unit="cell", desc="  sweep", dynamic_ncols=True,
                              mininterval=0.1 if tty else 15.0)

    def callback(row):
        state["computed"] += 1
        if bar["obj"] is not None:
            bar["obj"].set_postfix_str(f"last: {row['activation']} n={row['n']} d={row['d']} "
                                       f"r={row['ratio']:g} seed={row['seed']} "
                                       f"{'ok' if row['success'] else 'fail'}", refresh=False)
            bar["obj"].update(1)

    try:
        result = sweep(**grid_kw, out=args.out, workers=args.workers, scheduler=args.scheduler,
                       on_start=on_start, callback=callback)
    except KeyboardInterrupt:
        if bar["obj"] is not None:
            bar["obj"].close()
        print(f"rftheory law: interrupted; {state['computed']} new cell(s) are saved in {args.out}. "
              "Rerun the same command to run only the missing cells.")
        return 130
    finally:
        if bar["obj"] is not None:
            bar["obj"].close()

    rows = result.rows
    ratios = sorted({r["ratio"] for r in rows})
    summary = summarize(rows)
    print()
    _print_matrix(summary, ratios, "success_rate", _fmt_rate,
                  "success rate (fraction of seeds with every sample recovered); columns p/(dn)")
    chance = {}
    for n, d in used_sizes:  # random sphere points matched like a reconstruction
        X = synthetic_sphere(n, d, seed=0, noise=args.noise).X
        chance[(n, d)] = chance_levels(X, trials=50, seed=0, threshold=args.threshold)["sign_aware"]
    _print_matrix(summary, ratios, "sign_aware_mean", _fmt_err,
                  "mean sign-aware relative error ('-' = no attack, p < n); last column: chance level",
                  extra=("chance", chance))
    _print_matrix(summary, ratios, "loss_median", lambda v: "     -" if v is None or math.isnan(v) else f"{v:6.0e}",
                  "median final loss (≈ 0 also where reconstruction fails: loss is not success)")
    print()
    crs = critical_ratio(rows, method=args.method, level=args.level, n_boot=args.n_boot, seed=args.boot_seed)
    per = critical_ratio(rows, method=args.method, level=args.level, n_boot=args.n_boot, seed=args.boot_seed,
                         per_size=True) if len(used_sizes) > 1 else []
    pct = f"{args.level:.0%}"
    for cr in crs:
        where = ", ".join(f"({n},{d})" for n, d in cr.sizes)
        if math.isfinite(cr.estimate):
            interval = (f"[{cr.low:.3g}, {cr.high:.3g}]" if math.isfinite(cr.low) else "[no interval]")
            print(f"  critical p/(dn) for σ={cr.activation} (pooled over (n,d) = {where}): "
                  f"{cr.estimate:.3g}, {pct} bootstrap interval {interval}")
            print(f"      {cr.method} fit over {cr.cells} cells; {cr.n_boot_valid}/{cr.n_boot} resamples of "
                  f"{cr.seeds} seeds usable{'; ' + cr.note if cr.note else ''}")
        else:
            print(f"  critical p/(dn) for σ={cr.activation} (pooled over (n,d) = {where}): not estimated: {cr.note}")
        for cs in per:
            if cs.activation != cr.activation:
                continue
            (n, d), = cs.sizes
            if math.isfinite(cs.estimate):
                print(f"      n={n}, d={d}: {cs.estimate:.3g} [{cs.low:.3g}, {cs.high:.3g}]")
            else:
                print(f"      n={n}, d={d}: not estimated ({cs.note})")
    print("  regimes     p < n: no interpolation; n ≤ p ≲ dn: interpolation, not identifiable; "
          "p ≳ dn: reconstruction (the law predicts r_c ≈ 1 up to the attack's reach)")
    if args.plot is not None:
        from ..experiments.plots import plot_phase_diagram  # noqa: PLC0415

        plot_phase_diagram(rows, args.plot, critical=crs)
        print(f"  figure      {args.plot}")
    written = f"{args.out}" + (f" and {result.parquet}" if result.parquet else " (Parquet: pyarrow not installed)")
    print(f"  table       {len(rows)} rows ({result.computed} computed now, {result.resumed} resumed) in {written}")
    print(f"  wall time   {time.perf_counter() - start:.1f} s")
    return 0
