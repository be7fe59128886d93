"""``rftheory signs ACTIVATION``: sign-ambiguity prediction and measurement side by side.

Three modes:

* ``rftheory signs relu`` — the Hermite-parity prediction for one activation
  next to the measured flip differences ‖P⊥_{[1,V]}(φ(x) ∓ φ(−x))‖/‖φ(x)‖,
  the loss of the true set with k samples flipped, and the loss barrier along
  the great circle x_i → −x_i (optionally plotted with ``--plot FILE.png``).
* ``rftheory signs all`` — predicted and measured verdicts for every
  registered activation.
* ``rftheory signs --compare`` — the reconstruction attack on the same data
  and the same V for relu, relu+tanh and tanh (``--activations`` to change),
  with signed, sign-aware and entrywise-abs errors and wrong-sign counts.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ..models.activations import known_activations
from ._resources import check_output_file, check_rf_resources, require_matplotlib
from ._types import MAX_RESTARTS, add_feature_count_options, bounded_int, feature_count
from ._types import nonneg_float as _nonneg_float
from ._types import positive_float as _positive_float
from ._types import positive_int as _positive_int
from ._types import seed_int as _seed

MAX_ORDER = 1000  # as rftheory hermite: one quadrature per order
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
# the comparison options and their defaults (unset: the option was not given, which --compare needs to know)
COMPARE_DEFAULTS = dict(activations="relu,relu+tanh,tanh", repeat=1, restarts=3, max_iter=2000, attack_tol=1e-10,
                        threshold=0.05)

__all__ = ["add_parser", "run"]

HELP = "sign-ambiguity diagnostics: Hermite-parity prediction vs measured flips, barriers and attacks"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "signs",
        help=HELP,
        description=(
            "Predict from the Hermite parities of σ whether a per-sample sign flip x → −x is an exact "
            "symmetry, invisible modulo col([1, V]), or identifiable, and measure it on synthetic sphere "
            "data with a trained RF model: ‖P⊥(φ(x) ∓ φ(−x))‖/‖φ(x)‖ (P⊥ = projection onto the complement "
            "of col([1, V]) in R^p), the projection loss of the true set with k samples flipped, and the "
            "loss barrier along the great circle x_i → −x_i. ACTIVATION 'all' tabulates every registered "
            "activation; --compare runs the reconstruction attack for relu, relu+tanh and tanh on the "
            "same data and the same V."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "activation", nargs="?", default=None,
        help=f"σ: one of {', '.join(known_activations())}, a sum such as '0.5*relu+tanh', or 'all' "
             "(optional with --compare)",
    )
    p.add_argument("--n", type=_positive_int, default=8, help="number of training samples")
    p.add_argument("--d", type=_positive_int, default=10, help="input dimension")
    add_feature_count_options(p, ratio_default=4.0)
    p.add_argument("--seed", type=_seed, default=0,
                   help="data seed (synthetic_sphere); V uses seed+1000 unless --v-seed, the attack uses seed")
    p.add_argument("--v-seed", type=_seed, default=None, help="seed of V (default seed+1000)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="dtype of V and features")
    p.add_argument("--order", type=bounded_int(0, MAX_ORDER, "one quadrature per order"), default=20,
                   help=f"highest Hermite order of the prediction (at most {MAX_ORDER})")
    p.add_argument("--tol", type=_nonneg_float, default=1e-10,
                   help="|μ_k| above tol + error bound counts as non-zero (prediction)")
    p.add_argument("--rtol", type=_positive_float, default=None,
                   help="relative flip difference at or below this counts as zero (measurement; default √ε of dtype)")
    p.add_argument("--flips", type=bounded_int(1, 100_000, "each flip set costs a loss evaluation"), default=8,
                   help="flip sets tried per k (all when C(n,k) is smaller)")
    p.add_argument("--points", type=bounded_int(2, 100_000, "each point costs a loss evaluation"), default=33,
                   help="points on each great circle x_i → −x_i")
    p.add_argument("--samples", type=_positive_int, default=None,
                   help="barrier profiles for the first this many samples (default all)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="write the barrier profiles to this file, ending in .png, .svg or .pdf (needs matplotlib)")
    g = p.add_argument_group("comparison (--compare)")
    g.add_argument("--compare", action="store_true",
                   help="run the attack for each of --activations on the same data and V")
    d = COMPARE_DEFAULTS
    g.add_argument("--activations", default=None,
                   help=f"comma-separated activations to compare (default {d['activations']})")
    g.add_argument("--repeat", type=bounded_int(1, 10_000, "each repetition runs every attack"), default=None,
                   help=f"repeat the comparison for data seeds seed, seed+1, ... (V seed = data seed + 1000; "
                        f"default {d['repeat']})")
    g.add_argument("--restarts", type=bounded_int(1, MAX_RESTARTS, "each restart is a complete attack"), default=None,
                   help=f"attack restarts (default {d['restarts']})")
    g.add_argument("--max-iter", type=bounded_int(1, 10_000_000, "iterations per restart"), default=None,
                   help=f"attack iteration cap per restart (default {d['max_iter']})")
    g.add_argument("--attack-tol", type=_positive_float, default=None,
                   help=f"attack stops once L ≤ this (default {d['attack_tol']:g})")
    g.add_argument("--threshold", type=_positive_float, default=None,
                   help=f"a sample is recovered when its sign-aware relative error is at most this "
                        f"(default {d['threshold']:g})")
    p.set_defaults(func=run)
    return p


# --- helpers -------------------------------------------------------------------


def _size(args):
    p = feature_count(args, args.d, args.n)
    if p <= args.d + 1:
        raise ValueError(f"p={p} ≤ d+1={args.d + 1}: the projection onto the complement of col([1, V]) is empty")
    itemsize = np.dtype(args.dtype).itemsize
    check_rf_resources(args.n, args.d, p, what=f"RF p={p}, d={args.d}, n={args.n}", attack_itemsize=itemsize,
                       restarts=args.restarts if args.compare else 1)
    return p


def _setup(args, activation, p, seed=None):
    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
    from ..models.random_features import RandomFeatures  # noqa: PLC0415

    seed = args.seed if seed is None else seed
    v_seed = args.v_seed if args.v_seed is not None else seed + 1000
    ds = synthetic_sphere(args.n, args.d, seed=seed)
    model = RandomFeatures(p, args.d, activation, seed=v_seed, dtype=np.dtype(args.dtype)).fit(ds.X, ds.y)
    return ds, model


def _ks(ks) -> str:
    return ", ".join(str(k) for k in ks) if ks else "none"


def _plot(path: str, panels: list, title: str) -> str:
    """panels: list of (activation name, prediction, [BarrierProfile])."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'rftheory[plot]'") from None
    fig = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, pred, profiles) in zip(axes, panels):
        for bp in profiles:
            ax.plot(bp.t, bp.loss, lw=1.2, label=f"i={bp.sample}")
        ax.set_title(f"{name}\n({pred})", fontsize=9)
        ax.set_xlabel("t   (x_i(t) = cos(πt) x_i + sin(πt) √d u)")
        ax.set_ylabel("projection loss L")
        ax.grid(alpha=0.3)
        if len(profiles) <= 10:
            ax.legend(fontsize=7)
    import textwrap  # noqa: PLC0415

    fig.suptitle("\n".join(textwrap.wrap(title, width=max(40, 60 * len(panels)))), fontsize=8)
    fig.savefig(path, dpi=120)
    return path


