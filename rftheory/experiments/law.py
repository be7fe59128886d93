"""The law of data reconstruction as a phase diagram: sweeps over p/(dn).

The law (DESIGN.md): in the random-features model f(x) = σ(Vx)ᵀθ, trained as
the minimum-norm interpolator θ = Φᵀ(ΦΦᵀ)⁻¹y, the training set X ∈ R^{n×d}
becomes identifiable from θ (and V, σ, n) once p ≳ d·n.  Three regimes in the
ratio r = p/(dn):

    p < n          (r < 1/d)        no interpolation: θ does not fit the labels;
    n ≤ p ≲ dn     (1/d ≤ r ≲ 1)    interpolation without identifiability: many
                                    wrong X̂ reach projection loss L = 0;
    p ≳ dn         (r ≳ 1)          reconstruction: L = 0 pins X̂ to ±X.

:func:`sweep` measures this on a grid of cells (activation σ, n, d, r, seed).
A cell is one complete experiment:

1. data      X, y = ``synthetic_sphere(n, d, seed=seed, noise=noise)`` (rows on
             the √d-sphere, linear labels);
2. model     ``RandomFeatures(p, d, σ, seed=seed + 1000)`` with
             p = max(1, round(r·d·n)), fitted by ``.fit(X, y)`` (min-norm
             interpolator; its relative train residual ‖Φθ − y‖/‖y‖ is the
             *label-fit error*);
3. attack    ``reconstruct(θ, model, n, restarts=..., seed=seed)``;
4. metrics   ``reconstruction_errors(X, X̂, threshold)``.

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
Rows are appended to a CSV file and flushed as soon as each cell finishes, so
an interrupted sweep keeps every finished cell; rerunning skips the cells
whose configuration (the columns in :data:`KEY_COLUMNS`) is already in the
file.  When a sweep completes, the file is rewritten sorted by configuration
(deterministic content) and, if pyarrow is importable, copied to Parquet.

Everything except the timing columns (:data:`TIMING_COLUMNS`) is a pure
function of the configuration: each cell runs with its BLAS limited to
``blas_threads`` (1) threads, so serial, process-pool and Dask runs give the
same table cell for cell.

The critical ratio r_c is estimated by :func:`critical_ratio` from the
success indicators s_j ∈ {0, 1} at ratios r_j, either

* ``"logistic"`` — maximum likelihood for P(success | r) = 1/(1 + exp(−k(ln r −
  ln r_c))), k ∈ [0, K_MAX] (the bound keeps r_c finite and in the middle of
  the gap when the grid separates failures from successes perfectly); or
* ``"interpolate"`` — the empirical success probability per ratio P̂(r) and the
  point where it crosses 1/2 for the last time, linearly interpolated in ln r,

with a percentile bootstrap interval obtained by resampling the seeds with
replacement (each seed brings all its cells: a cluster bootstrap).  When the
grid separates the outcomes perfectly (every cell at r ≤ r_a fails, every
cell at r ≥ r_b succeeds) the data only say r_c ∈ (r_a, r_b), which no seed
resampling can reveal, so the interval is widened to contain that gap.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..validation import check_count

__all__ = [
    "CellConfig",
    "COLUMNS",
    "KEY_COLUMNS",
    "TIMING_COLUMNS",
    "DEFAULT_ACTIVATIONS",
    "DEFAULT_SIZES",
    "DEFAULT_RATIOS",
    "DEFAULT_SEEDS",
    "SweepResult",
    "CriticalRatio",
    "make_grid",
    "run_cell",
    "sweep",
    "read_table",
    "write_table",
    "merge_tables",
    "summarize",
    "critical_ratio",
    "regime",
    "K_MAX",
]

DEFAULT_ACTIVATIONS = ("relu+tanh",)
DEFAULT_SIZES = ((4, 8), (5, 9), (6, 10))
DEFAULT_RATIOS = (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0)
DEFAULT_SEEDS = (0, 1, 2, 3)
MODEL_SEED_OFFSET = 1000  # V seed = seed + 1000, as in ``rftheory reconstruct``
K_MAX = 100.0  # largest logistic slope in ln r (transition width ≈ 1/K_MAX)


@dataclass(frozen=True)
class CellConfig:
    """Configuration of one cell; every field is a column of the table.

    ``ratio`` is r = p/(dn); the number of features is p = max(1, round(r·d·n)).
    ``seed`` seeds the data (``synthetic_sphere(seed=seed)``), V
    (``seed + 1000``) and the attack (``reconstruct(seed=seed)``).  ``lr`` and
    ``momentum`` are used by ``optimizer="momentum"`` only.
    """

    activation: str
    n: int
    d: int
    ratio: float
    seed: int
    restarts: int = 3
    max_iter: int = 1000
    tol: float = 1e-10
    optimizer: str = "lbfgs"
    lr: float = 0.01
    momentum: float = 0.9
    reseed: bool = True
    derivative: str = "true"
    threshold: float = 0.05
    noise: float = 0.1
    dtype: str = "float64"

    @property
    def p(self) -> int:
        from ..models.random_features import features_for_ratio  # noqa: PLC0415  (keeps importing law light)

        return features_for_ratio(self.ratio, self.d, self.n)

    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in KEY_COLUMNS)


KEY_COLUMNS = tuple(f.name for f in fields(CellConfig))
_KEY_TYPES = {f.name: f.type for f in fields(CellConfig)}

# (name, type) of every column, in table order.
COLUMNS: tuple[tuple[str, type], ...] = (
    ("activation", str), ("n", int), ("d", int), ("ratio", float), ("p", int), ("seed", int),
    ("data_seed", int), ("model_seed", int), ("attack_seed", int),
    ("restarts", int), ("max_iter", int), ("tol", float), ("optimizer", str), ("lr", float),
    ("momentum", float), ("reseed", bool), ("derivative", str), ("threshold", float),
    ("noise", float), ("dtype", str),
    ("regime", str), ("status", str), ("success", bool), ("recovered_fraction", float),
    ("wrong_sign_fraction", float), ("sign_aware_mean", float), ("sign_aware_max", float),
    ("signed_mean", float), ("signed_max", float), ("entrywise_abs_mean", float),
    ("loss", float), ("converged", bool), ("restart_losses", str), ("train_residual", float),
    ("iterations", int), ("evaluations", int), ("reseeds", int),
    ("wall_time", float), ("attack_time", float), ("cpu_time", float), ("version", str),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
_TYPES = dict(COLUMNS)
TIMING_COLUMNS = ("wall_time", "attack_time", "cpu_time")
assert set(KEY_COLUMNS) <= set(COLUMN_NAMES)


def regime(n: int, d: int, p: int) -> str:
    """The regime of the law a cell belongs to: ``"p<n"`` (no interpolation),
    ``"n<=p<dn"`` (interpolation without identifiability) or ``"p>=dn"``."""
    if p < n:
        return "p<n"
    if p < d * n:
        return "n<=p<dn"
    return "p>=dn"


# --------------------------------------------------------------------------- grid


def _positive_int(value, name):
    return check_count(value, name)


def _positive_float(value, name):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _unique(seq):
    out = []
    for item in seq:
        if item not in out:
            out.append(item)
    return out


def make_grid(
    activations: Sequence[str] = DEFAULT_ACTIVATIONS,
    sizes: Sequence[tuple[int, int]] | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    *,
    n: Sequence[int] | None = None,
    d: Sequence[int] | None = None,
    **attack,
) -> list[CellConfig]:
    """The cells of a sweep, in grid order (activation, (n, d), ratio, seed).

    Sizes are the explicit (n, d) pairs ``sizes``, or the Cartesian product of
    ``n`` and ``d`` (give both), or :data:`DEFAULT_SIZES`.  ``attack`` sets the
    remaining :class:`CellConfig` fields (restarts, max_iter, tol, ...).
    Duplicates are removed; bad values raise ValueError.
    """
    from ..models.activations import get_activation  # noqa: PLC0415
    from ..attack.reconstruct import OPTIMIZERS  # noqa: PLC0415

    if isinstance(activations, str):
        activations = [activations]
    acts = []
    for a in activations:
        if not isinstance(a, str) or not a.strip():
            raise ValueError(f"activation must be a non-empty string, got {a!r}")
        get_activation(a.strip())  # raises ValueError for an unknown name
        acts.append(a.strip())
    if (n is None) != (d is None):
        raise ValueError("give both n and d (their product is swept), or sizes=[(n, d), ...]")
    if sizes is not None and n is not None:
        raise ValueError("give either sizes or n and d, not both")
    if n is not None:
        sizes = [(a, b) for a in n for b in d]
    if sizes is None:
        sizes = DEFAULT_SIZES
    pairs = []
    for pair in sizes:
        try:
            nn, dd = pair
        except (TypeError, ValueError):
            raise ValueError(f"sizes must be (n, d) pairs, got {pair!r}") from None
        pairs.append((_positive_int(nn, "n"), _positive_int(dd, "d")))
    rs = [_positive_float(r, "ratio") for r in ratios]
    ss = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r}")
        ss.append(int(s))
    unknown = set(attack) - (set(KEY_COLUMNS) - {"activation", "n", "d", "ratio", "seed"})  # those are the grid
    if unknown:
        raise TypeError(f"unknown cell option(s): {', '.join(sorted(unknown))}")
    attack = dict(attack)
    for name in ("restarts", "max_iter"):
        if name in attack:
            attack[name] = _positive_int(attack[name], name)
    for name in ("tol", "lr", "threshold"):
        if name in attack:
            attack[name] = _positive_float(attack[name], name)
    if "momentum" in attack:
        attack["momentum"] = float(attack["momentum"])
    if "noise" in attack:
        attack["noise"] = float(attack["noise"])
        if not (attack["noise"] >= 0 and math.isfinite(attack["noise"])):
            raise ValueError(f"noise must be non-negative, got {attack['noise']!r}")
    if attack.get("optimizer", "lbfgs") not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {attack['optimizer']!r}; choose from {', '.join(OPTIMIZERS)}")
    if attack.get("derivative", "true") not in ("true", "relu"):
        raise ValueError(f"derivative must be 'true' or 'relu', got {attack['derivative']!r}")
    if attack.get("dtype", "float64") not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {attack['dtype']!r}")
    if "reseed" in attack:
        attack["reseed"] = bool(attack["reseed"])
    cells = [
        CellConfig(activation=a, n=nn, d=dd, ratio=r, seed=s, **attack)
        for a in _unique(acts) for nn, dd in _unique(pairs) for r in _unique(rs) for s in _unique(ss)
    ]
    if not cells:
        raise ValueError("the grid is empty: give at least one activation, size, ratio and seed")
    return cells


# --------------------------------------------------------------------------- one cell


class _NoLimit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _blas_limit(threads):
    if threads is None:
        return _NoLimit()
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return _NoLimit()
    return threadpool_limits(limits=int(threads), user_api="blas")


def _nan():
    return float("nan")


def run_cell(config: CellConfig | dict, blas_threads: int | None = 1) -> dict:
    """Run one cell (data → fit → attack → metrics) and return its table row.

    ``blas_threads`` limits the BLAS thread pool during the cell (None: leave
    it alone); with a fixed limit the row (timing columns aside) is a pure
    function of ``config``.
    """
    from .. import __version__  # noqa: PLC0415
    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
    from ..linalg import SingularGramError  # noqa: PLC0415
    from ..attack.metrics import reconstruction_errors  # noqa: PLC0415
    from ..models.random_features import RandomFeatures  # noqa: PLC0415
    from ..attack.reconstruct import reconstruct  # noqa: PLC0415

    if isinstance(config, dict):
        config = CellConfig(**{k: config[k] for k in KEY_COLUMNS if k in config})
    c = config
    p = c.p
    row = asdict(c)
    row.update(
        p=p, data_seed=c.seed, model_seed=c.seed + MODEL_SEED_OFFSET, attack_seed=c.seed,
        regime=regime(c.n, c.d, p), status="ok", success=False,
        recovered_fraction=_nan(), wrong_sign_fraction=_nan(), sign_aware_mean=_nan(),
        sign_aware_max=_nan(), signed_mean=_nan(), signed_max=_nan(), entrywise_abs_mean=_nan(),
        loss=_nan(), converged=False, restart_losses="", train_residual=_nan(),
        iterations=0, evaluations=0, reseeds=0, attack_time=0.0, version=__version__,
    )
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    with _blas_limit(blas_threads):
        ds = synthetic_sphere(c.n, c.d, seed=c.seed, noise=c.noise)
        if p < c.n:
            row["status"] = "no_interpolation"
        else:
            model = RandomFeatures(p, c.d, c.activation, seed=c.seed + MODEL_SEED_OFFSET, dtype=np.dtype(c.dtype))
            try:
                model.fit(ds.X, ds.y)
            except SingularGramError:
                row["status"] = "singular_gram"
            else:
                row["train_residual"] = float(model.train_residual)
                t0 = time.perf_counter()
                try:
                    res = reconstruct(
                        model.theta, model, c.n, restarts=c.restarts, max_iter=c.max_iter, tol=c.tol,
                        optimizer=c.optimizer, lr=c.lr, momentum=c.momentum, reseed=c.reseed,
                        seed=c.seed, derivative=c.derivative,
                    )
                except FloatingPointError:
                    row["status"] = "diverged"
                else:
                    errs = reconstruction_errors(ds.X, np.asarray(res.X_hat), c.threshold)
                    summ = errs.summary()
                    row.update(
                        success=bool(np.all(errs.recovered)),
                        recovered_fraction=summ["recovered_fraction"],
                        wrong_sign_fraction=summ["wrong_sign_fraction"],
                        sign_aware_mean=summ["sign_aware_mean"], sign_aware_max=summ["sign_aware_max"],
                        signed_mean=summ["signed_mean"], signed_max=summ["signed_max"],
                        entrywise_abs_mean=summ["entrywise_abs_mean"],
                        loss=float(res.loss), converged=bool(res.converged),
                        restart_losses=";".join(repr(float(v)) for v in res.restarts),
                        iterations=int(res.iterations), evaluations=int(res.evaluations),
                        reseeds=int(res.reseeds),
                    )
                row["attack_time"] = time.perf_counter() - t0
    row["wall_time"] = time.perf_counter() - wall0
    row["cpu_time"] = time.thread_time() - cpu0
    return {name: row[name] for name in COLUMN_NAMES}


# --------------------------------------------------------------------------- table I/O


def _format(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # shortest round-trip representation
    return str(value)


def _parse(text: str, typ):
    if typ is bool:
        if text in ("True", "true", "1"):
            return True
        if text in ("False", "false", "0"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if typ is int:
        return int(text)
    if typ is float:
        return float(text)
    return text


def _row_key(row: dict) -> tuple:
    return tuple(row[name] for name in KEY_COLUMNS)


def _sort_key(row: dict):
    return tuple((0, v) if not isinstance(v, str) else (1, v) for v in _row_key(row))


def _header_line() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(COLUMN_NAMES)
    return buf.getvalue()


def _row_line(row: dict) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(row[name]) for name in COLUMN_NAMES])
    return buf.getvalue()


def read_table(path) -> list[dict]:
    """Rows of a sweep CSV, typed per :data:`COLUMNS` (file order).

    A truncated last line (a write cut short) is ignored.  Raises ValueError
    if the header is not this version's column list.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return []
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(complete))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != COLUMN_NAMES:
        missing = [c for c in COLUMN_NAMES if c not in header]
        extra = [c for c in header if c not in COLUMN_NAMES]
        raise ValueError(
            f"{path} is not a sweep table of this rftheory version (missing columns {missing}, "
            f"unexpected {extra}); choose another output file"
        )
    rows = []
    for lineno, fields_ in enumerate(reader, start=2):
        if len(fields_) != len(COLUMN_NAMES):
            raise ValueError(f"{path}:{lineno}: expected {len(COLUMN_NAMES)} fields, got {len(fields_)}")
        rows.append({name: _parse(v, _TYPES[name]) for name, v in zip(COLUMN_NAMES, fields_)})
    return rows


