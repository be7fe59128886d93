"""The law of data reconstruction as a phase diagram: sweeps over p/(dn).

The law (docs/design.md): in the random-features model f(x) = σ(Vx)ᵀθ, trained as
the minimum-norm interpolator θ = Φᵀ(ΦΦᵀ)⁻¹y, the training set X ∈ R^{n×d}
becomes identifiable from θ (and V, σ, n) once p ≳ d·n.  Three regimes in the
ratio r = p/(dn):

    p < n          (r < 1/d)        no interpolation: θ does not fit the labels;
    n ≤ p ≲ dn     (1/d ≤ r ≲ 1)    interpolation without identifiability: many
                                    wrong X̂ reach projection loss L = 0;
    p ≳ dn         (r ≳ 1)          reconstruction: L = 0 pins X̂ to ±X.

:func:`sweep` measures this on a grid of cells (activation σ, n, d, r, seed).
A cell is one complete experiment:

1. data      X, y = ``synthetic_sphere(n, d, seed=seed, noise=noise, outputs=C)``
             (rows on the √d-sphere, linear labels; C = ``outputs`` independent
             label columns, Y ∈ R^{n×C}, when C > 1);
2. model     ``RandomFeatures(p, d, σ, seed=seed + 1000)`` (float64) with
             p = max(1, round(r·d·n)), fitted by ``.fit(X, y)`` (min-norm
             interpolator, Θ ∈ R^{p×C} for C outputs; its relative train
             residual ‖Φθ − y‖/‖y‖ is the *label-fit error*);
3. attack    ``reconstruct(θ, model, n, cell.attack)``, where ``cell.attack`` is the
             cell's :class:`~rftheory.attack.options.AttackOptions` with its seed set to
             the cell's seed: the same run as a direct ``reconstruct`` call with that
             record (and the defaults of ``rftheory reconstruct``);
4. metrics   ``reconstruction_errors(X, X̂, threshold)``;
5. truth     the true loss L(X) and the cell's failure class
             (:func:`~rftheory.experiments.cells.failure_class`);
6. probe     the identifiability probe at each of ``probe_angles`` (default 30°
             and 60°): the attack's local optimiser alone, started at the truth
             with every row rotated by that angle
             (:func:`~rftheory.experiments.cells.run_probe`).

Two thresholds are measured, not one.  The attack's success rate against r
locates the threshold of *this attack* (its global search included); the
probe's success rate locates the threshold of identifiability as the local
optimiser sees it, independent of the global search.  Where they differ the
failure classes say why: ``"optimiser"`` (the attack's loss stays above its
tolerance while L(X) ≈ 0) or ``"not_identifiable"`` (the attack reaches loss
≈ 0 at a wrong X̂).

Multi-output cells (``outputs`` = C > 1) measure the counting picture between
the law and span identifiability (docs/design.md, docs/theory.md): the
attacker holds C vectors of the feature span; counting on the sphere, Θ pins X
for C(p − n) > n(d − 1), i.e. the predicted critical ratio
p/(dn) = 1/d + (d − 1)/(dC) (:func:`counting_ratio`), which falls from the
law's 1 (C = 1: wrong X̂ up to p = nd, none from nd + 1) to the span limit
(n + d − 1)/(dn) at C = n (:func:`span_ratio`).

Because V's rows never depend on p and X depends only on (n, d, seed), the
cells of one seed at different ratios share X and nest their V (common random
numbers), so a success curve over r is a comparison at fixed data.

A cell is a **success** when every sample is recovered, i.e. its sign-aware
error min_s ‖x_i − s·x̂_π(i)‖/‖x_i‖ is ≤ ``threshold`` (0.05) for all i
(``recovered_fraction == 1``).  Success is never judged by the loss: below
p ≈ dn wrong X̂ reach L = 0.  Cells with p < n cannot be trained; they are
recorded with status ``"no_interpolation"``, no attack, and success False.

Results form a tidy table, one row per cell, with the full configuration,
the measured quantities and ``rftheory.__version__`` (see :data:`COLUMNS`).
The table lives in a **store**, an SQLite database (:mod:`rftheory.experiments.store`)
keyed by the configuration (the columns in :data:`KEY_COLUMNS`): each finished
cell is committed in its own transaction as soon as it finishes, so a killed
sweep keeps every finished cell and no half-written row, rerunning skips the
cells already stored, and several sweeps may write one store at once (each
keeps all its rows).  ``out`` names either the store itself (``.sqlite``,
``.sqlite3``, ``.db``) or a CSV export (any other name, e.g. ``table.csv``),
whose store is then ``table.csv.sqlite`` beside it (or ``store=``).  The CSV
export holds every row of the store (all grids swept into it), sorted by
configuration, rewritten atomically when a sweep ends or is interrupted, and
copied to Parquet when pyarrow is importable.  A CSV export met at the start
(e.g. one whose store was deleted) is read back into the store first.

Everything except the timing columns (:data:`TIMING_COLUMNS`) is a pure
function of the configuration: each cell runs with its BLAS limited to
``blas_threads`` (1) threads, so serial, process-pool and Dask runs give the
same table cell for cell.

The CSV export is written and read with the standard library's :mod:`csv`
module, one typed value per column (:data:`COLUMNS`): booleans as
``True``/``False``, floats in their shortest round-trip form.

The critical ratio r_c is estimated by :func:`critical_ratio` from the
success indicators s_j ∈ {0, 1} at ratios r_j, either

* ``"logistic"`` — maximum likelihood for P(success | r) = 1/(1 + exp(−k(ln r −
  ln r_c))), k ∈ [0, K_MAX] (the bound keeps r_c finite and in the middle of
  the gap when the grid separates failures from successes perfectly); or
* ``"interpolate"`` — the empirical success probability per ratio P̂(r) and the
  point where it crosses 1/2 for the last time, linearly interpolated in ln r,

with a percentile bootstrap interval (``scipy.stats.bootstrap``) obtained by
resampling the seeds with replacement (each seed brings all its cells: a
cluster bootstrap; resamples without a transition are left out).  When the
grid separates the outcomes perfectly (every cell at r ≤ r_a fails, every
cell at r ≥ r_b succeeds) the data only say r_c ∈ (r_a, r_b), which no seed
resampling can reveal, so the interval is widened to contain that gap.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from .cells import (ATTACK_COLUMNS, COLUMN_NAMES, COLUMNS, DEFAULT_ACTIVATIONS, DEFAULT_PROBE_ANGLES,
                    DEFAULT_RATIOS, DEFAULT_SEEDS, DEFAULT_SIZES, FAILURE_CLASSES, KEY_COLUMNS, LEGACY_SCHEMAS,
                    TIMING_COLUMNS, CellConfig, _positive_int, failure_class, make_grid, regime,
                    rotated_start, run_cell, run_probe)
from .critical import K_MAX, OUTCOMES, CriticalRatio, critical_ratio, summarize
from ..theory.identifiability.report import counting_ratio, span_ratio  # re-exported: law.counting_ratio, law.span_ratio
from .store import STORE_SUFFIXES, SweepStore, is_store, remove_store
from .table import _row_key, is_table, merge_tables, read_table, write_table

__all__ = [
    "CellConfig",
    "ATTACK_COLUMNS",
    "COLUMNS",
    "KEY_COLUMNS",
    "TIMING_COLUMNS",
    "DEFAULT_ACTIVATIONS",
    "DEFAULT_SIZES",
    "DEFAULT_RATIOS",
    "DEFAULT_SEEDS",
    "DEFAULT_PROBE_ANGLES",
    "FAILURE_CLASSES",
    "OUTCOMES",
    "failure_class",
    "rotated_start",
    "run_probe",
    "SweepResult",
    "CriticalRatio",
    "make_grid",
    "run_cell",
    "sweep",
    "read_table",
    "write_table",
    "is_table",
    "sweep_paths",
    "remove_sweep_files",
    "merge_tables",
    "summarize",
    "critical_ratio",
    "regime",
    "K_MAX",
    "counting_ratio",
    "span_ratio",
]


# --------------------------------------------------------------------------- executors


def _worker_init(parent_pid: int):  # pragma: no cover - runs in worker processes
    """Initializer of the pool's workers: they ignore SIGINT (the parent handles Ctrl-C and stops
    them) and die with their parent, however it ends, so a SIGKILL/SIGTERM of a sweep leaves no
    orphan computing on: on Linux the kernel sends SIGTERM at the parent's death
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread polls ``os.getppid()``, which changes
    when an orphan is re-parented, as the portable fallback."""
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 0.5


def _die_with_parent(parent_pid: int) -> None:  # pragma: no cover - runs in worker processes
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import threading  # noqa: PLC0415

    if sys.platform.startswith("linux"):
        try:
            import ctypes  # noqa: PLC0415

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still applies
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch():
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rftheory-parent-watch", daemon=True).start()


def _run_serial(todo, blas_threads, emit):
    for cfg in todo:
        emit(run_cell(cfg, blas_threads))


def _run_processes(todo, workers, blas_threads, emit, mp_context):
    ex = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),),
                             mp_context=mp_context)
    futures = set()
    try:
        futures = {ex.submit(run_cell, cfg, blas_threads) for cfg in todo}
        pending = futures
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                emit(fut.result())
    except BaseException:
        # Workers ignore SIGINT, so stop the ones still computing.  The executor
        # then marks every unfinished future as broken and its manager thread
        # exits; the futures are not cancelled first, because Python 3.11's
        # executor fails on cancelled futures of a broken pool.
        procs = getattr(ex, "_processes", None)
        if procs:
            for proc in list(procs.values()):
                try:
                    proc.terminate()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            ex.shutdown(wait=True)
        else:  # pragma: no cover - private attribute gone in some Python
            ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def _run_dask(todo, scheduler, blas_threads, emit):
    try:
        from distributed import Client, as_completed  # noqa: PLC0415
    except ImportError:
        raise RuntimeError(
            "a scheduler address needs dask.distributed: pip install 'rftheory[dist]'"
        ) from None
    own = not isinstance(scheduler, Client)
    if own:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
    else:
        client = scheduler
    futures = []
    try:
        futures = [
            client.submit(run_cell, cfg, blas_threads, pure=False) for cfg in todo
        ]
        for fut in as_completed(futures):
            emit(fut.result())
    except BaseException:
        if futures:
            client.cancel(futures)
        raise
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------- sweep


def sweep_paths(out, store=None) -> tuple[Path, Path | None]:
    """(store, CSV export or None) of a sweep writing ``out``: ``out`` itself is the store when it
    ends in ``.sqlite``, ``.sqlite3`` or ``.db`` (no export); otherwise ``out`` is the CSV export
    and the store is ``store`` or ``out`` + ``.sqlite`` beside it.  A ``.parquet`` ``out`` is
    refused (the Parquet copy is written beside the CSV export)."""

    if not str(out).strip():
        raise ValueError("the output path is empty")
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        raise ValueError(f"{out}: give a CSV file (the Parquet copy is written beside it) or a store "
                         f"({', '.join(STORE_SUFFIXES)}), not a .parquet file")
    if suffix in STORE_SUFFIXES:
        if store is not None and Path(store) != out:
            raise ValueError(f"{out} is itself a store; do not give a second store {store}")
        return out, None
    return (Path(store) if store is not None else out.with_name(out.name + ".sqlite")), out


def remove_sweep_files(out, store=None) -> list[Path]:
    """Delete the files of a sweep into ``out`` (its store with its WAL companions, the CSV export
    and its Parquet copy), but only files this package wrote: the store is recognised by its marker
    table, the CSV by its header, the Parquet copy by its columns (pyarrow needed to check it).
    Anything else existing at one of these paths raises ValueError before any file is deleted.
    Empty files hold nothing to lose and are removed.  Returns the paths deleted."""

    store_path, export = sweep_paths(out, store)
    parquet = export.with_suffix(".parquet") if export is not None else None

    def present(path):
        return path is not None and (path.exists() or path.is_symlink())

    def refuse(path, why):
        raise ValueError(f"--fresh deletes only files written by rftheory law, and {path} {why}; "
                         "it was left untouched (remove it yourself or choose another --out)")

    for path in (store_path, export, parquet):
        if present(path) and not path.is_file():
            refuse(path, "is not a regular file")
    empty = {path for path in (store_path, export, parquet) if present(path) and path.stat().st_size == 0}
    if present(store_path) and store_path not in empty and not is_store(store_path):
        refuse(store_path, "is not a sweep store")
    if present(export) and export not in empty and not is_table(export):
        refuse(export, "is not a sweep table (its first line is not the table's header)")
    if present(parquet) and parquet not in empty and not _is_parquet_table(parquet):
        refuse(parquet, "is not a Parquet copy of a sweep table (or pyarrow, needed to check it, is missing)")
    removed = []
    if present(store_path):
        remove_store(store_path)
        removed.append(store_path)
    for path in (export, parquet):
        if present(path):
            os.remove(path)
            removed.append(path)
    return removed


def _is_parquet_table(path) -> bool:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415

        return tuple(pq.read_schema(path).names) in (COLUMN_NAMES, *LEGACY_SCHEMAS)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours to delete
        return False


@dataclass
class SweepResult:
    """Outcome of :func:`sweep`.

    Attributes
    ----------
    rows : list of dict
        One row per cell of the requested grid, in grid order (rows resumed
        from the store included).
    computed, resumed : int
        Cells run now, and cells taken from the store.
    out, parquet : Path or None
        CSV export (or the store, when ``out`` names one) and Parquet copy written.
    store : Path or None
        The store (SQLite database) holding the rows.
    wall_time : float
        Seconds for the call.
    """

    rows: list = field(default_factory=list)
    computed: int = 0
    resumed: int = 0
    out: Path | None = None
    parquet: Path | None = None
    wall_time: float = 0.0
    store: Path | None = None


def sweep(
    *grid,
    out=None,
    store=None,
    workers: int | None = None,
    scheduler=None,
    blas_threads: int | None = 1,
    parquet: bool | None = None,
    mp_context=None,
    on_start: Callable[[int, int], None] | None = None,
    callback: Callable[[dict], None] | None = None,
    **cell_options,
) -> SweepResult:
    """Run the phase-diagram sweep over (activation, (n, d), ratio, seed).

    The cells are ``make_grid(*grid, **cell_options)``: the grid and the
    options of every cell have the names, defaults and checks of
    :func:`make_grid` and the fields of :class:`CellConfig`.

    Parameters
    ----------
    activations, sizes, ratios, seeds, n, d
        The grid, see :func:`make_grid` (ratio r = p/(dn)); the first four
        may also be given by position.
    attack : AttackOptions, optional
        The attack of every cell (default ``AttackOptions()``, the defaults of
        ``rftheory reconstruct``), its seed replaced by the cell's.
    restarts, max_iter, tol, optimizer, lr, momentum, reseed, reseed_candidates, derivative, stop_at_tol, dtype, batch_restarts
        Changes to ``attack`` (:data:`ATTACK_COLUMNS`).
    threshold : float
        A sample is recovered when its sign-aware error is ≤ threshold; a
        cell succeeds when all are.
    probe_angles : sequence of float
        Angles (degrees) of the identifiability probe of every cell (default
        :data:`~rftheory.experiments.cells.DEFAULT_PROBE_ANGLES`, 30 and 60; at most two; ``()``:
        no probe), see :func:`~rftheory.experiments.cells.run_probe`.
    noise : float
        Label noise of :func:`rftheory.data.synthetic.synthetic_sphere`.
    out : path, optional
        The store (``.sqlite``, ``.sqlite3``, ``.db``) or a CSV export (any
        other name), see :func:`sweep_paths`.  Cells already in the store are
        skipped (resume); every new row is committed to the store as soon as
        its cell finishes; when the sweep ends (or is interrupted) the CSV
        export is rewritten with every row of the store, sorted, and, with
        ``parquet`` (None: if pyarrow is importable) and a completed sweep,
        copied to ``.parquet``.  None: nothing is written.
    store : path, optional
        The store of a CSV ``out`` (default ``out`` + ``.sqlite``).
    workers : int, optional
        Local worker processes (ProcessPoolExecutor; they die with this
        process); 1 runs serially in this process; None uses
        ``os.cpu_count()``.  Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Address of a Dask scheduler (``"tcp://host:8786"``) or a Client: the
        cells run as Dask tasks (rftheory must be importable on the workers).
    blas_threads : int or None
        BLAS threads inside a cell (1 keeps cells independent of the
        executor and avoids over-subscription; None: no limit).
    on_start : callable, optional
        ``on_start(to_run, resumed)`` before the first cell runs.
    callback : callable, optional
        ``callback(row)`` after each new row is committed (in this process).
        An exception raised there (e.g. KeyboardInterrupt) stops the sweep;
        the rows committed so far stay in the store (and the CSV export).

    Raises
    ------
    ValueError, TypeError
        From :func:`make_grid`: a bad grid value or an unknown cell option;
        an ``out`` or ``store`` that is not this package's table or store.
    KeyboardInterrupt
        Re-raised after the finished cells are safely in the store.
    """

    start = time.perf_counter()
    cells = make_grid(*grid, **cell_options)
    if workers is not None:
        workers = _positive_int(workers, "workers")
    db = export = None
    if out is not None:
        store_path, export = sweep_paths(out, store)
        imported = read_table(export) if export is not None and export.exists() else []  # checks a foreign file
        db = SweepStore(store_path)
        if db.migrated:
            import warnings  # noqa: PLC0415

            warnings.warn(f"{store_path}: a store of an earlier table version was migrated to the current schema "
                          "(converged → loss_at_tol; old rows: one output C = 1, no probe, true loss not measured, "
                          "failure class 'unclassified' unless recovered or not attacked)", stacklevel=2)
    try:
        if db is not None and imported:
            db.add_many(imported)
        done = {_row_key(row): row for row in db.rows()} if db is not None else {}
        wanted = [c.key() for c in cells]
        todo = [c for c in cells if c.key() not in done]
        resumed = len(cells) - len(todo)
        if on_start is not None:
            on_start(len(todo), resumed)

        new_rows = {}

        def emit(row):
            if db is not None:
                db.add(row)  # one transaction per cell
            new_rows[_row_key(row)] = row
            if callback is not None:
                callback(row)

        parquet_path, completed = None, False
        try:
            if todo:
                if scheduler is not None:
                    _run_dask(todo, scheduler, blas_threads, emit)
                else:
                    w = workers if workers is not None else (os.cpu_count() or 1)
                    w = min(w, len(todo))
                    if w <= 1:
                        _run_serial(todo, blas_threads, emit)
                    else:
                        _run_processes(todo, w, blas_threads, emit, mp_context)
            completed = True
        finally:
            if export is not None:
                if completed:
                    parquet_path = write_table(db.rows(), export, parquet=parquet)
                else:  # keep the export in step with the store on the way out, never masking the cause
                    try:
                        write_table(db.rows(), export, parquet=False)
                    except Exception:  # noqa: BLE001
                        pass
        stored = {_row_key(row): row for row in db.rows()} if db is not None else {}
        all_rows = {**done, **new_rows, **stored}  # a cell stored by a concurrent sweep first: its row
        return SweepResult(
            rows=[all_rows[k] for k in wanted], computed=len(new_rows), resumed=resumed,
            out=Path(out) if out is not None else None, parquet=parquet_path, wall_time=time.perf_counter() - start,
            store=db.path if db is not None else None,
        )
    finally:
        if db is not None:
            db.close()
