"""``rftheory law``: the phase diagram of the law of data reconstruction.

Sweeps p/(dn) over a grid of (activation, n, d, seed), attacks every trained
RF model, classifies every failure (optimiser or not identifiable), runs the
identifiability probe (the local optimiser from the truth rotated by fixed
angles), stores one row per cell in an SQLite store (resumable, safe for
concurrent sweeps), exports it as a tidy CSV, prints success rates and the
estimated critical ratios of the attack and of the probe with bootstrap
intervals, and optionally plots.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from ..experiments.law import (
    DEFAULT_ACTIVATIONS,
    DEFAULT_PROBE_ANGLES,
    DEFAULT_RATIOS,
    DEFAULT_SEEDS,
    DEFAULT_SIZES,
    counting_ratio,
    critical_ratio,
    is_table,
    make_grid,
    remove_sweep_files,
    summarize,
    sweep,
    span_ratio,
    sweep_paths,
)
from ..data.synthetic import synthetic_sphere
from ..attack.metrics import DEFAULT_THRESHOLD, chance_levels
from ._resources import check_output_file, check_rf_resources, require_matplotlib, same_file
from ._types import (MAX_INT, activation_spec, add_attack_options, attack_options, bounded_float, bounded_int,
                     output_count, positive_below, positive_float, positive_int, seed_int)

# Bootstrap resamples: each refits the critical ratio; the Monte Carlo error of a percentile interval
# falls like 1/√B and is negligible against the seed-to-seed spread long before 10⁵ resamples.
MAX_N_BOOT = 100_000
# Label noise: the labels are O(1) linear functions of x; a noise far above that only rescales y, and
# near 1e154 the squares of the train residual overflow.
MAX_NOISE = 1e6
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

HELP = "phase diagram: attack and identifiability-probe success vs p/(dn), critical ratios with bootstrap intervals"
CLASS_LETTERS = {"recovered": "r", "optimiser": "o", "not_identifiable": "n", "truth_not_zero": "z",
                 "no_attack": "-", "unclassified": "?"}


def size_pair(text: str) -> tuple[int, int]:
    try:
        n, d = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NxD such as 4x8, got {text!r}") from None
    if n < 1 or d < 1:
        raise argparse.ArgumentTypeError(f"expected positive NxD, got {text!r}")
    if n > MAX_INT or d > MAX_INT:
        raise argparse.ArgumentTypeError(f"expected NxD with N and D at most {MAX_INT:g}, got {text!r}")
    return n, d


seed_value = seed_int  # a seed: an integer in [0, 2^62]


level_value = positive_below(1.0, "a level in (0, 1)")
probe_angle = bounded_float(0.0, 90.0, "the angle between a start row and its true row")


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
            "failures. A failed cell is classed 'optimiser' when the attack's loss stays above --tol while "
            "the true data have loss ≤ --tol, 'not_identifiable' when the attack reaches loss ≤ --tol at a "
            "wrong reconstruction. The identifiability probe (--probe-angles) runs the attack's local "
            "optimiser alone from the truth with every row rotated by a fixed angle: its success rate "
            "estimates the identifiability threshold, the attack's success rate the attack's own. "
            "Each cell is committed to the store (an SQLite database, see --out) as soon as it "
            "finishes (Ctrl-C or a kill keeps every finished cell; the same command resumes, running only "
            "the missing cells; concurrent sweeps into one store keep all their rows). Prints success rates, "
            "the median error, the failure classes and the critical ratios r_c of the attack and of the probe, "
            "with bootstrap intervals over seeds. The default grid is relu+tanh, (n,d) = "
            f"{' '.join(f'{n}x{d}' for n, d in DEFAULT_SIZES)}, {len(DEFAULT_RATIOS)} ratios and "
            f"{len(DEFAULT_SEEDS)} seeds: {len(DEFAULT_SIZES) * len(DEFAULT_RATIOS) * len(DEFAULT_SEEDS)} cells."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("grid")
    g.add_argument("--activation", nargs="+", default=list(DEFAULT_ACTIVATIONS), metavar="σ", type=activation_spec,
                   help="activation(s) σ, e.g. relu+tanh tanh relu, or sums such as '0.5*relu+tanh'")
    g.add_argument("--sizes", nargs="+", type=size_pair, default=[f"{n}x{d}" for n, d in DEFAULT_SIZES],
                   metavar="NxD", help="(n, d) pairs: n training samples of dimension d")
    g.add_argument("--n", nargs="+", type=positive_int, default=None, metavar="N",
                   help="sample counts; with --d sweeps the product n × d instead of --sizes")
    g.add_argument("--d", nargs="+", type=positive_int, default=None, metavar="D",
                   help="input dimensions; with --n sweeps the product n × d instead of --sizes")
    g.add_argument("--outputs", nargs="+", type=output_count, default=[1], metavar="C",
                   help="numbers of outputs C swept as an axis: C independent linear label columns, Θ ∈ R^{p×C}; "
                        "counting on the sphere predicts the critical p/(dn) = 1/d + (d − 1)/(dC) "
                        "(p = n + n(d − 1)/C), from the law's 1 (C = 1) down to the span limit (n + d − 1)/(dn) "
                        "(C = n)")
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
    a.add_argument("--noise", type=bounded_float(0.0, MAX_NOISE, "labels are O(1)", strict=False), default=0.1,
                   help=f"label noise of the synthetic data (at most {MAX_NOISE:g})")
    pr = p.add_argument_group("identifiability probe (per cell, after the attack)")
    pr.add_argument("--probe-angles", nargs="*", type=probe_angle, default=list(DEFAULT_PROBE_ANGLES),
                    metavar="DEG",
                    help="angles (degrees, in (0, 90], at most two) of the identifiability probe: the attack's local "
                         "optimiser alone (one start, no re-seeding, no moves) from the true data with every row "
                         "rotated by DEG toward a random orthogonal direction; give the option with no value to "
                         "run no probe")
    e = p.add_argument_group("execution and output")
    e.add_argument("--out", default="rftheory_law.csv", metavar="FILE.csv",
                   help="results: FILE.sqlite/.sqlite3/.db is the store itself (an SQLite database, one row per "
                        "cell keyed by its configuration, each cell committed as soon as it finishes; several "
                        "sweeps may write one store at once); any other name is a CSV export whose store is "
                        "FILE.csv.sqlite beside it (or --store). Cells already in the store are skipped, so "
                        "rerunning resumes, also after a kill. The CSV export holds every row of the store (all "
                        "grids swept into it), sorted by configuration, rewritten when the sweep ends or is "
                        "interrupted; also FILE.parquet if pyarrow is installed")
    e.add_argument("--store", default=None, metavar="FILE.sqlite",
                   help="the store of a CSV --out (default: --out with .sqlite appended)")
    e.add_argument("--fresh", action="store_true",
                   help="delete the store, the CSV export and its Parquet copy first instead of resuming; only "
                        "files written by rftheory law are deleted (any other file there is an error)")
    e.add_argument("--plot", default=None, metavar="FILE.png",
                   help="write the phase-diagram figure (.png, .svg or .pdf; not the --out file)")
    e.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes, at most the CPU count (default: all CPUs, here "
                        f"{os.cpu_count() or 1}); 1 runs serially in this process; workers die with this process")
    e.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the cells on a Dask distributed cluster, e.g. tcp://host:8786 "
                        "(needs dask.distributed, and rftheory installed on the workers); overrides --workers")
    e.add_argument("--no-progress", action="store_true", help="do not show the tqdm progress bar (shown on stderr by default)")
    c = p.add_argument_group("critical ratio")
    c.add_argument("--method", choices=("logistic", "interpolate"), default="logistic",
                   help="logistic: ML fit of P(success) = 1/(1+exp(-k(ln r - ln r_c))); interpolate: "
                        "where the success rate crosses 1/2 (linear in ln r)")
    c.add_argument("--n-boot", type=bounded_int(1, MAX_N_BOOT, "each resample refits the critical ratio"),
                   default=1000, help=f"bootstrap resamples of the seeds (at most {MAX_N_BOOT})")
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


def _fmt_classes(v):
    """Counts of the failure classes as letters, e.g. ``2r1o1n``."""
    if not v:
        return "-"
    return "".join(f"{count}{CLASS_LETTERS[name]}" for name, count in v.items() if name != "no_attack") or "-"


def _print_matrix(summary, ratios, key, fmt, title, extra=None):
    groups: dict = {}
    for s in summary:
        groups.setdefault((s["activation"], s["n"], s["d"], s["outputs"]), {})[s["ratio"]] = s.get(key)
    width = max([len(fmt(0.0)), 5] + [len(fmt(v)) for g in groups.values() for v in g.values()])
    print(f"  {title}")
    head = "    " + f"{'σ, n, d, C':<22}" + "".join(f"{r:>{width + 1}g}" for r in ratios)
    if extra is not None:
        head += f"{extra[0]:>{width + 3}}"
    print(head)
    for (act, n, d, C), vals in sorted(groups.items()):
        label = f"{act}, {n}, {d}, {C}"
        line = "    " + f"{label:<22}" + "".join(f"{fmt(vals.get(r)):>{width + 1}}" for r in ratios)
        if extra is not None:
            line += f"{fmt(extra[1][(n, d)]):>{width + 3}}"
        print(line)


def _check_resources(args, cells, options) -> None:
    """Cap --workers at the CPU count (a notice on stderr) and refuse a grid whose largest cell, once
    per worker running at the same time, exceeds the available memory or a pass bound."""
    cpus = os.cpu_count() or 1
    if args.workers is not None and args.workers > cpus and args.scheduler is None:
        print(f"rftheory law: notice: --workers {args.workers} capped at {cpus}, the number of CPUs",
              file=sys.stderr)
        args.workers = cpus
    for c in cells:
        if not c.ratio * c.d * c.n <= MAX_INT:
            raise ValueError(f"--ratios {c.ratio:g} with (n, d) = ({c.n}, {c.d}) gives p = {c.ratio * c.d * c.n:.3g} "
                             "features, beyond any memory; use smaller --ratios or --sizes")
    largest = max(cells, key=lambda c: (c.p * c.d + c.n * c.p + c.n * c.n, c.n))
    copies = 1 if args.scheduler is not None else min(args.workers or cpus, len(cells))
    check_rf_resources(largest.n, largest.d, largest.p, copies=copies,
                       what=f"the largest cell (n={largest.n}, d={largest.d}, p={largest.p})"
                            + (f" on {copies} workers at once" if copies > 1 else ""),
                       attack_itemsize=4 if options.dtype == "float32" else 8, restarts=options.restarts,
                       batch_restarts=options.batch_restarts, size_options="--sizes/--n/--d, --ratios or --workers")


def _check_outputs(args):
    """The store and CSV export of --out/--store, checked before any cell runs: writable, of the right
    kind, files of this package (unless --fresh, which checks that itself), and --plot another file."""
    from ..experiments.store import is_store, looks_like_sqlite  # noqa: PLC0415

    check_output_file(args.out, "--out", create_folder=True)
    if args.store is not None:
        check_output_file(args.store, "--store", create_folder=True)
    store_path, export = sweep_paths(args.out, args.store)
    if export is not None:
        check_output_file(store_path, "--store", create_folder=True)
    if not args.fresh:
        if export is not None and export.is_file() and export.stat().st_size and not is_table(export):
            raise ValueError(f"--out {args.out}: the file exists and is not a sweep table written by rftheory law; "
                             "choose another file (it was left untouched)")
        if store_path.is_file() and store_path.stat().st_size and not (looks_like_sqlite(store_path)
                                                                       and is_store(store_path)):
            option = "--out" if export is None else "--store"
            raise ValueError(f"{option} {store_path}: the file exists and is not a sweep store written by rftheory "
                             "law; choose another file (it was left untouched)")
    if args.plot is not None:
        if not str(args.plot).lower().endswith(PLOT_SUFFIXES):
            raise ValueError(f"--plot must end in .png, .svg or .pdf, got {args.plot!r}")
        ours = [store_path] + ([export, export.with_suffix(".parquet")] if export is not None else [])
        for path in ours:
            if same_file(args.plot, path):
                raise ValueError(f"--plot {args.plot} is the same file as the table {path}; give the figure "
                                 "another name")
        check_output_file(args.plot, "--plot", create_folder=True)
        require_matplotlib()
    return Path(store_path), export


def run(args) -> int:
    start = time.perf_counter()
    n_list, d_list = args.n, args.d
    if (n_list is None) != (d_list is None):
        raise ValueError("give both --n and --d (their product is swept), or --sizes NxD ...")
    sizes = None if n_list is not None else [s if isinstance(s, tuple) else size_pair(s) for s in args.sizes]
    options = attack_options(args)
    grid_kw = dict(
        activations=args.activation, sizes=sizes, ratios=args.ratios, seeds=args.seeds, n=n_list, d=d_list,
        attack=options, threshold=args.threshold, noise=args.noise, outputs=args.outputs,
        probe_angles=tuple(args.probe_angles),
    )
    cells = make_grid(**grid_kw)  # validates before anything is written
    _check_resources(args, cells, options)
    store_path, export = _check_outputs(args)
    if args.fresh:
        remove_sweep_files(args.out, args.store)

    used_sizes = sorted({(c.n, c.d) for c in cells})
    executor = (f"Dask scheduler {args.scheduler}" if args.scheduler else
                f"{args.workers or os.cpu_count() or 1} local process(es)" if (args.workers or os.cpu_count() or 1) > 1
                else "serial")
    print("rftheory law")
    print(f"  grid        σ ∈ {{{', '.join(dict.fromkeys(c.activation for c in cells))}}}, "
          f"(n, d) ∈ {{{', '.join(f'({n},{d})' for n, d in used_sizes)}}}, "
          f"C ∈ {{{', '.join(str(o) for o in dict.fromkeys(c.outputs for c in cells))}}}, "
          f"p/(dn) ∈ {{{', '.join(f'{r:g}' for r in dict.fromkeys(c.ratio for c in cells))}}}, "
          f"seeds {{{', '.join(str(s) for s in dict.fromkeys(c.seed for c in cells))}}}: {len(cells)} cells")
    per_cell = options.describe().replace(f", seed={options.seed},", ", seed=the cell's seed,")
    print(f"  attack      {per_cell}")
    print(f"  success     every sample's sign-aware error ≤ {args.threshold:g} (not the loss)")
    angles = cells[0].probe_angles
    if angles:
        print(f"  probe       the attack's local optimiser alone (restarts=1, strategy=restarts, no reseed) from the "
              f"truth rotated by {', '.join(f'{a:g}°' for a in angles)} per row")
    else:
        print("  probe       none")
    where = f"{export} (store {store_path})" if export is not None else f"store {store_path}"
    print(f"  output      {where}  ({executor})", flush=True)

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
        result = sweep(**grid_kw, out=args.out, store=args.store, workers=args.workers, scheduler=args.scheduler,
                       on_start=on_start, callback=callback)
    except KeyboardInterrupt:
        if bar["obj"] is not None:
            bar["obj"].close()
        print(f"rftheory law: interrupted; {state['computed']} new cell(s) are saved in {store_path}. "
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
                  "attack: success rate (fraction of seeds with every sample recovered); columns p/(dn)")
    print("  classes     r recovered; o optimiser: loss > tol while the truth's loss ≤ tol; n not identifiable: "
          "loss ≤ tol at a wrong X̂; z the truth's loss > tol; - no attack (p < n)")
    _print_matrix(summary, ratios, "classes", _fmt_classes, "attack: cells per class")
    for k, angle in enumerate(angles, start=1):
        _print_matrix(summary, ratios, f"probe{k}_classes", _fmt_classes,
                      f"probe {angle:g}° (local optimiser from the truth rotated by {angle:g}°): cells per class")
    chance = {}
    for n, d in used_sizes:  # random sphere points matched like a reconstruction
        X = synthetic_sphere(n, d, seed=0, noise=args.noise).X
        chance[(n, d)] = chance_levels(X, trials=50, seed=0, threshold=args.threshold)["sign_aware"]
    _print_matrix(summary, ratios, "sign_aware_mean", _fmt_err,
                  "attack: mean sign-aware relative error ('-' = no attack, p < n); last column: chance level",
                  extra=("chance", chance))
    _print_matrix(summary, ratios, "loss_median", lambda v: "     -" if v is None or math.isnan(v) else f"{v:6.0e}",
                  "attack: median final loss (≈ 0 also where reconstruction fails: loss is not success)")
    bad = [r for r in rows if r["failure_class"] == "truth_not_zero"]
    if bad:
        worst = max(bad, key=lambda r: r["true_loss"] if not math.isnan(r["true_loss"]) else math.inf)
        print(f"  WARNING     {len(bad)} cell(s) where the true data's loss L(X) exceeds --tol (largest "
              f"{worst['true_loss']:.2e} at n={worst['n']}, d={worst['d']}, p/(dn)={worst['ratio']:g}): "
              "the min-norm interpolator puts θ in the span of the true features, so L(X) should be ≈ 0; "
              "their failures are not classed (class z). Check the Gram conditioning or raise --tol.")
    print()
    outcomes = ["attack"] + [f"probe{k}" for k in range(1, len(angles) + 1)]
    fits = {o: critical_ratio(rows, method=args.method, level=args.level, n_boot=args.n_boot, seed=args.boot_seed,
                              outcome=o) for o in outcomes}
    per = {o: critical_ratio(rows, method=args.method, level=args.level, n_boot=args.n_boot, seed=args.boot_seed,
                             per_size=True, outcome=o) if len(used_sizes) > 1 else [] for o in outcomes}
    pct = f"{args.level:.0%}"
    crs = fits["attack"]
    for cr in crs:
        where = ", ".join(f"({n},{d})" for n, d in cr.sizes)
        counting = ", ".join(f"{counting_ratio(d, cr.outputs):.3g}" for n, d in cr.sizes)
        span = ", ".join(f"{span_ratio(n, d):.3g}" for n, d in cr.sizes)
        print(f"  critical p/(dn) for σ={cr.activation}, C={cr.outputs} (pooled over (n,d) = {where}):")
        for o in outcomes:
            for c in fits[o]:
                if c.activation != cr.activation or c.outputs != cr.outputs:
                    continue
                name = f"{c.label:<10}"
                if math.isfinite(c.estimate):
                    interval = (f"[{c.low:.3g}, {c.high:.3g}]" if math.isfinite(c.low) else "[no interval]")
                    print(f"      {name} {c.estimate:.3g}, {pct} bootstrap interval {interval}")
                    print(f"      {'':<10} {c.method} fit over {c.cells} cells; {c.n_boot_valid}/{c.n_boot} "
                          f"resamples of {c.seeds} seeds usable{'; ' + c.note if c.note else ''}")
                else:
                    print(f"      {name} not estimated: {c.note}")
                for cs in per[o]:
                    if cs.activation != c.activation or cs.outputs != c.outputs or not (
                            cs.angle == c.angle or o == "attack"):
                        continue
                    (n, d), = cs.sizes
                    if math.isfinite(cs.estimate):
                        print(f"      {'':<10}   n={n}, d={d}: {cs.estimate:.3g} [{cs.low:.3g}, {cs.high:.3g}]")
                    else:
                        print(f"      {'':<10}   n={n}, d={d}: not estimated ({cs.note})")
        print(f"      counting on the sphere: 1/d + (d − 1)/(dC) = {counting} (p = n + n(d − 1)/C); "
              f"span limit (n + d − 1)/(dn) = {span}")
    print("  regimes     p < n: no interpolation; n ≤ p ≲ dn: interpolation, not identifiable; "
          "p ≳ dn: reconstruction (counting on the sphere predicts r_c ≈ 1: wrong X̂ up to p = nd; "
          "the probe estimates the identifiability threshold, the attack its own)")
    if len({c.outputs for c in cells}) > 1 or cells[0].outputs > 1:
        print("  outputs     with C outputs θ identifiability needs C(p − n) > n(d − 1), i.e. "
              "p/(dn) > 1/d + (d − 1)/(dC); span identifiability needs p ≥ n + d whatever C (inputs on the sphere)")
    if args.plot is not None:
        from ..experiments.plots import plot_phase_diagram  # noqa: PLC0415

        plot_phase_diagram(rows, args.plot, critical=[c for o in outcomes for c in fits[o]])
        print(f"  figure      {args.plot}")
    if export is not None:
        written = f"{export}" + (f" and {result.parquet}" if result.parquet else " (Parquet: pyarrow not installed)")
        print(f"  table       {len(rows)} rows of this grid ({result.computed} computed now, {result.resumed} "
              f"resumed) in store {store_path}; exported with the store's other rows to {written}")
    else:
        print(f"  table       {len(rows)} rows of this grid ({result.computed} computed now, {result.resumed} "
              f"resumed) in store {store_path}")
    print(f"  wall time   {time.perf_counter() - start:.1f} s")
    return 0