def write_table(rows: Iterable[dict], path, parquet: bool | None = None) -> Path | None:
    """Write rows (sorted by configuration) to ``path`` atomically (temp file +
    rename).  With ``parquet`` (None: when pyarrow is importable) also write
    ``path.with_suffix('.parquet')`` and return its path."""
    path = Path(path)
    rows = sorted(rows, key=_sort_key)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(_header_line())
        for row in rows:
            fh.write(_row_line(row))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return _write_parquet(rows, path.with_suffix(".parquet")) if parquet is not False else None


def _write_parquet(rows, path) -> Path | None:
    try:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        return None
    kinds = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    schema = pa.schema([(name, kinds[typ]) for name, typ in COLUMNS])
    table = pa.Table.from_pylist([{k: r[k] for k in COLUMN_NAMES} for r in rows], schema=schema)
    pq.write_table(table, path)
    return Path(path)


def merge_tables(paths: Iterable, out, parquet: bool | None = None) -> list[dict]:
    """Merge sweep CSVs into ``out``: the union of their rows, the first row
    of each configuration kept, sorted by configuration.  Returns the rows."""
    seen, rows = set(), []
    for path in paths:
        for row in read_table(path):
            k = _row_key(row)
            if k not in seen:
                seen.add(k)
                rows.append(row)
    write_table(rows, out, parquet=parquet)
    return sorted(rows, key=_sort_key)


