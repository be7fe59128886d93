"""``outputs`` (C label columns) as an axis of the law sweep: cell key, store migration, counting curve."""
import sqlite3

import numpy as np
import pytest

from rftheory.experiments.cells import LEGACY_COLUMN_NAMES
from rftheory.experiments.law import (COLUMN_NAMES, KEY_COLUMNS, counting_ratio,
                                      critical_ratio, make_grid, read_table, run_cell, span_ratio, sweep)
from rftheory.experiments.store import SweepStore


def test_outputs_is_a_key_column_and_an_axis():
    assert "outputs" in KEY_COLUMNS and "outputs" in COLUMN_NAMES
    cells = make_grid(sizes=[(3, 4)], ratios=[1.0], seeds=[0], outputs=[1, 2])
    assert [c.outputs for c in cells] == [1, 2] and cells[0].key() != cells[1].key()
    with pytest.raises(ValueError):
        make_grid(sizes=[(3, 4)], ratios=[1.0], seeds=[0], outputs=[0])
    # counting on the sphere: p/(dn) > 1/d + (d − 1)/(dC); spurious span zeros up to p = n + d − 1
    assert counting_ratio(20, 1) == pytest.approx(1.0) and counting_ratio(20, 4) == pytest.approx(0.2875)
    assert span_ratio(12, 40) * 12 * 40 == pytest.approx(51)
    assert counting_ratio(40, 12) == pytest.approx(span_ratio(12, 40))  # C = n meets the span limit


def test_run_cell_with_outputs_trains_theta_matrix():
    row = run_cell(make_grid(sizes=[(3, 5)], ratios=[2.0], seeds=[0], outputs=[3], restarts=1)[0])
    assert row["outputs"] == 3 and row["status"] == "ok" and row["success"]


def legacy_row(row, names=LEGACY_COLUMN_NAMES):
    """A current row as an earlier table version wrote it (``loss_at_tol`` was ``converged``)."""
    old = {**row, "converged": row["loss_at_tol"]}
    return {c: old[c] for c in names}


def legacy_store(path, rows, names=LEGACY_COLUMN_NAMES):
    """A store of an earlier table version (column list ``names``) holding ``rows`` (current rows)."""
    con = sqlite3.connect(path)
    cols = ", ".join(f'"{c}"' for c in names)
    con.execute("CREATE TABLE rftheory_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO rftheory_store VALUES ('format', 'rftheory-law-store')")
    con.execute("INSERT INTO rftheory_store VALUES ('columns', ?)", (",".join(names),))
    con.execute(f"CREATE TABLE cells ({cols})")
    for r in rows:
        r = legacy_row(r, names)
        con.execute(f"INSERT INTO cells VALUES ({', '.join('?' for _ in names)})",
                    tuple(int(r[c]) if isinstance(r[c], bool) else r[c] for c in names))
    con.commit()
    con.close()


def legacy_csv(path, rows, names=LEGACY_COLUMN_NAMES):
    """A CSV export of an earlier table version: header ``names``, the rows' values in them."""
    from rftheory.experiments.table import _format

    lines = [",".join(names)] + [",".join(_format(legacy_row(r, names)[c]) for c in names) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_old_store_is_migrated_and_old_csv_read(tmp_path):
    row = run_cell(make_grid(sizes=[(2, 3)], ratios=[0.1], seeds=[0])[0])  # p < n: no attack, fast
    path = tmp_path / "old.sqlite"
    legacy_store(path, [row])
    with pytest.warns(UserWarning, match="migrated"):
        res = sweep(sizes=[(2, 3)], ratios=[0.1], seeds=[0], out=str(path), workers=1, probe_angles=())
    assert res.resumed == 1 and res.computed == 0 and res.rows[0]["outputs"] == 1
    with SweepStore(path) as db:
        assert not db.migrated and db.rows()[0]["outputs"] == 1
    csv = tmp_path / "old.csv"
    legacy_csv(csv, [row])
    assert read_table(csv)[0]["outputs"] == 1


def test_store_of_other_columns_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE rftheory_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO rftheory_store VALUES ('format', 'rftheory-law-store'), ('columns', 'a,b')")
    con.execute("CREATE TABLE cells (a, b)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="missing columns"):
        SweepStore(path)


def test_critical_ratio_per_output_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from rftheory.experiments.plots import plot_phase_diagram

    rows = []
    for C, rc in ((1, 1.2), (4, 0.4)):
        for r in (0.25, 0.5, 1.0, 2.0):
            for s in (0, 1):
                rows.append(dict(activation="relu+tanh", n=4, d=8, outputs=C, ratio=r, seed=s, p=int(r * 32),
                                 success=r > rc, regime="x", status="ok", recovered_fraction=1.0,
                                 sign_aware_mean=0.1, signed_mean=0.1, loss=1e-10, iterations=1, wall_time=0.1,
                                 threshold=0.05))
    crs = critical_ratio(rows, n_boot=50)
    assert [c.outputs for c in crs] == [1, 4] and crs[0].estimate > crs[1].estimate
    fig = plot_phase_diagram(rows, tmp_path / "law.png", critical=crs)
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert any("counting p = n + n(d−1)/C" in t for t in labels)
    assert any("span limit (n+d−1)/(dn)" in t for t in labels)
    ax_c = fig.axes[-1]  # the counting curve at C = 1 and C = 4, and the span limit, for d = 8, n = 4
    curve = next(line for line in ax_c.get_lines() if line.get_label().startswith("counting"))
    c, r = curve.get_data()
    assert np.interp([1.0, 4.0], c, r) == pytest.approx([1.0, 1 / 8 + 7 / 32], rel=1e-2)
    span = next(line for line in ax_c.get_lines() if line.get_label().startswith("span limit"))
    assert span.get_ydata()[0] == pytest.approx(11 / 32)
    assert (tmp_path / "law.png").stat().st_size > 0


def test_cli_law_outputs(tmp_path, capsys):
    from rftheory.cli import main

    out = tmp_path / "t.csv"
    assert main(["law", "--outputs", "1", "3", "--sizes", "3x4", "--ratios", "0.5", "2", "--seeds", "0",
                 "--restarts", "1", "--workers", "1", "--no-progress", "--out", str(out), "--n-boot", "10"]) == 0
    text = capsys.readouterr().out
    assert "C=1" in text and "C=3" in text
    # n = 3, d = 4: 1/d + (d − 1)/(dC) = 1 at C = 1 and 0.5 at C = 3, span limit (n + d − 1)/(dn) = 0.5
    assert "counting on the sphere: 1/d + (d − 1)/(dC) = 1 (p = n + n(d − 1)/C)" in text
    assert "counting on the sphere: 1/d + (d − 1)/(dC) = 0.5 (p = n + n(d − 1)/C)" in text
    assert "span limit (n + d − 1)/(dn) = 0.5" in text
    assert "C(p − n) > n(d − 1)" in text and "p ≥ n + d whatever C" in text
    assert sorted({r["outputs"] for r in read_table(out)}) == [1, 3]
    assert np.isfinite(counting_ratio(4, 3))
