"""Tests of rftheory.experiments.law (phase-diagram sweeps), rftheory.experiments.plots and `rftheory law`.

The sweeps here use a tiny grid (n ≤ 3, d = 4, a few ratios, two seeds, few
iterations) so that the file stays cheap; the physics of the default grid is
exercised by the default command, not by the tests.
"""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize

import rftheory
from rftheory.data.synthetic import synthetic_sphere
from rftheory.attack.options import AttackOptions
from rftheory.experiments.law import (
    ATTACK_COLUMNS,
    COLUMN_NAMES,
    K_MAX,
    KEY_COLUMNS,
    TIMING_COLUMNS,
    CellConfig,
    critical_ratio,
    make_grid,
    merge_tables,
    read_table,
    regime,
    run_cell,
    summarize,
    sweep,
)
from rftheory.attack.metrics import reconstruction_errors
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import reconstruct
from conftest import assert_one_line_cli_error

TINY = dict(sizes=[(2, 4), (3, 4)], ratios=[0.2, 0.5, 3.0], seeds=[0, 1], restarts=2, max_iter=150)
N_TINY = 2 * 3 * 2


def _strip(rows):
    """Rows without the timing columns, NaN replaced by a sentinel so == works."""
    out = []
    for r in rows:
        out.append({k: ("NaN" if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in r.items() if k not in TIMING_COLUMNS})
    return out


def _keys(rows):
    return [tuple(r[k] for k in KEY_COLUMNS) for r in rows]


@pytest.fixture(scope="module")
def tiny_serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("law") / "serial.csv"
    return sweep(**TINY, out=out, workers=1)


# --------------------------------------------------------------------------- grid


def test_make_grid_sizes_product_and_order():
    cells = make_grid(["relu+tanh", "tanh"], n=[2, 3], d=[4, 5], ratios=[1, 0.5, 1.0], seeds=[1, 0])
    # product of n and d, duplicates (1 and 1.0) removed, grid order kept
    assert len(cells) == 2 * 4 * 2 * 2
    assert [(c.n, c.d) for c in cells[:8:2]] == [(2, 4), (2, 4), (2, 5), (2, 5)]
    assert {c.ratio for c in cells} == {1.0, 0.5}
    assert all(isinstance(c.ratio, float) for c in cells)
    assert cells[0].seed == 1 and cells[1].seed == 0
    c = CellConfig("relu", n=4, d=8, ratio=1.5, seed=0)
    assert c.p == round(1.5 * 8 * 4) == 48
    assert CellConfig("relu", n=2, d=3, ratio=0.01, seed=0).p == 1  # never zero features


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activations=["no_such_sigma"]), "activation|unknown"),
        (dict(ratios=[0.0]), "ratio"),
        (dict(ratios=[float("inf")]), "ratio"),
        (dict(seeds=[-1]), "seed"),
        (dict(sizes=[(0, 3)]), "n must"),
        (dict(sizes=[(2,)]), "pairs"),
        (dict(n=[2]), "both n and d"),
        (dict(restarts=0), "restarts"),
        (dict(optimizer="adam"), "optimizer"),
        (dict(ratios=[]), "empty"),
    ],
)
def test_make_grid_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_grid(**kwargs)


def test_make_grid_rejects_unknown_option():
    with pytest.raises(TypeError, match="unknown cell option"):
        make_grid(learning_rate=0.1)


def test_regime_boundaries():
    # p < n: no interpolation; n ≤ p < dn: not identifiable; p ≥ dn: reconstruction
    assert regime(4, 8, 3) == "p<n"
    assert regime(4, 8, 4) == "n<=p<dn"
    assert regime(4, 8, 31) == "n<=p<dn"
    assert regime(4, 8, 32) == "p>=dn"


