"""Run every proofs_numeric check and print their tables and a PASS/FAIL summary.

    python -m proofs_numeric.run_all            # small size (small grids, few seeds)
    python -m proofs_numeric.run_all --full     # full size (larger grids, more seeds)
    python -m proofs_numeric.run_all --markdown # markdown tables (the table in docs/theory.md)
    python -m proofs_numeric.run_all --only theorem1_spurious_gap sign_lemma_relu

Exit status 0 when every verdict passes, 1 otherwise.

Two thresholds, never to be confused (docs/design.md, docs/theory.md): span
identifiability (Theorem 1's conclusion: a far x̂ with φ(x̂) ∈ span Φ) holds by
counting on the √d-sphere from n + d features, θ identifiability (the law: θ
alone) from nd + 1 (rftheory.theory.identifiability.counting_limits).  The
runner prints both, and theorem1_spurious_gap measures the spurious gap
against p at one shape on both sides of the span limit.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proofs_numeric._common import SIZE_NAMES, markdown_table, render, text_table, timed

MODULES = (
    "theorem1_spurious_gap",
    "theorem2_distinctness",
    "lemma_kernel_concentration",
    "lemma_lambda_min",
    "lemma_feature_norm",
    "sign_lemma_relu",
)


def run_all(size: str = "small", seeds=None, only=None, progress=None) -> list:
    """Run the selected modules at ``size``; return their ClaimReports in order."""
    names = list(MODULES) if not only else list(only)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        raise ValueError(f"unknown check module(s) {unknown}; choose from {', '.join(MODULES)}")
    reports = []
    for name in names:
        module = importlib.import_module(f"proofs_numeric.{name}")
        report = timed(module.run, size, seeds)
        report.module = name
        reports.append(report)
        if progress is not None:
            progress(report)
    return reports


THRESHOLDS = ("Two thresholds: span identifiability (Theorem 1's conclusion: no far x̂ with φ(x̂) in span Φ) "
              "from n + d features by counting on the sphere; θ identifiability (the law, θ alone) from nd + 1. "
              "theorem1_spurious_gap measures the spurious gap against p at one shape on both sides of "
              "n + d (a spurious zero is min R ≤ 1e-6).")

SUMMARY_HEADERS = ["check", "module", "verdicts passed", "result", "seconds"]


def summary_rows(reports) -> list:
    return [
        [r.name, getattr(r, "module", ""), f"{sum(c.passed for c in r.checks)}/{len(r.checks)}",
         "PASS" if r.passed else "FAIL", f"{r.seconds:.1f}"]
        for r in reports
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run all numerical checks of the theorems and lemmas.")
    parser.add_argument("--full", action="store_true", help="full size (larger grids and more seeds)")
    parser.add_argument("--size", choices=SIZE_NAMES, default=None, help="explicit size (overrides --full)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per module (default: the size's own)")
    parser.add_argument("--only", nargs="+", metavar="MODULE", choices=MODULES, help="run only these modules")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--summary-only", action="store_true", help="print only the summary table")
    args = parser.parse_args(argv)
    size = args.size or ("full" if args.full else "small")
    t0 = time.perf_counter()
    print(THRESHOLDS + "\n", flush=True)

    def show(report):
        if not args.summary_only:
            print(render(report, markdown=args.markdown), end="\n\n", flush=True)

    reports = run_all(size, args.seeds, args.only, progress=show)
    table = markdown_table if args.markdown else text_table
    print("### Summary\n" if args.markdown else "== Summary ==")
    print(table(SUMMARY_HEADERS, summary_rows(reports)))
    ok = all(r.passed for r in reports)
    print(f"\n{'ALL PASS' if ok else 'SOME FAIL'}: {sum(r.passed for r in reports)}/{len(reports)} modules, "
          f"size {size}, {time.perf_counter() - t0:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
