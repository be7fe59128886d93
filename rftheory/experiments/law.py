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
4. metrics   ``reconstruction_errors(X, X̂, threshold)``.

Multi-output cells (``outputs`` = C > 1) measure the counting picture between
the law and span identifiability (docs/design.md): the attacker holds C
vectors of the feature span, counting C(p − n) ≥ nd, i.e. the predicted
critical ratio p/(dn) = 1/d + 1/C (:func:`counting_ratio`), which falls from
the law's 1 + 1/d (C = 1) towards the span limit (n + d + 1)/(dn)
(:func:`span_ratio`) as C grows.

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

import csv
import io
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Sequence, get_type_hints

import numpy as np

from ..attack.options import AttackOptions
from ..validation import check_count

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

DEFAULT_ACTIVATIONS = ("relu+tanh",)
DEFAULT_SIZES = ((4, 8), (5, 9), (6, 10))
DEFAULT_RATIOS = (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0)
DEFAULT_SEEDS = (0, 1, 2, 3)
MODEL_SEED_OFFSET = 1000  # V seed = seed + 1000, as in ``rftheory reconstruct``
K_MAX = 100.0  # largest logistic slope in ln r (transition width ≈ 1/K_MAX)


# The attack settings that are table columns: every AttackOptions field but the seed, which is the
# cell's own (it also seeds the data and V) and is recorded as ``attack_seed``.
ATTACK_COLUMNS = tuple(f.name for f in fields(AttackOptions) if f.name != "seed")
_ATTACK_TYPES = get_type_hints(AttackOptions)


@dataclass(frozen=True)
class CellConfig:
    """Configuration of one cell; every setting is a column of the table.

    ``ratio`` is r = p/(dn); the number of features is p = max(1, round(r·d·n)).
    ``seed`` seeds the data (``synthetic_sphere(seed=seed)``), V
    (``seed + 1000``) and the attack: ``attack`` is the record passed to
    :func:`~rftheory.attack.reconstruct.reconstruct`, its seed set to ``seed``
    when the cell is made (so ``cell.attack`` is exactly what the cell runs).
    Its defaults are :class:`~rftheory.attack.options.AttackOptions`' own, those
    of ``rftheory reconstruct``.  ``threshold`` judges recovery, ``noise`` is the
    label noise of the data.
    """

    activation: str
    n: int
    d: int
    ratio: float
    seed: int
    attack: AttackOptions = field(default_factory=AttackOptions)
    threshold: float = 0.05  # DEFAULT_THRESHOLD of rftheory.attack.metrics (kept literal: importing it loads SciPy)
    noise: float = 0.1  # label noise of synthetic_sphere's linear labels
    outputs: int = 1  # C: label columns, Θ ∈ R^{p×C}

    def __post_init__(self):
        if not isinstance(self.attack, AttackOptions):
            raise TypeError(f"attack must be an AttackOptions record, got {type(self.attack).__name__}")
        object.__setattr__(self, "outputs", check_count(self.outputs, "outputs"))
        # the seed is the cell's; numbers stored as the table's column types
        a = self.attack
        object.__setattr__(self, "attack", a.replace(seed=int(self.seed), tol=float(a.tol), lr=float(a.lr),
                                                     momentum=float(a.momentum)))

    @classmethod
    def from_columns(cls, row: dict) -> "CellConfig":
        """The cell of a table row (or any mapping with the :data:`KEY_COLUMNS`)."""
        return cls(activation=row["activation"], n=row["n"], d=row["d"], ratio=row["ratio"], seed=row["seed"],
                   attack=AttackOptions(**{k: row[k] for k in ATTACK_COLUMNS if k in row}),
                   **{k: row[k] for k in ("threshold", "noise", "outputs") if k in row})

    def columns(self) -> dict:
        """The configuration as table columns (:data:`KEY_COLUMNS`, in order)."""
        flat = dict(activation=self.activation, n=self.n, d=self.d, outputs=self.outputs, ratio=self.ratio,
                    seed=self.seed, threshold=self.threshold, noise=self.noise)
        flat.update({k: getattr(self.attack, k) for k in ATTACK_COLUMNS})
        return {k: flat[k] for k in KEY_COLUMNS}

    @property
    def p(self) -> int:
        from ..models.random_features import features_for_ratio  # noqa: PLC0415  (keeps importing law light)

        return features_for_ratio(self.ratio, self.d, self.n)

    def key(self) -> tuple:
        return tuple(self.columns().values())