# --- modes ---------------------------------------------------------------------


def _run_single(args) -> int:
    from ..theory import signs as S  # noqa: PLC0415

    p = _size(args)
    ds, model = _setup(args, args.activation, p)
    n, d = ds.X.shape
    pred = S.sign_prediction(args.activation, order=args.order, tol=args.tol)
    rep = pred.report
    print(f"rftheory signs {model.activation.name}")
    print(f"  data        {ds.description} (data seed {args.seed})")
    print(f"  model       RF p={p}, d={d}, p/(dn)={p / (d * n):.3g}, V seed={model.seed}, dtype={args.dtype}; "
          f"θ = min-norm interpolator (train residual {model.train_residual:.1e})")
    print(f"prediction    (Hermite parities: rftheory.theory.hermite.parity_report, order {rep.order}, tol {rep.tol:g})")
    print(f"  non-zero    even k≥2: {_ks(rep.even_nonzero[:6])}{' …' if len(rep.even_nonzero) > 6 else ''}; "
          f"odd k≥3: {_ks(rep.odd_nonzero[:6])}{' …' if len(rep.odd_nonzero) > 6 else ''}; "
          f"μ0 {'≠' if rep.mu0_nonzero else '='} 0, μ1 {'≠' if rep.mu1_nonzero else '='} 0")
    print(f"  verdict     {pred.prediction}   [{pred.relation}]")
    print(f"  why         {rep.explanation}")

    fd = S.flip_difference(ds.X, model)
    rtol = args.rtol if args.rtol is not None else S.default_rtol(model.dtype)
    measured = S.measured_verdict(fd, rtol)
    print(f"measurement   per sample, P⊥ = projector onto col([1, V])⊥ (dim {p - d - 1} of {p})")
    print(f"  {'quantity':<30}{'min':>11}{'max':>11}")
    for label, name in (("‖P⊥(φ(x) − φ(−x))‖/‖φ(x)‖", "odd_projected"), ("‖P⊥(φ(x) + φ(−x))‖/‖φ(x)‖", "even_projected"),
                        ("‖φ(x) − φ(−x)‖/‖φ(x)‖", "odd_raw"), ("‖φ(x) + φ(−x)‖/‖φ(x)‖", "even_raw"),
                        ("‖P⊥φ(x)‖/‖φ(x)‖", "nonaffine")):
        print(f"  {label:<30}{fd.min(name):>11.2e}{fd.max(name):>11.2e}")
    agree = "AGREES with" if measured == pred.prediction else "DISAGREES with"
    print(f"  verdict     {measured}   (zero means ≤ rtol {rtol:.1e}) — {agree} the prediction")

    scan = S.flip_loss_scan(ds.X, model.theta, model, trials=args.flips, seed=args.seed)
    print(f"loss of the true set with k samples flipped (θ fitted on the true X; L(X) = {scan.base_loss:.2e}; "
          f"subsets seed {args.seed})")
    print(f"  {'k':>3}{'sets':>6}{'mean L':>11}{'min L':>11}{'max L':>11}")
    for k, losses, mean, lo, hi in zip(scan.ks, scan.losses, scan.mean, scan.min, scan.max):
        print(f"  {k:>3}{len(losses):>6}{mean:>11.2e}{lo:>11.2e}{hi:>11.2e}")

    samples = range(min(args.samples or n, n))
    profiles = S.barrier_profiles(ds.X, model.theta, model, samples=samples, points=args.points, seed=args.seed)
    print(f"barrier along the great circle x_i → −x_i ({args.points} points, u ⊥ x_i drawn with seed "
          f"[{args.seed}, i]; other samples fixed)")
    print(f"  {'i':>3}{'L(x_i)':>11}{'L(−x_i)':>11}{'max L':>11}{'at t':>7}")
    for bp in profiles:
        print(f"  {bp.sample:>3}{bp.start_loss:>11.2e}{bp.end_loss:>11.2e}{bp.height:>11.2e}{bp.argmax_t:>7.2f}")
    if args.plot:
        written = _plot(args.plot, [(model.activation.name, pred.prediction, profiles)],
                        f"loss along x_i → −x_i; n={n}, d={d}, p={p}, data seed {args.seed}, V seed {model.seed}")
        print(f"plot          {written}")
    return 0