def test_cell_attack_defaults_are_attack_options_defaults():
    cell = CellConfig("relu", n=4, d=8, ratio=1.5, seed=7)
    assert cell.attack == AttackOptions(seed=7)  # reconstruct's defaults, the cell's seed
    (grid_cell,) = make_grid(["relu"], sizes=[(4, 8)], ratios=[1.5], seeds=[7])
    assert grid_cell == cell
    # the settings are table columns, every AttackOptions field but the seed (recorded as attack_seed)
    assert set(ATTACK_COLUMNS) == {f.name for f in dataclasses.fields(AttackOptions)} - {"seed"}
    assert set(ATTACK_COLUMNS) <= set(KEY_COLUMNS) <= set(COLUMN_NAMES)
    assert CellConfig.from_columns(cell.columns()) == cell


def test_make_grid_takes_a_record_and_overrides():
    base = AttackOptions(restarts=2, dtype="float64", seed=99)
    cells = make_grid(["relu"], sizes=[(2, 4)], ratios=[1.0], seeds=[0, 3], attack=base, max_iter=40)
    assert [c.attack for c in cells] == [base.replace(max_iter=40, seed=0), base.replace(max_iter=40, seed=3)]
    with pytest.raises(TypeError, match="unknown cell option"):
        make_grid(seed=1)  # the seeds are the grid's
    with pytest.raises(ValueError, match="dtype"):
        make_grid(dtype="float16")


# --------------------------------------------------------------------------- one cell


@pytest.mark.parametrize("options", [AttackOptions(), AttackOptions(restarts=2, max_iter=200, dtype="float64",
                                                                    reseed=False, stop_at_tol=False)])
def test_cell_is_a_reconstruct_call_with_its_options(options):
    # a law cell is the run reconstruct(θ, model, n, options) with the same record and seed, bit for bit
    cell = CellConfig("relu+tanh", n=3, d=4, ratio=1.5, seed=2, attack=options)
    row = run_cell(cell)
    ds = synthetic_sphere(3, 4, seed=2, noise=0.1)
    model = RandomFeatures(cell.p, 4, "relu+tanh", seed=2 + 1000, dtype=np.float64).fit(ds.X, ds.y)
    res = reconstruct(model.theta, model, 3, cell.attack)
    assert row["status"] == "ok"
    assert row["loss"] == res.loss and row["iterations"] == res.iterations and row["reseeds"] == res.reseeds
    assert row["restart_losses"] == ";".join(repr(float(v)) for v in res.restarts)
    assert all(row[k] == getattr(options, k) for k in ATTACK_COLUMNS) and row["attack_seed"] == 2



def test_run_cell_is_the_documented_pipeline():
    cfg = CellConfig("relu+tanh", n=3, d=4, ratio=2.0, seed=5, attack=AttackOptions(restarts=2, max_iter=150),
                     threshold=0.05)
    row = run_cell(cfg)
    assert tuple(row) == COLUMN_NAMES
    # independent re-run of the pipeline the docstring specifies
    ds = synthetic_sphere(3, 4, seed=5, noise=0.1)
    p = round(2.0 * 4 * 3)
    model = RandomFeatures(p, 4, "relu+tanh", seed=5 + 1000).fit(ds.X, ds.y)
    res = reconstruct(model.theta, model, 3, restarts=2, max_iter=150, tol=1e-10, seed=5)
    errs = reconstruction_errors(ds.X, res.X_hat, 0.05)
    assert row["p"] == p and row["model_seed"] == 1005 and row["data_seed"] == 5 and row["attack_seed"] == 5
    assert row["loss"] == res.loss
    assert row["iterations"] == res.iterations
    assert row["train_residual"] == model.train_residual
    assert row["sign_aware_max"] == errs.sign_aware.max()
    assert row["signed_mean"] == errs.signed.mean()
    assert row["recovered_fraction"] == errs.recovered_fraction
    # success is "every sample recovered", judged by the sign-aware error, not the loss
    assert row["success"] == bool(np.all(errs.sign_aware <= 0.05))
    assert row["regime"] == "p>=dn" and row["status"] == "ok"
    assert row["version"] == rftheory.__version__
    assert row["restart_losses"].split(";")[0] == repr(res.restarts[0])
    assert row["wall_time"] >= row["attack_time"] > 0