class _Appender:
    """Appends rows to the CSV, flushing (and fsync-ing) after every row."""

    def __init__(self, path: Path):
        self.path = path
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        if not fresh:
            with open(path, "rb+") as fh:  # drop a partial last line left by a kill
                data = fh.read()
                if not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)
        self.fh = open(path, "a", encoding="utf-8", newline="")
        if fresh or path.stat().st_size == 0:
            self.fh.write(_header_line())
            self.fh.flush()

    def append(self, row: dict):
        self.fh.write(_row_line(row))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        self.fh.close()


# --------------------------------------------------------------------------- executors


def _ignore_sigint():  # pragma: no cover - runs in worker processes
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_serial(todo, blas_threads, emit):
    for cfg in todo:
        emit(run_cell(cfg, blas_threads))


def _run_processes(todo, workers, blas_threads, emit, mp_context):
    ex = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint, mp_context=mp_context)
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


@dataclass
class SweepResult:
    """Outcome of :func:`sweep`.

    Attributes
    ----------
    rows : list of dict
        One row per cell of the requested grid, in grid order (rows resumed
        from the output file included).
    computed, resumed : int
        Cells run now, and cells taken from the output file.
    out, parquet : Path or None
        Files written.
    wall_time : float
        Seconds for the call.
    """

    rows: list = field(default_factory=list)
    computed: int = 0
    resumed: int = 0
    out: Path | None = None
    parquet: Path | None = None
    wall_time: float = 0.0