def _run_all(args) -> int:
    from ..theory import signs as S  # noqa: PLC0415

    p = _size(args)
    names = known_activations()
    print("rftheory signs all: predicted (Hermite parities) vs measured (flip differences) verdicts")
    print(f"  data        synthetic sphere n={args.n} d={args.d} seed={args.seed}; RF p={p}, "
          f"V seed={args.v_seed if args.v_seed is not None else args.seed + 1000}, dtype={args.dtype}")
    hdr = (f"  {'activation':<12}{'predicted':<32}{'measured':<32}{'agree':<7}"
           f"{'max‖P⊥(φ−φ₋)‖':>15}{'max‖P⊥(φ+φ₋)‖':>15}{'1-flip L':>10}")
    print(hdr)
    disagree = 0
    panels = []
    for name in names:
        ds, model = _setup(args, name, p)
        pred = S.sign_prediction(name, order=args.order, tol=args.tol)
        fd = S.flip_difference(ds.X, model)
        meas = S.measured_verdict(fd, args.rtol)
        one = float(np.mean([S.flipped_loss(ds.X, model.theta, model, [i]) for i in range(args.n)]))
        ok = meas == pred.prediction
        disagree += not ok
        print(f"  {name:<12}{pred.prediction:<32}{meas:<32}{'yes' if ok else 'NO':<7}"
              f"{fd.max('odd_projected'):>15.2e}{fd.max('even_projected'):>15.2e}{one:>10.2e}")
        if args.plot:
            samples = range(min(args.samples or args.n, args.n))
            panels.append((name, pred.prediction,
                           S.barrier_profiles(ds.X, model.theta, model, samples, args.points, args.seed)))
    rtol = args.rtol if args.rtol is not None else S.default_rtol(np.dtype(args.dtype))
    print(f"  (φ₋ = φ(−x); relative to ‖φ(x)‖; zero means ≤ rtol {rtol:.1e}; 1-flip L = mean over i of the loss "
          "of the true set with x_i flipped, θ fitted on the true X)")
    print(f"  {len(names) - disagree}/{len(names)} measured verdicts agree with the prediction")
    if args.plot:
        written = _plot(args.plot, panels, f"loss along x_i → −x_i; n={args.n}, d={args.d}, p={p}, data seed {args.seed}")
        print(f"plot          {written}")
    return 0