def test_run_cell_below_interpolation_threshold():
    row = run_cell(CellConfig("relu+tanh", n=3, d=4, ratio=0.1, seed=0))  # p = 1 < n = 3
    assert row["p"] == 1 and row["regime"] == "p<n"
    assert row["status"] == "no_interpolation" and row["success"] is False
    assert math.isnan(row["loss"]) and math.isnan(row["recovered_fraction"]) and row["iterations"] == 0


def test_zero_loss_without_identifiability():
    # p = n: Φ̂ is square, so any X̂ reaches L ≈ 0, yet nothing is recovered
    row = run_cell(CellConfig("relu+tanh", n=2, d=4, ratio=0.25, seed=0, attack=AttackOptions(restarts=1, max_iter=50)))
    assert row["p"] == 2 and row["regime"] == "n<=p<dn"
    assert row["loss"] < 1e-20
    assert row["success"] is False and row["recovered_fraction"] < 1


# --------------------------------------------------------------------------- sweeps


def test_sweep_table_round_trips_and_is_sorted(tiny_serial):
    res = tiny_serial
    assert res.computed == N_TINY and res.resumed == 0 and len(res.rows) == N_TINY
    on_disk = read_table(res.out)
    assert _strip(on_disk) == _strip(res.rows)  # grid order == sorted order here; floats exact
    assert [r["wall_time"] for r in on_disk] == [r["wall_time"] for r in res.rows]
    assert all(r["version"] == rftheory.__version__ for r in on_disk)
    statuses = {(r["n"], r["ratio"]): r["status"] for r in on_disk}
    assert statuses[(3, 0.2)] == "no_interpolation" and statuses[(2, 0.2)] == "ok"


def test_same_seed_gives_identical_table(tiny_serial, tmp_path):
    again = sweep(**TINY, out=tmp_path / "again.csv", workers=1)
    assert _strip(again.rows) == _strip(tiny_serial.rows)
    # the files too, apart from the timing columns
    a, b = read_table(tiny_serial.out), read_table(tmp_path / "again.csv")
    assert _strip(a) == _strip(b)


def test_different_seed_changes_the_table(tiny_serial):
    other = sweep(**{**TINY, "seeds": [2, 3]}, workers=1)
    assert [r["loss"] for r in other.rows if r["status"] == "ok"] != \
        [r["loss"] for r in tiny_serial.rows if r["status"] == "ok"]


def test_interrupted_sweep_resumes_only_missing_cells(tiny_serial, tmp_path):
    out = tmp_path / "resume.csv"
    first = []

    def stop_after_five(row):
        first.append(row)
        if len(first) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(**TINY, out=out, workers=1, callback=stop_after_five)
    kept = read_table(out)
    assert _strip(kept) == _strip(first)  # every finished cell is on disk, nothing else

    second, starts = [], []
    res = sweep(**TINY, out=out, workers=1, callback=second.append, on_start=lambda todo, done: starts.append((todo, done)))
    assert starts == [(N_TINY - 5, 5)]
    assert res.computed == N_TINY - 5 and res.resumed == 5
    assert set(_keys(second)).isdisjoint(_keys(first))
    assert set(_keys(second)) | set(_keys(first)) == set(_keys(tiny_serial.rows))
    # the resumed table equals an uninterrupted run
    assert _strip(res.rows) == _strip(tiny_serial.rows)
    assert _strip(read_table(out)) == _strip(tiny_serial.rows)
    # a third run has nothing to do
    third = sweep(**TINY, out=out, workers=1, callback=lambda row: pytest.fail("cell recomputed"))
    assert third.computed == 0 and third.resumed == N_TINY


def test_partial_last_line_is_dropped_on_resume(tiny_serial, tmp_path):
    out = tmp_path / "cut.csv"
    text = tiny_serial.out.read_text()
    lines = text.splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])  # header, 3 rows, half a row
    assert len(read_table(out)) == 3
    res = sweep(**TINY, out=out, workers=1)
    assert res.resumed == 3 and res.computed == N_TINY - 3
    assert _strip(read_table(out)) == _strip(tiny_serial.rows)