KEY_COLUMNS = ("activation", "n", "d", "outputs", "ratio", "seed") + ATTACK_COLUMNS + ("threshold", "noise")

# (name, type) of every column, in table order.
COLUMNS: tuple[tuple[str, type], ...] = (
    ("activation", str), ("n", int), ("d", int), ("outputs", int), ("ratio", float), ("p", int), ("seed", int),
    ("data_seed", int), ("model_seed", int), ("attack_seed", int),
    *((name, _ATTACK_TYPES[name]) for name in ATTACK_COLUMNS),
    ("threshold", float), ("noise", float),
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
assert set(_TYPES.values()) <= {str, int, float, bool}


# The column list before ``outputs`` existed (every cell then had one output): tables and stores with it
# are read as C = 1 (:func:`read_table`; :mod:`rftheory.experiments.store` migrates such a store).
LEGACY_COLUMN_NAMES = tuple(name for name in COLUMN_NAMES if name != "outputs")


def counting_ratio(d: int, outputs: int = 1) -> float:
    """Counting threshold of θ identifiability with C outputs, as p/(dn): C(p − n) ≥ nd ⇔ p ≥ n + nd/C ⇔
    p/(dn) ≥ 1/d + 1/C (C = 1: the law's 1 + 1/d, i.e. p ≥ n(d + 1))."""
    return 1.0 / d + 1.0 / outputs


def span_ratio(n: int, d: int) -> float:
    """Span identifiability's counting limit n + d + 1 features, as p/(dn): (n + d + 1)/(dn)."""
    return (n + d + 1) / (d * n)


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
    attack: AttackOptions | None = None,
    outputs: Sequence[int] = (1,),
    **options,
) -> list[CellConfig]:
    """The cells of a sweep, in grid order (activation, (n, d), outputs C, ratio, seed).

    Sizes are the explicit (n, d) pairs ``sizes``, or the Cartesian product of
    ``n`` and ``d`` (give both), or :data:`DEFAULT_SIZES`.  Every cell attacks
    with ``attack`` (default ``AttackOptions()``; its seed is replaced by each
    cell's seed), changed by any :data:`ATTACK_COLUMNS` among ``options``
    (``restarts=…``, ``max_iter=…``); ``options`` also sets ``threshold`` and
    ``noise``.  ``outputs`` lists the numbers of label columns C swept (an
    axis of the grid, default one output).  Duplicates are removed; bad values raise ValueError (or
    TypeError for an unknown option or a wrong type).
    """
    from ..models.activations import get_activation  # noqa: PLC0415

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
    unknown = set(options) - set(ATTACK_COLUMNS) - {"threshold", "noise"}
    if unknown:
        raise TypeError(f"unknown cell option(s): {', '.join(sorted(unknown))}")
    if attack is None:
        attack = AttackOptions()
    elif not isinstance(attack, AttackOptions):
        raise TypeError(f"attack must be an AttackOptions record, got {type(attack).__name__}")
    attack = attack.replace(**{k: v for k, v in options.items() if k in ATTACK_COLUMNS})  # checked here
    extra = {}
    if "threshold" in options:
        extra["threshold"] = _positive_float(options["threshold"], "threshold")
    if "noise" in options:
        extra["noise"] = float(options["noise"])
        if not (extra["noise"] >= 0 and math.isfinite(extra["noise"])):
            raise ValueError(f"noise must be non-negative, got {options['noise']!r}")
    if isinstance(outputs, (int, np.integer)):
        outputs = [outputs]
    cs = [check_count(c, "outputs") for c in outputs]
    cells = [
        CellConfig(activation=a, n=nn, d=dd, ratio=r, seed=s, attack=attack, outputs=c, **extra)
        for a in _unique(acts) for nn, dd in _unique(pairs) for c in _unique(cs) for r in _unique(rs)
        for s in _unique(ss)
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
    function of ``config``.  A dict is read as table columns
    (:meth:`CellConfig.from_columns`).
    """
    from .. import __version__  # noqa: PLC0415
    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
    from ..linalg import SingularGramError  # noqa: PLC0415
    from ..attack.metrics import reconstruction_errors  # noqa: PLC0415
    from ..models.random_features import RandomFeatures  # noqa: PLC0415
    from ..attack.reconstruct import reconstruct  # noqa: PLC0415

    if isinstance(config, dict):
        config = CellConfig.from_columns(config)
    c = config
    p = c.p
    row = c.columns()
    row.update(
        p=p, data_seed=c.seed, model_seed=c.seed + MODEL_SEED_OFFSET, attack_seed=c.attack.seed,
        regime=regime(c.n, c.d, p), status="ok", success=False,
        recovered_fraction=_nan(), wrong_sign_fraction=_nan(), sign_aware_mean=_nan(),
        sign_aware_max=_nan(), signed_mean=_nan(), signed_max=_nan(), entrywise_abs_mean=_nan(),
        loss=_nan(), converged=False, restart_losses="", train_residual=_nan(),
        iterations=0, evaluations=0, reseeds=0, attack_time=0.0, version=__version__,
    )
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    with _blas_limit(blas_threads):
        ds = synthetic_sphere(c.n, c.d, seed=c.seed, noise=c.noise, outputs=c.outputs if c.outputs > 1 else None)
        if p < c.n:
            row["status"] = "no_interpolation"
        else:
            # trained in float64 as by `rftheory reconstruct`; the attack's working precision is c.attack.dtype
            model = RandomFeatures(p, c.d, c.activation, seed=c.seed + MODEL_SEED_OFFSET, dtype=np.float64)
            try:
                model.fit(ds.X, ds.y)
            except SingularGramError:
                row["status"] = "singular_gram"
            else:
                row["train_residual"] = float(model.train_residual)
                t0 = time.perf_counter()
                try:
                    res = reconstruct(model.theta, model, c.n, c.attack)
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
                        loss=float(res.loss), converged=bool(res.loss_at_tol),
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
    """A cell of the CSV: booleans as True/False, floats as their shortest round-trip repr."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _parse_bool(text: str) -> bool:
    if text in ("True", "true", "1"):
        return True
    if text in ("False", "false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_PARSERS = {bool: _parse_bool, int: int, float: float, str: str}  # the explicit type of every column


def _row_key(row: dict) -> tuple:
    return tuple(row[name] for name in KEY_COLUMNS)


def _sort_key(row: dict):
    return tuple((0, v) if not isinstance(v, str) else (1, v) for v in _row_key(row))


def _writer(fh) -> csv.DictWriter:
    return csv.DictWriter(fh, fieldnames=COLUMN_NAMES, lineterminator="\n", extrasaction="ignore")


def _formatted(row: dict) -> dict:
    return {name: _format(row[name]) for name in COLUMN_NAMES}


def is_table(path) -> bool:
    """Whether ``path`` is a CSV table this package wrote: its first line is exactly the column
    list of :data:`COLUMNS` (the header marker checked before ``--fresh`` deletes it)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(64 * 1024)
    except OSError:
        return False
    return first.rstrip(b"\r\n") in (",".join(COLUMN_NAMES).encode(), ",".join(LEGACY_COLUMN_NAMES).encode())


def read_table(path) -> list[dict]:
    """Rows of a sweep CSV, typed per :data:`COLUMNS` (file order).

    A truncated last line (a write cut short) is ignored.  A table written
    before the ``outputs`` column existed (:data:`LEGACY_COLUMN_NAMES`) is
    read with ``outputs`` = 1, what every cell then had.  Raises ValueError
    if the file is not UTF-8 text, if the header is not this version's column
    list, or (naming the line and column) if a cell cannot be read as its
    column's type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a sweep table (not UTF-8 text); choose another output file") from None
    if not text.strip():
        return []
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise ValueError(f"{path} is not a sweep table ({exc}); choose another output file") from None
    if header is None:
        return []
    legacy = tuple(header) == LEGACY_COLUMN_NAMES
    if tuple(header) != COLUMN_NAMES and not legacy:
        missing = [c for c in COLUMN_NAMES if c not in header]
        extra = [c for c in header if c not in COLUMN_NAMES]
        raise ValueError(
            f"{path} is not a sweep table of this rftheory version (missing columns {missing}, "
            f"unexpected {extra}); choose another output file"
        )
    rows = []
    try:
        for record in reader:
            if None in record or None in record.values():  # DictReader's marks of too many / too few fields
                raise ValueError(f"{path}:{reader.line_num}: expected {len(header)} fields")
            row = {"outputs": 1} if legacy else {}
            for name in (LEGACY_COLUMN_NAMES if legacy else COLUMN_NAMES):
                kind = _TYPES[name]
                try:
                    row[name] = _PARSERS[kind](record[name])
                except ValueError:
                    raise ValueError(f"{path}:{reader.line_num}: column {name}: cannot read {record[name]!r} "
                                     f"as {kind.__name__}") from None
            rows.append({name: row[name] for name in COLUMN_NAMES})
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: not a valid CSV line ({exc})") from None
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
        writer = _writer(fh)
        writer.writeheader()
        writer.writerows(_formatted(row) for row in rows)
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
    from .store import STORE_SUFFIXES  # noqa: PLC0415

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
    from .store import is_store, remove_store  # noqa: PLC0415

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

        return tuple(pq.read_schema(path).names) == COLUMN_NAMES
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
    from .store import SweepStore  # noqa: PLC0415

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

            warnings.warn(f"{store_path}: a store written before the 'outputs' column was migrated to the current "
                          "schema; its rows are cells with one output (C = 1)", stacklevel=2)
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


# --------------------------------------------------------------------------- analysis


def _group(rows, by):
    groups: dict = {}
    for row in rows:
        # rows made before the ``outputs`` column (or by hand without it) have one output
        groups.setdefault(tuple(row.get(b, 1) if b == "outputs" else row[b] for b in by), []).append(row)
    return groups


def summarize(rows: Iterable[dict], by: Sequence[str] = ("activation", "n", "d", "outputs", "ratio")) -> list[dict]:
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
    outputs: int = 1


def _logistic_objective(beta, x, y):
    """f(β) = −Σ_j log P(y_j | x_j) for P(y=1|x) = σ(β₀ + β₁x), convex in β."""
    from scipy.special import log_expit  # noqa: PLC0415

    z = beta[0] + beta[1] * x
    return -float(np.sum(np.where(y > 0, log_expit(z), log_expit(-z))))


def _logistic_residuals(beta, x, y):
    """P(y=1|x_j) − y_j, computed as σ(z) for failures and −σ(−z) for successes, so that the
    tiny residuals of a separated grid at a steep slope keep their relative precision."""
    from scipy.special import expit  # noqa: PLC0415

    z = beta[0] + beta[1] * x
    return np.where(y > 0, -expit(-z), expit(z))


def _logistic_gradient(beta, x, y):
    r = _logistic_residuals(beta, x, y)
    return np.array([r.sum(), (r * x).sum()])


def _logistic_hessian(beta, x, y):
    from scipy.special import expit  # noqa: PLC0415

    z = beta[0] + beta[1] * x
    w = expit(z) * expit(-z)
    return np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])


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