def _run_compare(args) -> int:
    from ..theory import signs as S  # noqa: PLC0415
    from ..attack.metrics import chance_levels  # noqa: PLC0415

    p = _size(args)
    acts = [a.strip() for a in args.activations.split(",") if a.strip()]
    if args.activation and args.activation != "all" and args.activation not in acts:
        acts.insert(0, args.activation)
    if not acts:
        raise ValueError("--activations is empty")
    n, d = args.n, args.d
    print("rftheory signs --compare: reconstruction attack, same data and same V for every activation")
    print(f"  sizes       n={n}, d={d}, p={p}, p/(dn)={p / (d * n):.3g}, dtype={args.dtype}")
    print(f"  attack      rftheory.attack.reconstruct (lbfgs), n̂=n, restarts={args.restarts}, max_iter={args.max_iter}, "
          f"tol={args.attack_tol:g}; recovered = sign-aware error ≤ {args.threshold:g}")
    totals = {a: [0, 0, 0] for a in acts}  # wrong sign, recovered, n
    verdicts = []
    panels = []
    for rep in range(args.repeat):
        seed = args.seed + rep
        v_seed = args.v_seed if args.v_seed is not None else seed + 1000
        t0 = time.perf_counter()
        cmp = S.compare_activations(
            acts, n=n, d=d, p=p, data_seed=seed, v_seed=v_seed, attack_seed=seed, restarts=args.restarts,
            max_iter=args.max_iter, tol=args.attack_tol, threshold=args.threshold, dtype=np.dtype(args.dtype),
            order=args.order,
        )
        chance = chance_levels(_setup_data(n, d, seed), seed=seed, threshold=args.threshold)
        print(f"run {rep + 1}/{args.repeat}: data seed {seed}, V seed {v_seed}, attack seed {seed} "
              f"({time.perf_counter() - t0:.1f} s)")
        print(f"  {'activation':<11}{'prediction':<32}{'loss':>9}{'signed':>8}{'sign-aw.':>9}{'ent-abs':>8}"
              f"{'recov.':>8}{'wrong±':>8}{'1-flip L':>10}{'time':>7}")
        for r in cmp.rows:
            print(f"  {r.activation:<11}{r.prediction:<32}{r.loss:>9.1e}{r.signed_mean:>8.3f}{r.sign_aware_mean:>9.3f}"
                  f"{r.entrywise_abs_mean:>8.3f}{f'{r.recovered}/{r.n}':>8}{f'{r.wrong_sign}/{r.n}':>8}"
                  f"{r.one_flip_loss:>10.1e}{r.wall_time:>6.1f}s")
            t = totals[r.activation]
            t[0] += r.wrong_sign
            t[1] += r.recovered
            t[2] += r.n
        print(f"  {'chance':<11}{'(random sphere points)':<32}{'':>9}{chance['signed']:>8.3f}"
              f"{chance['sign_aware']:>9.3f}{chance['entrywise_abs']:>8.3f}")
        ok, msg = cmp.verdict()
        verdicts.append(ok)
        print(f"  verdict     {msg}")
        if args.plot and rep == 0:
            from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
            from ..models.random_features import RandomFeatures  # noqa: PLC0415

            ds = synthetic_sphere(n, d, seed=seed)
            samples = range(min(args.samples or n, n))
            for a in acts:
                model = RandomFeatures(p, d, a, seed=v_seed, dtype=np.dtype(args.dtype)).fit(ds.X, ds.y)
                panels.append((model.activation.name, S.sign_prediction(a, order=args.order, tol=args.tol).prediction,
                               S.barrier_profiles(ds.X, model.theta, model, samples, args.points, seed)))
    print("columns: mean relative errors after Hungarian matching (signed, sign-aware, entrywise-abs = lenient); "
          "recov. = recovered up to sign; wrong± = recovered only as −x_i; 1-flip L = mean loss of the true set "
          "with one sample flipped (θ fitted on the true X)")
    if args.repeat > 1:
        print("totals over runs: " + "; ".join(f"{a}: {w}/{m} wrong sign, {rc}/{m} recovered"
                                             for a, (w, rc, m) in totals.items()))
    if any(v is False for v in verdicts):
        print("OVERALL: the measurement DISAGREES with the prediction that the identifiable activation has no "
              "wrong-sign recoveries where the sign-ambiguous one has some (see the verdict lines).")
    elif verdicts and all(v is True for v in verdicts):
        print("OVERALL: the measurement agrees with the prediction in every run.")
    if args.plot:
        written = _plot(args.plot, panels, f"loss along x_i → −x_i; n={n}, d={d}, p={p}, data seed {args.seed}, "
                                           f"V seed {args.v_seed if args.v_seed is not None else args.seed + 1000}")
        print(f"plot          {written}")
    return 0


