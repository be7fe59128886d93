"""The sweep store (rftheory.experiments.store) and the safety of `rftheory law`'s outputs:
concurrent sweeps keep every row, a killed sweep resumes from its last committed cell, --fresh
deletes only this package's files, and worker processes die with their parent.

The sweeps are tiny (n ≤ 3, d = 4, a few iterations).  The kill tests make a cell endless (10⁴
restarts, none allowed to stop early: --tol 0 --no-stop-at-tol) so that a worker is busy computing
when its parent is killed.
"""
from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rftheory.cli import main
from rftheory.experiments.law import COLUMN_NAMES, KEY_COLUMNS, read_table, sweep
from rftheory.experiments.store import SweepStore, is_store

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--restarts", "1", "--max-iter", "30", "--n-boot", "10", "--no-progress"]
ENDLESS = ["--tol", "0", "--no-stop-at-tol", "--restarts", "10000"]  # hours for one attacked cell


def _law(*argv, **kwargs):
    """`python -m rftheory law ...` as a child process (its own interpreter, as a user runs it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "rftheory", "law", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _status(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _store_rows(path) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc; zombies are not alive)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


# --------------------------------------------------------------------------- the store


def test_store_round_trips_rows_and_keeps_one_per_cell(tmp_path):
    rows = sweep(sizes=[(3, 4)], ratios=[0.1, 3.0], seeds=[0], restarts=1, max_iter=20, workers=1).rows
    assert math.isnan(rows[0]["loss"])  # p < n: no attack, NaN columns
    path = tmp_path / "s.sqlite"
    with SweepStore(path) as store:
        assert [store.add(r) for r in rows] == [True, True]
        assert store.add(rows[0]) is False  # the cell is already stored: kept once
        assert len(store) == 2
        back = sorted(store.rows(), key=lambda r: r["ratio"])
    assert is_store(path)
    for a, b in zip(back, rows):
        assert tuple(a) == COLUMN_NAMES
        for k in COLUMN_NAMES:
            assert type(a[k]) is type(b[k]), k
            assert a[k] == b[k] or (isinstance(b[k], float) and math.isnan(a[k]) and math.isnan(b[k])), k
    con = sqlite3.connect(path)
    pk = [r[1] for r in sorted(con.execute("PRAGMA table_info(cells)").fetchall(), key=lambda r: r[5]) if r[5]]
    assert pk == list(KEY_COLUMNS)  # one row per configuration, enforced by SQLite
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_store_refuses_foreign_files_untouched(tmp_path):
    notes = tmp_path / "notes.sqlite"
    notes.write_text("my notes\n")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = other.read_bytes()
    for path in (notes, other):
        with pytest.raises(ValueError, match="not a sweep store"):
            SweepStore(path)
        assert not is_store(path)
    assert notes.read_text() == "my notes\n" and other.read_bytes() == before


def test_read_table_names_the_line_and_refuses_binary(tmp_path):
    rows = sweep(sizes=[(3, 4)], ratios=[0.1], seeds=[0, 1], workers=1, out=tmp_path / "t.csv").rows
    assert len(rows) == 2
    lines = (tmp_path / "t.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(",3,4,", ",three,4,", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"bad.csv:3: column n: cannot read 'three' as int"):
        read_table(bad)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_table(binary)


def test_csv_out_keeps_its_store_beside_it_and_a_store_out_writes_only_the_store(tmp_path):
    res = sweep(sizes=[(3, 4)], ratios=[0.1], seeds=[0], workers=1, out=tmp_path / "t.csv")
    assert res.store == tmp_path / "t.csv.sqlite" and is_store(res.store)
    assert len(read_table(tmp_path / "t.csv")) == 1
    res = sweep(sizes=[(3, 4)], ratios=[0.1], seeds=[0], workers=1, out=tmp_path / "only.db")
    assert res.store == tmp_path / "only.db"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("only")) == ["only.db"]


# --------------------------------------------------------------------------- concurrency, kills, resume


def test_two_concurrent_sweeps_into_one_out_keep_every_row(tmp_path):
    out = tmp_path / "same.csv"
    grid = ["--sizes", "2x4", "--ratios", "0.5", "3", "--workers", "1", *QUICK, "--out", str(out)]
    a = _law(*grid, "--seeds", "0", "1")
    b = _law(*grid, "--seeds", "2", "3")
    for proc in (a, b):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    rows = read_table(out)  # the export of the sweep that finished last: every row of the store
    assert sorted(r["seed"] for r in rows) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert _store_rows(str(out) + ".sqlite") == 8


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_a_killed_parent(tmp_path, sig):
    # every cell is endless: both workers are computing when the parent dies
    proc = _law("--sizes", "3x4", "--ratios", "3", "4", "--seeds", "0", *ENDLESS,
                "--workers", "2", "--no-progress", "--out", str(tmp_path / "k.csv"))
    kids = []
    try:
        kids = _wait_for(lambda: (lambda k: k if len(k) >= 2 else None)(_children(proc.pid)), 60, "two workers")
        time.sleep(1.0)  # the workers have taken their cells
        assert proc.poll() is None, "the sweep ended before it was killed: its cells are not endless"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        _wait_for(lambda: not any(_alive(k) for k in kids), 15, f"the workers {kids} to exit")
    finally:
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_proc
def test_killed_sweep_resumes_from_its_last_committed_cell(tmp_path):
    out = tmp_path / "r.csv"
    store = Path(str(out) + ".sqlite")
    # grid order: the two p < n cells (ratio 0.1, instant) come first, then an endless cell (ratio 3)
    proc = _law("--sizes", "3x4", "--ratios", "0.1", "3", "--seeds", "0", "1", *ENDLESS, "--workers", "1",
                "--no-progress", "--out", str(out))
    try:
        _wait_for(lambda: store.exists() and _store_rows(store) >= 2, 60, "two committed cells")
        time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait()
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert _store_rows(store) == 2  # the endless cell was never half written
    starts = []
    res = sweep(sizes=[(3, 4)], ratios=[0.1], seeds=[0, 1], tol=0.0, stop_at_tol=False, restarts=10000, workers=1,
                out=out, on_start=lambda todo, done: starts.append((todo, done)),
                callback=lambda row: pytest.fail("a committed cell was recomputed"))
    assert starts == [(0, 2)] and res.resumed == 2 and res.computed == 0
    assert len(read_table(out)) == 2


# --------------------------------------------------------------------------- --fresh and output paths


def test_fresh_refuses_a_foreign_file_and_leaves_it_untouched(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for extra in (["--fresh"], []):
        assert _status(["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0", "--out", str(notes), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "notes.txt" in err and "untouched" in err
        assert notes.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no store was created either


def test_fresh_deletes_this_packages_files_only(tmp_path, capsys):
    out = tmp_path / "t.csv"
    argv = ["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0", "--workers", "1", *QUICK, "--out", str(out)]
    assert _status(argv) == 0
    assert "1 to run, 0 resumed" in capsys.readouterr().out
    assert _status(argv + ["--fresh"]) == 0
    assert "1 to run, 0 resumed" in capsys.readouterr().out  # the store was deleted and rebuilt
    (tmp_path / "t.csv.sqlite").unlink()
    Path(str(out) + ".sqlite").write_text("not a store\n")
    assert _status(argv + ["--fresh"]) == 2
    assert "not a sweep store" in capsys.readouterr().err
    assert out.exists() and Path(str(out) + ".sqlite").read_text() == "not a store\n"


@pytest.mark.parametrize("paths", [["--out", "x.png", "--plot", "x.png"],
                                   ["--out", "t.csv", "--store", "f.png", "--plot", "f.png"]])
def test_out_and_plot_must_differ(tmp_path, capsys, paths):
    argv = ["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0"]
    argv += [str(tmp_path / v) if not v.startswith("--") else v for v in paths]
    assert _status(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "same file" in err
    assert list(tmp_path.iterdir()) == []


def test_law_output_paths_are_checked_before_the_sweep(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["--out", ""], "--out: expected a file name"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", str(afile / "t.csv")], "is a file, not a folder"),
        (["--out", str(tmp_path / "t.csv"), "--plot", str(afile / "p.png")], "is a file, not a folder"),
        (["--out", str(tmp_path / "t.parquet")], "not a .parquet file"),
    ]
    for extra, message in cases:
        t0 = time.perf_counter()
        assert _status(["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)
        assert time.perf_counter() - t0 < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_workers_above_the_cpu_count_are_capped_with_a_notice(tmp_path, capsys):
    cpus = os.cpu_count() or 1
    argv = ["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0", *QUICK, "--workers", str(cpus + 5),
            "--out", str(tmp_path / "w.db")]
    assert _status(argv) == 0
    err = capsys.readouterr().err
    assert f"--workers {cpus + 5} capped at {cpus}" in err