def _logistic_fit(x, y, start=None) -> tuple[float, float]:
    """ML estimate (m = ln r_c, k) of P(success | x = ln r) = σ(k(x − m)) with
    0 ≤ k ≤ K_MAX; NaN if both outcomes do not occur or the fit is flat.

    f is convex in (β₀, β₁) = (−km, k), so its profile g(β₁) = min_β₀ f is convex
    and the minimum over the slab 0 ≤ β₁ ≤ K_MAX is at β₁ = clip(β₁*, 0, K_MAX),
    β₁* the unconstrained minimiser.  That minimiser exists iff the outcomes
    overlap both ways (max x[fail] > min x[success] and max x[success] >
    min x[fail]); it is found by ``scipy.optimize.minimize(method="trust-exact")``
    with the exact gradient and Hessian, from ``start`` (β₀, β₁) when given.
    β₁* ≤ 0 means no increasing transition (NaN).  When β₁* > K_MAX, or the grid
    separates failures below from successes above (g then decreases for ever),
    the minimum is on the boundary β₁ = K_MAX, where ∂f/∂β₀ = Σ_j (σ(z_j) − y_j)
    increases in β₀ from −Σy to Σ(1 − y) and ``scipy.optimize.brentq`` finds its
    root (scale-free: on a separated grid f is flat to ~e^{−K_MAX·gap} there,
    too flat for a gradient tolerance).  A grid separating the other way
    (successes below failures) has g increasing: NaN.
    """
    from scipy.optimize import brentq, minimize  # noqa: PLC0415

    if y.min() == y.max():
        return float("nan"), float("nan")
    fail, succ = x[y == 0], x[y > 0]
    if succ.max() <= fail.min():  # separated the wrong way round
        return float("nan"), float("nan")
    if fail.max() > succ.min():  # overlap both ways: a finite unconstrained minimum
        if start is None:
            m0 = _interp_crossing(x, y)
            start = (-m0, 1.0) if math.isfinite(m0) else (-float(np.mean(x)), 1.0)
        res = minimize(_logistic_objective, np.asarray(start, dtype=np.float64), args=(x, y), method="trust-exact",
                       jac=_logistic_gradient, hess=_logistic_hessian,
                       options=dict(gtol=1e-9 * len(x), maxiter=200))  # the gradient sums over cells: scale by their count
        b0, b1 = res.x
        if not (math.isfinite(b0) and math.isfinite(b1) and b1 > 1e-8):  # 1e-8: a slope indistinguishable from flat
            return float("nan"), float("nan")
        if b1 <= K_MAX:
            return float(-b0 / b1), float(b1)

    # boundary β₁ = K_MAX; z ≤ −40 (resp. ≥ 40) at every x makes σ(z) ≈ 0 (resp. 1) to 1e-17
    b1 = K_MAX
    score = lambda b0: float(np.sum(_logistic_residuals((b0, b1), x, y)))  # noqa: E731
    b0 = brentq(score, -b1 * x.max() - 40.0, -b1 * x.min() + 40.0, xtol=1e-12, rtol=4 * np.finfo(float).eps)
    return float(-b0 / b1), float(b1)


