"""Shared plumbing of the proofs_numeric checks: reports, tables, command line.

Each check module defines ``CLAIM`` (one line), ``SIZES`` (a dict of named
configurations: "tiny" for the test-suite, "small" for the default run,
"full" for ``--full``) and ``run(size="small", seeds=None) -> ClaimReport``.
Verdicts are :class:`rftheory.theory.identifiability.Check` objects: a measured
number compared with a stated threshold.  Every check draws, for seed s, the
data X = synthetic_sphere(n, d, seed=s).X (rows on the √d-sphere) and V of
RandomFeatures seeded 1000 + s (:func:`seeded_problems`).
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

import numpy as np

from rftheory.data.synthetic import synthetic_sphere
from rftheory.theory.identifiability import DEFAULT_ORDER, Check
from rftheory.models.random_features import RandomFeatures

SIZE_NAMES = ("tiny", "small", "full")
MODEL_SEED_OFFSET = 1000  # V of seed s is drawn with seed 1000 + s
SEEDING = f"data seed s, V seed {MODEL_SEED_OFFSET}+s"


@dataclass
class ClaimReport:
    """What one check module measured: its claim, a table over the grid, and verdicts."""

    name: str
    claim: str
    size: str
    config: str
    headers: list
    rows: list
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


def fmt(v, digits: int = 4) -> str:
    """Compact number formatting for the tables (ints as ints, floats to ``digits`` significant)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(digits - 2, 1)}e}"
    return f"{v:.{digits}g}"


def text_table(headers, rows) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _md(cell) -> str:
    return fmt(cell).replace("|", "\\|")  # a literal | would split the cell


def markdown_table(headers, rows) -> str:
    out = ["| " + " | ".join(_md(str(h)) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def check_rows(checks):
    return [[c.quantity, fmt(c.measured), f"{c.relation} {fmt(c.threshold)}", c.verdict] for c in checks]


CHECK_HEADERS = ["quantity", "measured", "threshold", "verdict"]


def render(report: ClaimReport, markdown: bool = False) -> str:
    """The report as plain text (default) or markdown (### heading, bullet notes, pipe tables)."""
    verdict = f"{'PASS' if report.passed else 'FAIL'} ({report.seconds:.1f} s)"
    if markdown:
        lines = [f"### {report.name}", "", f"**Claim.** {report.claim}", "", f"*Size {report.size}:* {report.config}",
                 "", markdown_table(report.headers, report.rows), ""]
        lines += [f"- {note}" for note in report.notes]
        if report.notes:
            lines.append("")
        lines += [markdown_table(CHECK_HEADERS, check_rows(report.checks)), "", f"**{verdict}**"]
        return "\n".join(lines)
    lines = [f"== {report.name} ==", f"claim: {report.claim}", f"size: {report.size}; {report.config}", "",
             text_table(report.headers, report.rows), ""]
    lines += list(report.notes)
    if report.notes:
        lines.append("")
    lines += [text_table(CHECK_HEADERS, check_rows(report.checks)), "", verdict]
    return "\n".join(lines)


def seeds_for(cfg: dict, seeds) -> list:
    n = cfg["seeds"] if seeds is None else int(seeds)
    if n < 1:
        raise ValueError(f"seeds must be at least 1, got {n}")
    return list(range(n))


def get_size(sizes: dict, size: str) -> dict:
    if size not in sizes:
        raise ValueError(f"size must be one of {tuple(sizes)}, got {size!r}")
    return sizes[size]


def configure(sizes: dict, size: str, seeds) -> tuple[dict, list]:
    """``(cfg, seed_list)``: the configuration named ``size`` and its seeds 0..S−1 (``seeds`` overrides S)."""
    cfg = get_size(sizes, size)
    return cfg, seeds_for(cfg, seeds)


def seed_note(seed_list) -> str:
    """The seeds part of a report's config line: how many, and what seed s draws."""
    return f"seeds={len(seed_list)} ({SEEDING})"


def kernel_config(n: int, d: int, seed_list) -> str:
    """Config line of the checks built on rftheory.theory.identifiability.kernel_concentration (K∞ at its default order)."""
    return f"n={n}, d={d}, {seed_note(seed_list)}, K∞ Hermite order {DEFAULT_ORDER}"


def seeded_data(n: int, d: int, seed: int):
    """The n × d data of seed s: rows on the √d-sphere (rftheory.data.synthetic.synthetic_sphere)."""
    return synthetic_sphere(n, d, seed=seed).X


def seeded_model(p: int, d: int, activation, seed: int) -> RandomFeatures:
    """The random-features model of seed s: V (p × d) drawn with seed 1000 + s."""
    return RandomFeatures(p, d, activation, seed=MODEL_SEED_OFFSET + seed)


def seeded_problems(n: int, d: int, p: int, activation, seed_list):
    """``(X, model)`` for each seed s in ``seed_list``: :func:`seeded_data` and :func:`seeded_model`."""
    for s in seed_list:
        yield seeded_data(n, d, s), seeded_model(p, d, activation, s)


def module_main(module):
    """The ``main(argv=None) -> int`` of a check module: :func:`main_for` with the module's
    ``run`` (looked up at call time) and the first line of its docstring."""

    def main(argv=None) -> int:
        return main_for(module.run, module.__doc__.splitlines()[0], argv)

    return main


def main_for(module_run, description: str, argv=None) -> int:
    """Command line of a single check module: ``[--full | --size S] [--seeds N] [--markdown]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--full", action="store_true", help="full size (slower, larger grid and more seeds)")
    parser.add_argument("--size", choices=SIZE_NAMES, default=None, help="explicit size (overrides --full)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the size's own)")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args(argv)
    size = args.size or ("full" if args.full else "small")
    report = timed(module_run, size, args.seeds)
    print(render(report, markdown=args.markdown))
    return 0 if report.passed else 1


def timed(module_run, size, seeds=None) -> ClaimReport:
    t0 = time.perf_counter()
    report = module_run(size=size, seeds=seeds)
    report.seconds = time.perf_counter() - t0
    return report


__all__ = [
    "Check",
    "ClaimReport",
    "SIZE_NAMES",
    "fmt",
    "text_table",
    "markdown_table",
    "render",
    "seeds_for",
    "get_size",
    "configure",
    "seed_note",
    "kernel_config",
    "seeded_data",
    "seeded_model",
    "seeded_problems",
    "module_main",
    "main_for",
    "timed",
]