def _setup_data(n, d, seed):
    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415

    return synthetic_sphere(n, d, seed=seed).X


def _check_options(args) -> None:
    """Refuse ignored or contradictory options and unusable output paths before any computation."""
    from ..models.activations import get_activation  # noqa: PLC0415

    if args.d < 2:
        raise ValueError(f"--d {args.d}: expected d ≥ 2 (the sphere in one dimension is the two points ±1: every "
                         "sample is its own sign flip's opposite and the samples repeat)")
    given = [f"--{name.replace('_', '-')}" for name in COMPARE_DEFAULTS if getattr(args, name) is not None]
    if not args.compare and given:
        raise ValueError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --compare only")
    for name, default in COMPARE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.activation is not None and args.activation.strip().lower() != "all":
        try:
            get_activation(args.activation)
        except ValueError as exc:
            raise ValueError(f"ACTIVATION: {exc}") from None
    if args.compare:
        if args.activation is not None and args.activation.strip().lower() == "all":
            raise ValueError("ACTIVATION 'all' does not apply to --compare; list the activations with --activations")
        for a in args.activations.split(","):
            if a.strip():
                try:
                    get_activation(a.strip())
                except ValueError as exc:
                    raise ValueError(f"--activations: {exc}") from None
    if args.plot is not None:
        if not str(args.plot).lower().endswith(PLOT_SUFFIXES):
            raise ValueError(f"--plot must end in {', '.join(PLOT_SUFFIXES)}, got {args.plot!r}")
        check_output_file(args.plot, "--plot")
        require_matplotlib()


def run(args) -> int:
    _check_options(args)
    if args.compare:
        return _run_compare(args)
    if args.activation is None:
        raise ValueError("give an ACTIVATION (or 'all'), or use --compare")
    if args.activation.strip().lower() == "all":
        return _run_all(args)
    return _run_single(args)