def _cluster_bootstrap(estimate, x, y, members, n_boot, level, seed):
    """Estimates ``estimate(x[idx], y[idx])[0]`` over ``n_boot`` resamples of the seeds with
    replacement (``scipy.stats.bootstrap`` on the seed indices; each drawn seed brings all its
    cells), without the NaN ones (no transition in that resample)."""
    import warnings  # noqa: PLC0415

    from scipy.stats import DegenerateDataWarning, bootstrap  # noqa: PLC0415

    def statistic(picked):
        idx = np.concatenate([members[int(s)] for s in picked])
        return estimate(x[idx], y[idx])[0]

    rng = np.random.default_rng([seed, 0x1A3])  # the second word gives the bootstrap a stream of its own
    with warnings.catch_warnings():
        # an all-equal distribution (e.g. a separated grid) is "degenerate" to SciPy; the caller takes the
        # percentile interval of the finite estimates itself, which is then a point
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap((np.arange(len(members)),), statistic, n_resamples=n_boot, vectorized=False,
                        confidence_level=level, method="percentile", **_rng_keyword(bootstrap, rng))
    boots = np.asarray(res.bootstrap_distribution, dtype=np.float64).ravel()
    return boots[np.isfinite(boots)]


def _rng_keyword(fn, rng) -> dict:
    """SciPy ≥ 1.15 takes ``rng``; older releases ``random_state``."""
    import inspect  # noqa: PLC0415

    return {"rng": rng} if "rng" in inspect.signature(fn).parameters else {"random_state": rng}


