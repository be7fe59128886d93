"""The proofs_numeric checks run, report their claims and verdicts, and pass at the tiny size
used here; the small-size runner (the table in docs/theory.md) runs under the slow marker."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # proofs_numeric/ lives beside the package, not inside it
    sys.path.insert(0, str(ROOT))

from proofs_numeric import run_all  # noqa: E402
from proofs_numeric._common import ClaimReport, fmt, markdown_table, render, text_table  # noqa: E402
from rftheory.theory.identifiability import Check  # noqa: E402


@pytest.fixture(scope="module")
def tiny_reports():
    return {r.module: r for r in run_all.run_all("tiny")}


def test_every_module_passes_at_tiny_size(tiny_reports):
    assert list(tiny_reports) == list(run_all.MODULES)
    for name, rep in tiny_reports.items():
        assert rep.checks, name
        failing = [(c.quantity, c.measured, c.relation, c.threshold) for c in rep.checks if not c.passed]
        assert rep.passed, (name, failing)
        assert "\n" not in rep.claim and rep.claim
        assert all(len(row) == len(rep.headers) for row in rep.rows), name
        text = render(rep)
        assert rep.claim in text and "PASS" in text


def test_theorem1_gap_grows_with_ratio(tiny_reports):
    rep = tiny_reports["theorem1_spurious_gap"]
    ratios = [row[0] for row in rep.rows]
    gaps = [row[2] for row in rep.rows]
    assert ratios == sorted(ratios)
    assert gaps[-1] > 2 * gaps[0] > 0  # visible growth even at the tiny size
    # the verdicts are the measured numbers against the stated thresholds
    growth = [c for c in rep.checks if c.quantity.startswith("median gap")][0]
    assert growth.measured == pytest.approx(gaps[-1] / gaps[0])


def test_verdicts_follow_the_numbers():
    bad = ClaimReport("x", "claim", "tiny", "cfg", ["a"], [[1.0]], [Check("q", 2.0, 1.0, "<=")])
    assert not bad.passed and "FAIL" in render(bad)
    empty = ClaimReport("x", "claim", "tiny", "cfg", ["a"], [[1.0]], [])
    assert not empty.passed  # no verdict is not a pass


def test_runner_exit_status(monkeypatch, capsys):
    assert run_all.main(["--size", "tiny", "--only", "sign_lemma_relu", "lemma_feature_norm", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "### Summary" in out and "ALL PASS" in out and "| σ |" in out and "\\|" in out
    import proofs_numeric.sign_lemma_relu as mod

    def failing(size="small", seeds=None):
        return ClaimReport("forced", "claim", size, "cfg", ["a"], [[0.0]], [Check("q", 1.0, 0.0, "<=")])

    monkeypatch.setattr(mod, "run", failing)
    assert run_all.main(["--size", "tiny", "--only", "sign_lemma_relu", "--summary-only"]) == 1
    assert "SOME FAIL" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown"):
        run_all.run_all("tiny", only=["nope"])


def test_module_runs_as_a_script():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "proofs_numeric" / "sign_lemma_relu.py"), "--size", "tiny"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "claim:" in proc.stdout and "PASS" in proc.stdout


def test_table_formatting():
    assert fmt(3) == "3" and fmt(0.5) == "0.5" and fmt(1.5e-7) == "1.50e-07" and fmt(float("inf")) == "inf"
    assert fmt(np.int64(4)) == "4" and fmt("x") == "x"
    t = text_table(["a", "bb"], [[1, 2.5]])
    assert t.splitlines()[0].split() == ["a", "bb"] and "2.5" in t
    assert markdown_table(["a"], [[1]]).splitlines() == ["| a |", "|---|", "| 1 |"]
    assert markdown_table(["|x|"], [["a|b"]]).splitlines()[2] == "| a\\|b |"


@pytest.mark.slow
def test_small_runner_passes_in_budget():
    """The table in docs/theory.md: every check passes at the small size."""
    reports = run_all.run_all("small")
    assert all(r.passed for r in reports), [(r.module, [c.quantity for c in r.checks if not c.passed]) for r in reports]
    assert sum(r.seconds for r in reports) < 120