def test_rows_of_other_configurations_are_kept(tiny_serial, tmp_path):
    out = tmp_path / "merged.csv"
    out.write_text(tiny_serial.out.read_text())
    res = sweep(**{**TINY, "restarts": 1, "sizes": [(2, 4)], "ratios": [0.5]}, out=out, workers=1)
    assert res.computed == 2 and res.resumed == 0  # restarts is part of the configuration
    assert len(read_table(out)) == N_TINY + 2


def test_merge_tables(tiny_serial, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    sweep(**{**TINY, "seeds": [0]}, out=a, workers=1)
    sweep(**{**TINY, "seeds": [1]}, out=b, workers=1)
    rows = merge_tables([a, b], tmp_path / "all.csv")
    assert _strip(rows) == _strip(tiny_serial.rows)
    assert _strip(read_table(tmp_path / "all.csv")) == _strip(tiny_serial.rows)


def test_read_table_rejects_foreign_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a sweep table"):
        read_table(bad)
    with pytest.raises(ValueError, match="not a sweep table"):
        sweep(**TINY, out=bad, workers=1)


def test_process_pool_equals_serial(tiny_serial, tmp_path):
    res = sweep(**TINY, out=tmp_path / "pool.csv", workers=2)
    assert res.computed == N_TINY
    assert _strip(res.rows) == _strip(tiny_serial.rows)
    assert _strip(read_table(tmp_path / "pool.csv")) == _strip(tiny_serial.rows)


def test_dask_local_cluster_equals_local_run(tiny_serial, tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        res = sweep(**TINY, out=tmp_path / "dask.csv", scheduler=cluster.scheduler_address)
    assert res.computed == N_TINY
    assert _strip(res.rows) == _strip(tiny_serial.rows)  # cell for cell
    assert _strip(read_table(tmp_path / "dask.csv")) == _strip(tiny_serial.rows)


def test_parquet_copy_when_pyarrow_is_installed(tiny_serial, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")
    res = sweep(**TINY, out=tmp_path / "t.csv", workers=1)
    table = pq.read_table(res.parquet).to_pylist()
    assert _strip(table) == _strip(read_table(tmp_path / "t.csv"))


# --------------------------------------------------------------------------- analysis


def test_summarize_counts_and_success_rate(tiny_serial):
    summ = summarize(tiny_serial.rows)
    assert len(summ) == 2 * 3
    for s in summ:
        cells = [r for r in tiny_serial.rows if (r["n"], r["d"], r["ratio"]) == (s["n"], s["d"], s["ratio"])]
        assert s["cells"] == len(cells) == 2
        assert s["success_rate"] == sum(r["success"] for r in cells) / 2
        assert s["p"] == cells[0]["p"]


def _synthetic_rows(ratios, seeds, prob, rng, sizes=((4, 8),)):
    rows = []
    for n, d in sizes:
        for s in seeds:
            for r in ratios:
                rows.append(dict(activation="relu+tanh", n=n, d=d, ratio=r, seed=s, success=bool(rng.random() < prob(r))))
    return rows


def test_interpolated_crossing_hand_computed():
    # success rates 0, 1/4, 3/4, 1 at r = 1/2, 1, 2, 4: P crosses 1/2 halfway
    # between ln 1 and ln 2, so r_c = √2 exactly
    pattern = {0.5: [0, 0, 0, 0], 1.0: [1, 0, 0, 0], 2.0: [1, 1, 1, 0], 4.0: [1, 1, 1, 1]}
    rows = [dict(activation="a", n=2, d=3, ratio=r, seed=s, success=bool(v))
            for r, vals in pattern.items() for s, v in enumerate(vals)]
    (cr,) = critical_ratio(rows, method="interpolate", n_boot=200)
    assert cr.estimate == pytest.approx(math.sqrt(2), rel=1e-12)
    assert cr.low <= cr.estimate <= cr.high
    assert 0.5 <= cr.low and cr.high <= 4.0


def test_logistic_fit_matches_a_generic_optimiser():
    rng = np.random.default_rng(3)
    ratios = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
    rows = _synthetic_rows(ratios, range(30), lambda r: 1 / (1 + math.exp(-3 * (math.log(r) - math.log(1.3)))), rng)
    (cr,) = critical_ratio(rows, n_boot=0)
    x = np.log([r["ratio"] for r in rows])
    y = np.array([float(r["success"]) for r in rows])

    def nll(theta):
        z = theta[1] * (x - theta[0])
        return np.sum(np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y))

    ref = minimize(nll, [0.0, 1.0], method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-12, maxiter=5000))
    assert 0 < ref.x[1] < K_MAX  # interior optimum: the bound is inactive
    assert math.log(cr.estimate) == pytest.approx(ref.x[0], abs=1e-6)
    assert cr.slope == pytest.approx(ref.x[1], rel=1e-5)


def test_logistic_bootstrap_covers_the_true_threshold():
    rng = np.random.default_rng(11)
    ratios = [0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0]
    r_true = 1.4

    def prob(r):
        return 1 / (1 + math.exp(-4 * (math.log(r) - math.log(r_true))))

    rows = _synthetic_rows(ratios, range(40), prob, rng, sizes=((4, 8), (6, 10)))
    (cr,) = critical_ratio(rows, n_boot=300, seed=1)
    assert cr.low < r_true < cr.high
    assert cr.high / cr.low < 1.6  # 560 cells locate it to within a fraction of the grid
    assert cr.n_boot_valid == 300 and cr.seeds == 40 and cr.sizes == ((4, 8), (6, 10))
    per = critical_ratio(rows, n_boot=50, per_size=True)
    assert [c.sizes for c in per] == [((4, 8),), ((6, 10),)]


def test_separated_grid_gives_the_gap():
    # every cell fails at r ≤ 1 and succeeds at r ≥ 2; the configuration is
    # symmetric about ln √2, so the bounded-slope ML estimate is √2
    rows = [dict(activation="a", n=2, d=3, ratio=r, seed=s, success=r > 1.5)
            for r in (0.5, 1.0, 2.0, 4.0) for s in range(3)]
    for method in ("logistic", "interpolate"):
        (cr,) = critical_ratio(rows, method=method, n_boot=100)
        assert cr.estimate == pytest.approx(math.sqrt(2), rel=1e-6)
        assert (cr.low, cr.high) == (1.0, 2.0)
        assert "gap" in cr.note
    assert critical_ratio(rows, n_boot=0)[0].slope == K_MAX


def test_no_transition_gives_nan_with_a_reason():
    rows = [dict(activation="a", n=2, d=3, ratio=r, seed=s, success=True) for r in (1.0, 2.0) for s in range(3)]
    (cr,) = critical_ratio(rows)
    assert math.isnan(cr.estimate) and math.isnan(cr.low) and "below the grid" in cr.note
    rows = [dict(r, success=False) for r in rows]
    assert "above the grid" in critical_ratio(rows)[0].note


def test_reversed_transition_gives_no_estimate():
    # successes below failures: the bounded slope k ≥ 0 is 0 at the optimum, so no r_c
    rows = [dict(activation="a", n=2, d=3, ratio=r, seed=s, success=r < 1.5 or (r == 2.0 and s == 0))
            for r in (0.5, 1.0, 2.0, 4.0) for s in range(3)]
    (cr,) = critical_ratio(rows, n_boot=20)
    assert math.isnan(cr.estimate) and math.isnan(cr.low) and "does not cross" in cr.note


def test_bootstrap_is_deterministic():
    rng = np.random.default_rng(5)
    rows = _synthetic_rows([0.5, 1, 2, 4], range(8), lambda r: 0.5 if r == 1 else float(r > 1), rng)
    a = critical_ratio(rows, n_boot=200, seed=7)
    b = critical_ratio(rows, n_boot=200, seed=7)
    assert a == b
    with pytest.raises(ValueError, match="method"):
        critical_ratio(rows, method="probit")


# --------------------------------------------------------------------------- plot and CLI


def test_plot_module_imports_matplotlib_lazily():
    code = "import sys, rftheory.experiments.plots, rftheory.experiments.law; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_writes_png_and_svg(tiny_serial, tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    from rftheory.experiments.plots import plot_phase_diagram

    crs = critical_ratio(tiny_serial.rows, n_boot=20)
    path = tmp_path / f"law{suffix}"
    fig = plot_phase_diagram(tiny_serial.rows, path, critical=crs)
    assert path.read_bytes().startswith(magic)
    ax_s, ax_e, ax_c = fig.axes
    assert ax_s.get_xscale() == "log" and ax_e.get_yscale() == "log"
    from matplotlib.legend import Legend

    legends = [[t.get_text() for t in a.get_texts()] for a in ax_s.get_children() if isinstance(a, Legend)]
    assert ["n=2, d=4", "n=3, d=4"] in legends  # one colour per (n, d)
    # the styles: the attack, the probe at each angle, the counting limit
    assert ["attack", "probe 30°", "probe 60°", "counting 1/d + (d−1)/(dC)"] in legends
    with pytest.raises(ValueError, match="must end in"):
        plot_phase_diagram(tiny_serial.rows, tmp_path / "law.jpg")


def test_cli_law_runs_resumes_and_prints_the_critical_ratio(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from rftheory.cli import main

    out, png = tmp_path / "cli.csv", tmp_path / "cli.png"
    argv = ["law", "--sizes", "2x4", "--ratios", "0.5", "3", "--seeds", "0", "1", "--restarts", "1",
            "--max-iter", "100", "--workers", "1", "--n-boot", "50", "--out", str(out), "--plot", str(png),
            "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "critical p/(dn) for σ=relu+tanh" in text and "bootstrap interval" in text
    assert "4 to run, 0 resumed" in text
    assert png.read_bytes().startswith(b"\x89PNG") and len(read_table(out)) == 4
    assert main(argv) == 0
    assert "0 to run, 4 resumed" in capsys.readouterr().out


def test_cli_help_documents_every_option(capsys):
    from rftheory.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["law"]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 15, action.option_strings
    with pytest.raises(SystemExit):
        parser.parse_args(["law", "--help"])
    text = capsys.readouterr().out
    for opt in ("--scheduler", "--workers", "--out", "--plot", "--ratios", "--seeds", "--restarts"):
        assert opt in text


@pytest.mark.parametrize("argv, msg", [
    (["law", "--n", "3"], "both --n and --d"),
    (["law", "--plot", "x.jpg", "--sizes", "2x4", "--ratios", "1", "--seeds", "0"], "--plot must end"),
    (["law", "--activation", "nope"], "nope"),
])
def test_cli_bad_input_is_one_line_error(argv, msg, tmp_path, capsys):
    assert_one_line_cli_error(argv, msg, tmp_path / "x.csv", capsys)


@pytest.mark.slow
def test_default_grid_shows_the_transition(tmp_path):
    """The default grid: success at large p/(dn), none at p/(dn) ≤ 1/2; a shape with d ≥ 30; every failure
    classed (no true loss above tol); the probe's threshold below the attack's."""
    res = sweep(out=tmp_path / "default.csv")
    assert max(r["d"] for r in res.rows) >= 30
    by_ratio = {}
    for r in res.rows:
        by_ratio.setdefault(r["ratio"], []).append(r["success"])
    assert not any(by_ratio[0.5]) and not any(by_ratio[0.25])
    assert np.mean(by_ratio[8.0]) >= 0.9
    assert all(r["failure_class"] in ("not_identifiable", "no_attack") for r in res.rows if r["ratio"] <= 0.5)
    assert not any(r["failure_class"] == "truth_not_zero" for r in res.rows)
    (cr,) = critical_ratio(res.rows)
    assert 0.5 < cr.estimate < 8
    (probe,) = critical_ratio(res.rows, outcome="probe1")
    assert probe.angle == 30.0 and 0.5 < probe.estimate < cr.estimate