def critical_ratio(
    rows: Iterable[dict],
    *,
    method: str = "logistic",
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    per_size: bool = False,
) -> list[CriticalRatio]:
    """Critical ratio r_c per (activation, outputs C) (pooled over the (n, d)
    sizes, the law's claim being that r = p/(dn) is the right scale), or per
    (activation, C, n, d) with ``per_size``.

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
    by = ("activation", "outputs", "n", "d") if per_size else ("activation", "outputs")
    results = []
    for key, group in sorted(_group(rows, by).items()):
        x = np.log(np.array([r["ratio"] for r in group], dtype=np.float64))
        y = np.array([1.0 if r["success"] else 0.0 for r in group])
        sd = np.array([r["seed"] for r in group])
        sizes = tuple(sorted({(r["n"], r["d"]) for r in group}))
        uniq = np.unique(sd)

        def estimate(xx, yy, start=None):
            if method == "logistic":
                return _logistic_fit(xx, yy, start)
            return _interp_crossing(xx, yy), float("nan")

        m, k = estimate(x, y)
        start = (-k * m, k) if math.isfinite(k) else None  # resamples start at the full sample's fit
        note = ""
        if y.min() == y.max():
            note = ("every cell succeeded: r_c is below the grid" if y.min() > 0
                    else "no cell succeeded: r_c is above the grid")
        elif not math.isfinite(m):
            note = "the success rate does not cross 1/2 on the grid"
        members = [np.flatnonzero(sd == s) for s in uniq]
        boots = np.empty(0)
        if math.isfinite(m) and n_boot > 0:
            if len(uniq) > 1:
                boots = _cluster_bootstrap(lambda xx, yy: estimate(xx, yy, start), x, y, members, n_boot, level, seed)
            else:  # one seed: every resample is the sample itself (SciPy needs two observations)
                boots = np.full(n_boot, m)
        if boots.size:
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
            low=low, high=high, level=level, method=method, n_boot=n_boot, n_boot_valid=int(boots.size),
            slope=k, cells=len(group), seeds=len(uniq), note=note, outputs=int(key[1]),
        ))
    return results
