"""Failure classes, the identifiability probe and the table version that added them (rftheory.experiments).

Cells here are small (n ≤ 4, d ≤ 12) and their attacks capped, so the file stays cheap.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rftheory.attack.loss import projection_loss
from rftheory.attack.options import AttackOptions
from rftheory.attack.reconstruct import reconstruct
from rftheory.data.synthetic import synthetic_sphere
from rftheory.experiments.cells import (COLUMN_NAMES, FAILURE_CLASSES, KEY_COLUMNS, SCHEMA_BEFORE_PROBE,
                                        TIMING_COLUMNS, CellConfig, check_probe_angles, failure_class, make_grid,
                                        probe_options, rotated_start, run_cell, run_probe, upgrade_row)
from rftheory.experiments.critical import critical_ratio, summarize
from rftheory.experiments.law import sweep
from rftheory.experiments.store import SweepStore
from rftheory.experiments.table import is_table, read_table
from rftheory.models.random_features import RandomFeatures

from test_law_outputs import legacy_csv, legacy_store  # tests/experiments is on sys.path (rootdir imports)
from conftest import assert_one_line_cli_error

SHORT = AttackOptions(restarts=1, max_iter=300)  # enough for these small cells
CRIPPLED = AttackOptions(restarts=1, max_iter=1, strategy="restarts", reseed=False)
PROBE_COLUMNS = tuple(c for c in COLUMN_NAMES if c.startswith("probe") and not c.endswith("_angle"))


def _data_and_model(cell):
    ds = synthetic_sphere(cell.n, cell.d, seed=cell.seed, noise=cell.noise)
    model = RandomFeatures(cell.p, cell.d, cell.activation, seed=cell.seed + 1000, dtype=np.float64).fit(ds.X, ds.y)
    return ds, model


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("status, success, loss, true_loss, expected", [
    ("no_interpolation", False, math.nan, math.nan, "no_attack"),
    ("singular_gram", False, math.nan, math.nan, "no_attack"),
    ("ok", True, 1e-3, 1e-30, "recovered"),  # recovery is judged by the error, not the loss
    ("ok", True, 1e-3, 1e-3, "recovered"),
    ("ok", False, 1e-12, 1e-30, "not_identifiable"),
    ("ok", False, 1e-10, 1e-30, "not_identifiable"),  # at tol counts as at tol
    ("ok", False, 2e-10, 1e-30, "optimiser"),
    ("diverged", False, math.nan, 1e-30, "optimiser"),  # a diverged attack did not reach the truth's loss
    ("ok", False, 1e-12, 2e-10, "truth_not_zero"),  # never folded into another class
    ("ok", False, 1e-3, math.nan, "truth_not_zero"),
])
def test_failure_class_rule(status, success, loss, true_loss, expected):
    assert failure_class(status, success, loss, true_loss, tol=1e-10) == expected
    assert expected in FAILURE_CLASSES


def test_a_wrong_zero_below_the_counting_limit_is_not_identifiable():
    cell = CellConfig("relu+tanh", n=3, d=12, ratio=0.5, seed=0, attack=SHORT)
    assert cell.p <= cell.n * cell.d  # p = 18 ≤ nd = 36: wrong zeros exist by counting on the sphere
    row = run_cell(cell)
    ds, model = _data_and_model(cell)
    assert row["true_loss"] == projection_loss(ds.X, model.theta, model, with_grad=False).loss
    assert row["true_loss"] <= cell.attack.tol and row["loss"] <= cell.attack.tol and row["loss_at_tol"]
    assert not row["success"] and row["recovered_fraction"] < 1
    assert row["failure_class"] == "not_identifiable"


def test_a_crippled_optimiser_is_classed_optimiser():
    cell = CellConfig("relu+tanh", n=3, d=6, ratio=4.0, seed=0, attack=CRIPPLED)
    row = run_cell(cell)
    assert row["iterations"] <= 1 and row["loss"] > cell.attack.tol and row["true_loss"] <= cell.attack.tol
    assert row["failure_class"] == "optimiser"
    assert row["probe1_class"] == "optimiser"  # the probe runs the same crippled optimiser
    # the same cell with a working optimiser is recovered: the failure was the optimiser's
    assert run_cell(dataclasses.replace(cell, attack=SHORT))["failure_class"] == "recovered"


def test_a_truth_above_tol_is_flagged_not_classed():
    # tol = 0 asks for an exact zero, which the true data's float64 loss does not give
    row = run_cell(CellConfig("relu+tanh", n=3, d=6, ratio=0.5, seed=0, attack=CRIPPLED.replace(tol=0.0)))
    assert row["true_loss"] > 0 and not row["success"]
    assert row["failure_class"] == "truth_not_zero"


# --------------------------------------------------------------------------- the probe


def test_rotated_start_moves_every_row_by_the_angle_on_its_sphere():
    X = synthetic_sphere(5, 7, seed=3).X
    for angle in (30.0, 60.0, 90.0):
        Y = rotated_start(X, angle, seed=3)
        np.testing.assert_allclose(np.linalg.norm(Y, axis=1), np.sqrt(7), rtol=1e-13)
        cos = np.sum(X * Y, axis=1) / 7
        np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cos, -1, 1))), angle, atol=1e-6)
    # one great circle per row for every angle: x(60°) lies in span{x, x(30°)}
    Y30, Y60 = rotated_start(X, 30.0, 3), rotated_start(X, 60.0, 3)
    for x, y30, y60 in zip(X, Y30, Y60):
        B = np.linalg.qr(np.stack([x, y30], axis=1))[0]
        assert np.linalg.norm(y60 - B @ (B.T @ y60)) < 1e-12 * np.linalg.norm(y60)
    np.testing.assert_array_equal(rotated_start(X, 30.0, 3), Y30)  # seeded
    assert not np.array_equal(rotated_start(X, 30.0, 4), Y30)


def test_probe_is_the_attacks_local_optimiser_from_the_rotated_truth():
    opts = probe_options(AttackOptions(seed=5))
    assert (opts.restarts, opts.strategy, opts.reseed, opts.batch_restarts) == (1, "restarts", False, False)
    assert (opts.optimizer, opts.max_iter, opts.tol, opts.dtype) == ("lbfgs", 3000, 1e-10, "float32")
    cell = CellConfig("relu+tanh", n=3, d=8, ratio=2.0, seed=5, attack=SHORT)
    ds, model = _data_and_model(cell)
    pr = run_probe(model.theta, model, ds.X, 30.0, cell.attack, cell.threshold, cell.seed)
    res = reconstruct(model.theta, model, 3, probe_options(cell.attack), init=rotated_start(ds.X, 30.0, 5))
    assert pr["loss"] == res.loss and pr["iterations"] == res.iterations
    row = run_cell(cell)
    assert (row["probe1_loss"], row["probe1_iterations"], row["probe1_success"]) == \
        (pr["loss"], pr["iterations"], pr["success"])


@pytest.mark.parametrize("seed", [0, 1])
def test_probe_succeeds_at_a_large_ratio_and_fails_below_one(seed):
    above = run_cell(CellConfig("relu+tanh", n=4, d=12, ratio=4.0, seed=seed, attack=SHORT))
    assert above["probe1_success"] and above["probe2_success"]
    assert above["probe1_recovered_fraction"] == 1.0 and above["probe1_class"] == "recovered"
    below = run_cell(CellConfig("relu+tanh", n=4, d=12, ratio=0.5, seed=seed, attack=SHORT))
    for k in (1, 2):
        assert not below[f"probe{k}_success"] and below[f"probe{k}_recovered_fraction"] < 1
    # from 30° the local optimiser stops at a wrong zero: a witness of non-identifiability
    assert below["probe1_class"] == "not_identifiable" and below["probe1_loss"] <= SHORT.tol


def test_the_probes_do_not_change_the_attack():
    cell = CellConfig("relu+tanh", n=3, d=6, ratio=1.5, seed=2, attack=SHORT)
    with_probe, without = run_cell(cell), run_cell(dataclasses.replace(cell, probe_angles=()))
    skip = set(TIMING_COLUMNS) | set(PROBE_COLUMNS) | {"probe1_angle", "probe2_angle"}
    same = [c for c in COLUMN_NAMES if c not in skip]
    assert {c: with_probe[c] for c in same} == {c: without[c] for c in same}
    assert (without["probe1_angle"], without["probe2_angle"]) == (0.0, 0.0)
    assert not without["probe1_success"] and math.isnan(without["probe1_loss"])
    assert without["probe1_class"] == "no_attack"


def test_probe_angles_are_checked_and_part_of_the_key():
    assert check_probe_angles(None) == () and check_probe_angles(45) == (45.0,)
    assert CellConfig("relu", n=2, d=3, ratio=1.0, seed=0).probe_angles == (30.0, 60.0)
    for bad in ((0,), (90.5,), (float("nan"),), (10, 20, 30), (30, 30), (True,), ("30",)):
        with pytest.raises(ValueError):
            check_probe_angles(bad)
    with pytest.raises(ValueError, match="at most 2"):
        make_grid(sizes=[(2, 3)], ratios=[1.0], seeds=[0], probe_angles=(10, 20, 30))
    a, b = (make_grid(sizes=[(2, 3)], ratios=[1.0], seeds=[0], probe_angles=angles)[0] for angles in ((30,), (45,)))
    assert a.key() != b.key() and {"probe1_angle", "probe2_angle"} <= set(KEY_COLUMNS)
    assert CellConfig.from_columns(a.columns()) == a


# --------------------------------------------------------------------------- critical ratios and summaries


def _probe_rows(pattern_attack, pattern_probe, angle=30.0):
    rows = []
    for r, (att, prb) in zip((0.5, 1.0, 2.0, 4.0), zip(pattern_attack, pattern_probe)):
        for s in range(3):
            rows.append(dict(activation="a", n=2, d=3, outputs=1, ratio=r, seed=s, success=bool(att[s]),
                             probe1_angle=angle, probe1_success=bool(prb[s]), probe2_angle=0.0, probe2_success=False))
    return rows


def test_critical_ratio_of_the_probe():
    # the probe succeeds from r = 1 on, the attack from r = 4 on: two separated grids
    rows = _probe_rows([[0] * 3, [0] * 3, [0] * 3, [1] * 3], [[0] * 3, [1] * 3, [1] * 3, [1] * 3])
    (att,) = critical_ratio(rows, n_boot=20)
    (prb,) = critical_ratio(rows, n_boot=20, outcome="probe1")
    assert (att.low, att.high) == (2.0, 4.0) and (prb.low, prb.high) == (0.5, 1.0)
    assert att.outcome == "attack" and att.label == "attack" and math.isnan(att.angle)
    assert prb.outcome == "probe1" and prb.angle == 30.0 and prb.label == "probe 30°"
    assert critical_ratio(rows, outcome="probe2") == []  # slot 2 unused (angle 0): no rows
    with pytest.raises(ValueError, match="outcome"):
        critical_ratio(rows, outcome="probe3")


def test_summarize_counts_the_classes():
    rows = [run_cell(CellConfig("relu+tanh", n=3, d=6, ratio=r, seed=s, attack=SHORT))
            for r in (0.5, 0.1) for s in (0, 1)]
    by_ratio = {s["ratio"]: s for s in summarize(rows)}
    assert by_ratio[0.5]["classes"] == {"not_identifiable": 2}
    assert by_ratio[0.1]["classes"] == {"no_attack": 2}  # p = 2 < n = 3
    assert by_ratio[0.5]["probe1_angle"] == 30.0 and by_ratio[0.5]["probe1_success_rate"] == 0.0
    assert sum(by_ratio[0.5]["probe1_classes"].values()) == 2


# --------------------------------------------------------------------------- the table before the probe


def test_store_and_csv_before_the_probe_are_migrated(tmp_path):
    cells = [CellConfig("relu+tanh", n=2, d=3, ratio=r, seed=0, probe_angles=(), attack=SHORT)
             for r in (0.1, 0.5, 4.0)]
    rows = [run_cell(c) for c in cells]
    assert [r["failure_class"] for r in rows] == ["no_attack", "not_identifiable", "recovered"]
    expected = ["no_attack", "unclassified", "recovered"]  # the old rows had no true loss

    path = tmp_path / "before_probe.sqlite"
    legacy_store(path, rows, SCHEMA_BEFORE_PROBE)
    with SweepStore(path) as db:
        assert db.migrated
        got = sorted(db.rows(), key=lambda r: r["ratio"])
    with SweepStore(path) as db:
        assert not db.migrated  # once
    csv = tmp_path / "before_probe.csv"
    legacy_csv(csv, rows, SCHEMA_BEFORE_PROBE)
    assert is_table(csv)
    for table in (got, read_table(csv)):
        assert tuple(table[0]) == COLUMN_NAMES
        assert [r["failure_class"] for r in table] == expected
        assert [r["loss_at_tol"] for r in table] == [r["loss_at_tol"] for r in rows]  # was "converged"
        assert all(r["probe1_angle"] == r["probe2_angle"] == 0.0 and math.isnan(r["true_loss"]) for r in table)
        assert [r["loss"] for r in table][1:] == [r["loss"] for r in rows][1:]
    assert upgrade_row({**rows[2], "converged": True}) == upgrade_row(dict(rows[2]))  # current rows pass through
    # a sweep of the same cells resumes them (their probe angles are 0), with a warning
    path2 = tmp_path / "again.sqlite"
    legacy_store(path2, rows, SCHEMA_BEFORE_PROBE)
    with pytest.warns(UserWarning, match="migrated"):
        res = sweep(sizes=[(2, 3)], ratios=[0.1, 0.5, 4.0], seeds=[0], attack=SHORT, probe_angles=(),
                    out=path2, workers=1)
    assert res.resumed == 3 and res.computed == 0


# --------------------------------------------------------------------------- the command


def test_cli_law_prints_both_critical_ratios_and_the_classes(tmp_path, capsys):
    from rftheory.cli import main

    base = ["law", "--sizes", "3x6", "--ratios", "0.5", "4", "--seeds", "0", "1", "--restarts", "1",
            "--max-iter", "300", "--workers", "1", "--n-boot", "20", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "a.csv")]) == 0
    text = capsys.readouterr().out
    assert "attack: cells per class" in text and "probe 30° (local optimiser" in text
    for label in ("attack", "probe 30°", "probe 60°"):
        assert f"      {label:<10} " in text  # a critical ratio (or why none) for each
    assert "WARNING" not in text
    rows = read_table(tmp_path / "a.csv")
    assert {r["failure_class"] for r in rows} <= set(FAILURE_CLASSES) and all(r["probe1_angle"] == 30 for r in rows)

    assert main(base + ["--probe-angles", "--out", str(tmp_path / "b.csv")]) == 0
    text = capsys.readouterr().out
    assert "probe       none" in text and "probe 30°" not in text
    assert all(r["probe1_angle"] == 0 for r in read_table(tmp_path / "b.csv"))

    assert main(base + ["--tol", "0", "--max-iter", "2", "--out", str(tmp_path / "c.csv")]) == 0
    assert "WARNING" in capsys.readouterr().out  # the truth's loss above tol is said, not hidden


@pytest.mark.parametrize("angles, msg", [(["10", "20", "30"], "at most 2"), (["0"], "--probe-angles")])
def test_cli_law_refuses_bad_probe_angles(angles, msg, tmp_path, capsys):
    assert_one_line_cli_error(["law", "--sizes", "2x3", "--ratios", "1", "--seeds", "0", "--probe-angles", *angles],
                              msg, tmp_path / "x.csv", capsys)


def test_probe_at_d_1_is_a_stated_failure_not_a_nan_start():
    """At d = 1 the sphere is {−1, +1}: no row can be rotated, so rotated_start refuses and the probe
    reports a failure with NaN loss (a law sweep over a 1×1 shape still runs)."""
    X = np.ones((2, 1))
    with pytest.raises(ValueError, match="d = 1"):
        rotated_start(X, 30.0, seed=0)
    ds = synthetic_sphere(1, 1, seed=0)
    from rftheory.models.random_features import RandomFeatures

    model = RandomFeatures(3, 1, "relu+tanh", seed=1000, dtype=np.float64).fit(ds.X, ds.y)
    out = run_probe(model.theta, model, ds.X, 30.0, AttackOptions(), 0.05, 0)
    assert out["success"] is False and math.isnan(out["loss"])