def sweep(
    *grid,
    out=None,
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
    restarts, max_iter, tol, optimizer, lr, momentum, reseed, derivative
        Passed to :func:`rftheory.attack.reconstruct.reconstruct` in every cell.
    threshold : float
        A sample is recovered when its sign-aware error is ≤ threshold; a
        cell succeeds when all are.
    noise : float
        Label noise of :func:`rftheory.data.synthetic.synthetic_sphere`.
    dtype : "float64" or "float32"
        dtype of V and the features.
    out : path, optional
        CSV file.  Cells whose configuration is already in it are skipped
        (resume); every new row is appended and flushed as soon as its cell
        finishes; on completion the file is rewritten sorted and, with
        ``parquet`` (None: if pyarrow is importable), copied to ``.parquet``.
    workers : int, optional
        Local worker processes (ProcessPoolExecutor); 1 runs serially in
        this process; None uses ``os.cpu_count()``.  Ignored with
        ``scheduler``.
    scheduler : str or distributed.Client, optional
        Address of a Dask scheduler (``"tcp://host:8786"``) or a Client: the
        cells run as Dask tasks (rftheory must be importable on the workers).
    blas_threads : int or None
        BLAS threads inside a cell (1 keeps cells independent of the
        executor and avoids over-subscription; None: no limit).
    on_start : callable, optional
        ``on_start(to_run, resumed)`` before the first cell runs.
    callback : callable, optional
        ``callback(row)`` after each new row is written (in this process).
        An exception raised there (e.g. KeyboardInterrupt) stops the sweep;
        the rows written so far stay in ``out``.

    Raises
    ------
    ValueError, TypeError
        From :func:`make_grid`: a bad grid value or an unknown cell option.
    KeyboardInterrupt
        Re-raised after the finished cells are safely in ``out``.
    """
    start = time.perf_counter()
    cells = make_grid(*grid, **cell_options)
    if workers is not None:
        workers = _positive_int(workers, "workers")
    out = Path(out) if out is not None else None
    existing = read_table(out) if out is not None and out.exists() else []
    done = {}
    for row in existing:
        done.setdefault(_row_key(row), row)
    wanted = [c.key() for c in cells]
    todo = [c for c in cells if c.key() not in done]
    resumed = len(cells) - len(todo)
    if on_start is not None:
        on_start(len(todo), resumed)

    new_rows = {}
    appender = _Appender(out) if out is not None and todo else None

    def emit(row):
        key = _row_key(row)
        new_rows[key] = row
        if appender is not None:
            appender.append(row)
        if callback is not None:
            callback(row)

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
    finally:
        if appender is not None:
            appender.close()

    all_rows = {**done, **new_rows}
    parquet_path = None
    if out is not None:
        file_rows, seen = [], set()
        for row in existing + list(new_rows.values()):
            k = _row_key(row)
            if k not in seen:
                seen.add(k)
                file_rows.append(row)
        parquet_path = write_table(file_rows, out, parquet=parquet)
    return SweepResult(
        rows=[all_rows[k] for k in wanted], computed=len(new_rows), resumed=resumed, out=out,
        parquet=parquet_path, wall_time=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- analysis


def _group(rows, by):
    groups: dict = {}
    for row in rows:
        groups.setdefault(tuple(row[b] for b in by), []).append(row)
    return groups


def summarize(rows: Iterable[dict], by: Sequence[str] = ("activation", "n", "d", "ratio")) -> list[dict]:
    """Aggregate cells over seeds: one dict per group of ``by`` (sorted) with
    ``cells``, ``p``, ``regime``, ``success_rate`` (fraction of cells with all
    samples recovered), means over cells of ``recovered_fraction``,
    ``sign_aware_mean``, ``signed_mean``, ``iterations``, ``wall_time``, the
    median ``loss``, and ``attacked`` (cells where the attack ran).  NaN
    entries (cells without an attack) are left out of the means."""

    def mean(vals):
        vals = [v for v in vals if not math.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")

    out = []
    for key, group in sorted(_group(rows, by).items()):
        entry = dict(zip(by, key))
        ps = sorted({r["p"] for r in group})
        regimes = sorted({r["regime"] for r in group})
        entry.update(
            cells=len(group),
            p=ps[0] if len(ps) == 1 else ps,
            regime=regimes[0] if len(regimes) == 1 else "/".join(regimes),
            attacked=sum(r["status"] == "ok" for r in group),
            success_rate=float(np.mean([bool(r["success"]) for r in group])),
            recovered_fraction=mean([r["recovered_fraction"] for r in group]),
            sign_aware_mean=mean([r["sign_aware_mean"] for r in group]),
            signed_mean=mean([r["signed_mean"] for r in group]),
            loss_median=(float(np.median([r["loss"] for r in group if not math.isnan(r["loss"])]))
                         if any(not math.isnan(r["loss"]) for r in group) else float("nan")),
            iterations=mean([float(r["iterations"]) for r in group]),
            wall_time=mean([r["wall_time"] for r in group]),
        )
        out.append(entry)
    return out


@dataclass
class CriticalRatio:
    """Estimate of the critical ratio r_c = p/(dn) where reconstruction starts
    to succeed, with a percentile bootstrap interval over seeds.

    ``estimate``/``low``/``high`` are NaN when the data (or too few bootstrap
    resamples) show no transition; ``note`` says why.  ``slope`` is the
    fitted logistic slope k in ln r (NaN for ``"interpolate"``).
    """

    activation: str
    sizes: tuple
    estimate: float
    low: float
    high: float
    level: float
    method: str
    n_boot: int
    n_boot_valid: int
    slope: float = float("nan")
    cells: int = 0
    seeds: int = 0
    note: str = ""


def _logistic_objective(b0, b1, x, y):
    """f(β) = −Σ_j log P(y_j | x_j) for P(y=1|x) = σ(β₀ + β₁x), its gradient
    and Hessian (convex in β)."""
    z = b0 + b1 * x
    f = float(np.sum(np.where(y > 0, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))))
    s = 0.5 * (1.0 + np.tanh(0.5 * z))  # σ(z) without overflow
    r = s - y
    w = s * (1.0 - s)
    g = np.array([r.sum(), (r * x).sum()])
    H = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
    return f, g, H


def _interp_crossing(x, y) -> float:
    """ln r where the empirical success probability crosses 1/2 for the last
    time (linear interpolation in ln r); NaN if it never does on the grid."""
    xs = np.unique(x)
    P = np.array([y[x == v].mean() for v in xs])
    above = P >= 0.5
    if above.all() or not above[-1]:
        return float("nan")
    k = len(xs) - 1
    while k > 0 and above[k - 1]:
        k -= 1
    x0, x1, p0, p1 = xs[k - 1], xs[k], P[k - 1], P[k]
    return float(x0 + (0.5 - p0) / (p1 - p0) * (x1 - x0))


def _logistic_fit(x, y) -> tuple[float, float]:
    """ML estimate (m = ln r_c, k) of P(success | x = ln r) = σ(k(x − m)) with
    0 ≤ k ≤ K_MAX; NaN if both outcomes do not occur or the fit is flat.

    Convex problem in (β₀, β₁) = (−km, k) on the slab 0 ≤ β₁ ≤ K_MAX: first the
    boundary β₁ = K_MAX (1-D Newton in β₀); if ∂f/∂β₁ ≤ 0 there, the KKT
    conditions hold and it is the minimum (the case of a perfectly separating
    grid).  Otherwise the minimum is inside and damped Newton, kept inside the
    slab, finds it.
    """
    if y.min() == y.max():
        return float("nan"), float("nan")
    m0 = _interp_crossing(x, y)
    if not math.isfinite(m0):
        m0 = float(np.mean(x))
    gtol = 1e-9 * len(x)

    # boundary β₁ = K_MAX
    b1 = K_MAX
    b0 = -b1 * m0
    f, g, H = _logistic_objective(b0, b1, x, y)
    for _ in range(200):
        if abs(g[0]) <= gtol:
            break
        step = -g[0] / H[0, 0] if H[0, 0] > 0 else -math.copysign(1.0, g[0])
        t = 1.0
        while t > 1e-12:
            f_new, g_new, H_new = _logistic_objective(b0 + t * step, b1, x, y)
            if f_new <= f - 1e-4 * t * abs(step * g[0]) or f_new < f:
                break
            t *= 0.5
        if t <= 1e-12:
            break
        b0, f, g, H = b0 + t * step, f_new, g_new, H_new
    if g[1] <= 0:
        return float(-b0 / b1), float(b1)

    # interior: damped Newton from a moderate slope, never leaving the slab
    beta = np.array([-1.0 * m0, 1.0])
    f, g, H = _logistic_objective(beta[0], beta[1], x, y)
    for _ in range(200):
        if np.max(np.abs(g)) <= gtol:
            break
        try:
            step = -np.linalg.solve(H + 1e-12 * np.eye(2), g)
        except np.linalg.LinAlgError:
            step = -g
        if step @ g >= 0:
            step = -g
        t = 1.0
        if beta[1] + step[1] > K_MAX:
            t = (K_MAX - beta[1]) / step[1]
        elif beta[1] + step[1] < 0:
            t = -beta[1] / step[1]
        while t > 1e-14:
            cand = beta + t * step
            f_new, g_new, H_new = _logistic_objective(cand[0], cand[1], x, y)
            if f_new <= f + 1e-4 * t * (step @ g):
                break
            t *= 0.5
        if t <= 1e-14:
            break
        beta, f, g, H = cand, f_new, g_new, H_new
    if not beta[1] > 1e-8:
        return float("nan"), float("nan")
    return float(-beta[0] / beta[1]), float(beta[1])


def critical_ratio(
    rows: Iterable[dict],
    *,
    method: str = "logistic",
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    per_size: bool = False,
) -> list[CriticalRatio]:
    """Critical ratio r_c per activation (pooled over the (n, d) sizes, the
    law's claim being that r = p/(dn) is the right scale), or per (activation,
    n, d) with ``per_size``.

    Success indicators s_j of every cell j (ratio r_j) are fitted by
    ``method`` (see the module docstring); the interval is the percentile
    interval of the estimate over ``n_boot`` cluster-bootstrap resamples of
    the seeds (resamples without a transition are dropped and counted in
    ``n_boot - n_boot_valid``).  Deterministic given ``seed``.
    """
    if method not in ("logistic", "interpolate"):
        raise ValueError(f"method must be 'logistic' or 'interpolate', got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"n_boot must be non-negative, got {n_boot}")
    rows = list(rows)
    by = ("activation", "n", "d") if per_size else ("activation",)
    results = []
    for key, group in sorted(_group(rows, by).items()):
        x = np.log(np.array([r["ratio"] for r in group], dtype=np.float64))
        y = np.array([1.0 if r["success"] else 0.0 for r in group])
        sd = np.array([r["seed"] for r in group])
        sizes = tuple(sorted({(r["n"], r["d"]) for r in group}))
        uniq = np.unique(sd)

        def estimate(xx, yy):
            if method == "logistic":
                return _logistic_fit(xx, yy)
            return _interp_crossing(xx, yy), float("nan")

        m, k = estimate(x, y)
        note = ""
        if y.min() == y.max():
            note = ("every cell succeeded: r_c is below the grid" if y.min() > 0
                    else "no cell succeeded: r_c is above the grid")
        elif not math.isfinite(m):
            note = "the success rate does not cross 1/2 on the grid"
        rng = np.random.default_rng([seed, 0x1A3])
        members = {s: np.flatnonzero(sd == s) for s in uniq}
        boots = []
        if math.isfinite(m):
            for _ in range(n_boot):
                pick = rng.choice(uniq, size=len(uniq), replace=True)
                idx = np.concatenate([members[s] for s in pick])
                mb, _ = estimate(x[idx], y[idx])
                if math.isfinite(mb):
                    boots.append(mb)
        if boots and math.isfinite(m):
            a = (1 - level) / 2
            low, high = (float(np.exp(q)) for q in np.quantile(boots, [a, 1 - a]))
        else:
            low = high = float("nan")
        if math.isfinite(m) and y.min() < y.max() and x[y == 0].max() < x[y == 1].min():
            # perfectly separated: the data only say that r_c lies in the gap
            # between the last failing and the first succeeding ratio (grid
            # resolution), which the seed bootstrap cannot see; widen to it.
            gap_lo, gap_hi = float(np.exp(x[y == 0].max())), float(np.exp(x[y == 1].min()))
            low = gap_lo if not math.isfinite(low) else min(low, gap_lo)
            high = gap_hi if not math.isfinite(high) else max(high, gap_hi)
            note = (f"every cell at p/(dn) ≤ {gap_lo:g} failed and every cell at ≥ {gap_hi:g} succeeded: "
                    "interval widened to this grid gap")
        if len(uniq) < 2 and not note:
            note = "one seed only: no bootstrap interval"
        results.append(CriticalRatio(
            activation=key[0], sizes=sizes, estimate=float(np.exp(m)) if math.isfinite(m) else float("nan"),
            low=low, high=high, level=level, method=method, n_boot=n_boot, n_boot_valid=len(boots),
            slope=k, cells=len(group), seeds=len(uniq), note=note,
        ))
    return results
