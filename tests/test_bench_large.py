"""benchmarks/bench_large.py: its arguments and the roofline figure on a tiny size (seconds, no attack run)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_large.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_large", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arguments_and_quick_sizes(bench):
    args = bench.parse_args([])
    assert (args.n, args.size, args.ratio, args.authors_p) == (10, 32, 2.0, 100_000)
    assert not (args.quick or args.skip_recovery or args.skip_authors)
    quick = bench.parse_args(["--quick", "--skip-recovery", "--skip-authors"])
    assert quick.quick and quick.skip_recovery and quick.skip_authors
    assert quick.size == 16 and quick.pairs == 2 and quick.iterations == 5 and quick.authors_p <= 4 * 768 * 10


def test_roofline_fraction_on_a_tiny_size(bench):
    assert bench.roofline_fraction(0.04, 0.1) == pytest.approx(0.8)  # two reads of 40 ms against 100 ms
    V = np.ones((64, 48), np.float32)
    t = bench.read_time(V, 2)
    assert 0 < t < 1
    assert bench.roofline_fraction(t, 2 * t) == pytest.approx(1.0)


def test_machine_and_memory_lines(bench):
    import _common

    assert "cores" in _common.memory_line() and "machine:" in _common.machine_line()
