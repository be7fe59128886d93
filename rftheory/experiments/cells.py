"""One cell of a law sweep: its configuration, the grid of cells, and running a cell.

A cell is one complete experiment (activation σ, n, d, C outputs, ratio r = p/(dn), seed):

1. data      X, y = ``synthetic_sphere(n, d, seed=seed, noise=noise, outputs=C)``;
2. model     ``RandomFeatures(p, d, σ, seed=seed + 1000)`` (float64) with
             p = max(1, round(r·d·n)), fitted as the min-norm interpolator;
3. attack    ``reconstruct(θ, model, n, cell.attack)`` (the cell's AttackOptions, seeded by the cell);
4. metrics   ``reconstruction_errors(X, X̂, threshold)``.

A cell is a success when every sample is recovered (sign-aware error ≤ threshold), never judged
by the loss.  :data:`COLUMNS` lists the table row a cell produces; see :mod:`rftheory.experiments.law`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Sequence, get_type_hints

import numpy as np

from ..attack.options import AttackOptions
from ..validation import check_count


DEFAULT_ACTIVATIONS = ("relu+tanh",)
DEFAULT_SIZES = ((4, 8), (5, 9), (6, 10))
DEFAULT_RATIOS = (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0)
DEFAULT_SEEDS = (0, 1, 2, 3)
MODEL_SEED_OFFSET = 1000  # V seed = seed + 1000, as in ``rftheory reconstruct``


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
