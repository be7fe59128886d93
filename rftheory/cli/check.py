"""``rftheory check``: identifiability checks for one configuration, as a verdict table.

Draws synthetic sphere data (n, d, seed) and V (seed + 1000, as ``rftheory
reconstruct`` does), then runs :func:`rftheory.theory.identifiability.identifiability_checks`
and prints what it tests: each theorem's size hypothesis as the measured ratio
(p/(dn), p/(2d), p/n; informational: "≫" has no explicit constant in the
statements, so no threshold on the ratio is a verdict), the two counting
limits on the √d-sphere as numbers of features (span identifiability n + d,
θ identifiability nd + 1, and C(p − n) vs n(d − 1) with ``--outputs`` C > 1;
derived in :func:`rftheory.theory.identifiability.counting_limits`), then one
row per verdict: measured value, the stated threshold it is compared with,
PASS/FAIL and the inequality behind the threshold.  Exit status 0 when all
verdicts pass, 1 otherwise.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ..backend import resolve_backend
from ..data.synthetic import synthetic_sphere
from ..theory.identifiability import DEFAULT_DELTA, DEFAULT_EPS, DEFAULT_ORDER, identifiability_checks
from ..models.random_features import RandomFeatures
from ._resources import F64, check_rf_resources, require_memory, require_work
from ._types import (add_activation_option, add_feature_count_options, bounded_int, feature_count, output_count,
                     positive_below, positive_int, seed_int)

# Starting points of the Theorem 1 search: each runs a minimisation, all together one (starts × p) array;
# 10⁵ starts already sample the far region more densely than any δ-net the check needs.
MAX_STARTS = 100_000
# Hermite order of K∞: each order adds a coefficient and a term of the kernel series; the default
# (60) already bounds the tail by 1e-4, and 1000 orders leave nothing to gain.
MAX_ORDER = 1000

HELP = "check the identifiability conditions (Theorems 1, 2 and lemmas) for one configuration"


unit_distance = positive_below(math.sqrt(2), "a distance in (0, √2)")


def add_parser(sub):
    p = sub.add_parser(
        "check",
        help=HELP,
        description=(
            "Measure, for synthetic data on the √d-sphere and random weights V ~ N(0,1/d), the "
            "quantities behind the identifiability theorems. Prints each theorem's size hypothesis (Theorem 1: "
            "p ≫ dn) as the measured ratio p/(dn), informational only: the statements give no explicit constant "
            "for ≫. Then the two counting limits in features on the √d-sphere (a row has d − 1 freedoms): span "
            "identifiability n + d (a far x̂ with φ(x̂) in the span of the φ(x_i) is p equations in d − 1 + n "
            "unknowns: spurious zeros for p ≤ n + d − 1, none from n + d) and θ identifiability nd + 1 (the law: "
            "p equations in nd unknowns; with --outputs C, C(p − n) > n(d − 1)). Then each conclusion is "
            "measured against a threshold from a stated inequality, and every verdict can fail: true "
            "samples in the feature span (round-off), rank of Φ, ‖ΦΦᵀ/p − K∞‖ against a matrix Bernstein "
            "bound and max|ΦΦᵀ/p − K∞| against a Gaussian union bound (level 0.01), λ_min(ΦΦᵀ)/p ≥ "
            "½λ_min(K∞), K∞ positive definite, ‖φ(x)‖²/p vs E[σ²], Theorem 1's conclusion (FAIL when the "
            "search finds a spurious zero, min R ≤ 1e-6 at distance ≥ δ from every ±x_i, as it does for "
            "p ≤ n + d − 2 and often at n + d − 1; otherwise PASS with the gap printed, whatever p/(dn)), the "
            "smallest span mismatch of a pair near x_1 (Theorem 2), and the sign lemma against the Hermite "
            "parity prediction."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--n", type=positive_int, default=3, help="number of samples")
    p.add_argument("--d", type=positive_int, default=5, help="input dimension, at least 2")
    add_feature_count_options(p, ratio_default=16.0)
    add_activation_option(p)
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the data; V uses seed+1000; the searches use seed")
    p.add_argument("--delta", type=unit_distance, default=DEFAULT_DELTA,
                   help="Theorem 1: the far region is dist(x̂, ±x_i)/√d ≥ δ")
    p.add_argument("--eps", type=unit_distance, default=DEFAULT_EPS,
                   help="Theorem 2: both candidates within ε·√d of x_1")
    p.add_argument("--starts", type=bounded_int(1, MAX_STARTS, "each start runs a minimisation"), default=32,
                   help=f"starting points of the Theorem 1 minimisation (at most {MAX_STARTS})")
    p.add_argument("--max-iter", type=bounded_int(1, 10_000_000, "iterations per minimisation"), default=300,
                   help="iteration cap of each minimisation")
    p.add_argument("--order", type=bounded_int(1, MAX_ORDER, "terms of the kernel's Hermite series"),
                   default=DEFAULT_ORDER, help=f"Hermite order of K∞ (at most {MAX_ORDER})")
    p.add_argument("--no-theorem2", action="store_true", help="skip the Theorem 2 check")
    p.add_argument("--outputs", type=output_count, default=1, metavar="C",
                   help="outputs C of the model whose counting is printed: C(p − n) vs n(d − 1) (Θ identifiable "
                        "by counting for p > n + n(d − 1)/C)")
    p.add_argument("--no-attack-starts", action="store_true",
                   help="do not seed the Theorem 1 search with the far rows of the attack's own reconstructions "
                        "(run when p ≤ nd)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array backend (cupy needs a GPU)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    start = time.perf_counter()
    n, d = args.n, args.d
    if d < 2:
        raise ValueError(f"--d {d}: the checks need d ≥ 2 (on the one-dimensional sphere {{−1, +1}} the searches "
                         "have no direction tangent to the sphere, and samples repeat)")
    if not args.no_theorem2 and n < 2:
        raise ValueError("the Theorem 2 check needs n ≥ 2 (or pass --no-theorem2)")
    p = feature_count(args, d, n)
    if p < n:
        raise ValueError(f"p={p} < n={n}: the feature matrix cannot have full rank")
    check_rf_resources(n, d, p, what=f"RF p={p}, d={d}, n={n}", attack_itemsize=8)
    # the searches: a (starts × p) block of features with its derivative and products
    require_memory(3.0 * F64 * args.starts * p, f"--starts {args.starts} with p={p}", "use fewer --starts or a smaller p")
    require_work(float(args.starts) * args.max_iter * p * (d + n), f"--starts {args.starts} × --max-iter "
                 f"{args.max_iter} with p={p}", "use fewer --starts, a smaller --max-iter or a smaller p")
    xp = resolve_backend(args.backend)
    ds = synthetic_sphere(n, d, seed=args.seed)
    model = RandomFeatures(p, d, args.activation, seed=args.seed + 1000, backend=args.backend)
    X = xp.asarray(ds.X)
    print("rftheory check")
    print(f"  data        {ds.description}")
    print(f"  model       RF p={p}, d={d}, σ={model.activation.name}, V seed={model.seed}, backend={args.backend}")
    print(f"  p/(dn)      {p / (d * n):.3g}   (p/d = {p / d:.3g}, p/n = {p / n:.3g})")
    print(f"  searches    δ={args.delta:g}, ε={args.eps:g}, starts={args.starts}, max_iter={args.max_iter}, "
          f"Hermite order {args.order}")
    report = identifiability_checks(
        X, model, delta=args.delta, eps=args.eps, starts=args.starts, max_iter=args.max_iter,
        order=args.order, seed=args.seed, theorem2=not args.no_theorem2, outputs=args.outputs,
        attack_seeding=not args.no_attack_starts,
    )
    lim = report.limits
    print()
    print("  counting limits on the √d-sphere (numbers of features; a row has d − 1 freedoms)")
    span_above = p >= lim["span"]
    print(f"    span identifiability   n + d  = {lim['span']:<8d} (n + d + 1 = {lim['span'] + 1} for inputs free in R^d)")
    print(f"                                             p = {p} is {'above' if span_above else 'below'}: "
          + ("no far x̂ has φ(x̂) in span Φ by counting" if span_above else
             "p equations ≤ d − 1 + n unknowns: far x̂ with φ(x̂) in span Φ exist by counting"
             + (" (isolated at p = n + d − 1, where real ones need not exist)" if p == lim["span"] - 1 else "")))
    theta_above = p >= lim["theta"]
    print(f"    θ identifiability      nd + 1 = {lim['theta']:<8d} (n(d + 1) = {lim['theta'] + n - 1} for inputs free in "
          "R^d)")
    print(f"                                             p = {p} is {'above' if theta_above else 'below'}: "
          + ("θ alone pins X by counting" if theta_above else "wrong X̂ with θ in their span exist by counting"))
    if lim["outputs"] > 1:
        ok = lim["equations"] > lim["unknowns"]
        print(f"    {lim['outputs']} outputs              C(p − n) = {lim['equations']} {'>' if ok else '≤'} n(d − 1) = "
              f"{lim['unknowns']}: Θ {'pins' if ok else 'does not pin'} X by counting (for p > n + n(d − 1)/C = "
              f"{lim['boundary']:.4g})")
    print()
    print("  hypotheses (ratios only: the statements give no explicit constant for ≫, so these are not verdicts;")
    print("  the conclusions below are measured whatever the ratio)")
    hw = max(len(h.statement) for h in report.hypotheses)
    for h in report.hypotheses:
        # whatever the constant of ≫, a ratio ≤ 1 is not "much greater"
        note = "  (≤ 1: not met, whatever the constant)" if h.measured <= 1 else ""
        print(f"    {h.statement.ljust(hw)}  {h.detail} = {_fmt(h.measured)}{note}")
    rows = [(c.quantity, _fmt(c.measured), f"{c.relation} {_fmt(c.threshold)}", c.verdict, c.detail)
            for c in report.checks]
    headers = ("quantity", "measured", "threshold", "verdict", "how the threshold is set")
    widths = [max(len(str(r[j])) for r in rows + [headers]) for j in range(len(headers))]
    print()
    print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    sg = report.results.get("gap")
    if sg is not None:
        print(f"\n  round-off   max_i R(x_i) = {report.results['truth_residual']:.2e} (0 by construction: the "
              "projection's round-off, not a verdict)", end="")
        seeded = report.results.get("attack_starts", 0)
        print(f"\n  Theorem 1 detail: spurious gap {sg.gap:.4g} (min R at dist ≥ δ; ≤ 1e-6 is a spurious zero); "
              f"{args.starts} random starts + {seeded} far rows of the attack's reconstructions; "
              f"{sg.free_recovered:.0%} of unconstrained descents end within δ of a ±x_i; "
              f"lowest far local minimum R = {sg.free_spurious:.4g}")
    passed = sum(c.passed for c in report.checks)
    print(f"\n  {passed}/{len(report.checks)} PASS   wall time {time.perf_counter() - start:.1f} s")
    return 0 if report.passed else 1


def _fmt(v) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isinf(v) or math.isnan(v):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.3e}"
    return f"{v:.4g}"
