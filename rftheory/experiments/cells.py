"""One cell of a law sweep: its configuration, the grid of cells, and running a cell.

A cell is one complete experiment (activation σ, n, d, C outputs, ratio r = p/(dn), seed):

1. data      X, y = ``synthetic_sphere(n, d, seed=seed, noise=noise, outputs=C)``;
2. model     ``RandomFeatures(p, d, σ, seed=seed + 1000)`` (float64) with
             p = max(1, round(r·d·n)), fitted as the min-norm interpolator;
3. attack    ``reconstruct(θ, model, n, cell.attack)`` (the cell's AttackOptions, seeded by the cell);
4. metrics   ``reconstruction_errors(X, X̂, threshold)``;
5. truth     the projection loss of the true data, L(X) (the sweep owns the data), and the
             cell's failure class (:func:`failure_class`);
6. probe     the identifiability probe (:func:`run_probe`): the attack's local optimiser alone,
             started at the truth rotated by each of ``probe_angles``.

A cell is a success when every sample is recovered (sign-aware error ≤ threshold), never judged
by the loss.  Steps 5 and 6 read the true X by design: they measure the problem, not the attack
(the attack of step 3 never reads it).  :data:`COLUMNS` lists the table row a cell produces; see
:mod:`rftheory.experiments.law`.

Failure classes (:func:`failure_class`) split the failures of the attack by their cause: the
optimiser did not reach a loss the truth attains (``"optimiser"``), or a wrong X̂ attains it as
well (``"not_identifiable"``).  The probe (:func:`run_probe`) estimates the identifiability
threshold without the global search: its success rate against p/(dn) is a curve of its own,
beside the attack's (:func:`rftheory.experiments.critical.critical_ratio`, ``outcome``).
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
DEFAULT_SIZES = ((4, 8), (5, 9), (6, 10), (5, 40))
DEFAULT_RATIOS = (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0)
DEFAULT_SEEDS = (0, 1, 2, 3)
MODEL_SEED_OFFSET = 1000  # V seed = seed + 1000, as in ``rftheory reconstruct``
DEFAULT_PROBE_ANGLES = (30.0, 60.0)  # degrees between each start row and its true row
PROBE_SLOTS = 2  # probe angles per cell: the table has the columns probe1_*, probe2_*
PROBE_STREAM = 0x9B0BE  # second seed word of the probe's directions (a stream apart from the data's)

# Values of the ``failure_class`` column (see :func:`failure_class`).
FAILURE_CLASSES = ("recovered", "optimiser", "not_identifiable", "truth_not_zero", "no_attack", "unclassified")
NO_ATTACK_STATUSES = ("no_interpolation", "singular_gram")  # the cell has no trained model to attack


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
    label noise of the data.  ``probe_angles`` lists the angles (degrees, in
    (0, 90], at most :data:`PROBE_SLOTS`) of the identifiability probe
    (:func:`run_probe`); an empty tuple runs no probe.
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
    probe_angles: tuple = DEFAULT_PROBE_ANGLES  # degrees; () runs no probe

    def __post_init__(self):
        if not isinstance(self.attack, AttackOptions):
            raise TypeError(f"attack must be an AttackOptions record, got {type(self.attack).__name__}")
        object.__setattr__(self, "outputs", check_count(self.outputs, "outputs"))
        object.__setattr__(self, "probe_angles", check_probe_angles(self.probe_angles))
        # the seed is the cell's; numbers stored as the table's column types
        a = self.attack
        object.__setattr__(self, "attack", a.replace(seed=int(self.seed), tol=float(a.tol), lr=float(a.lr),
                                                     momentum=float(a.momentum)))

    @classmethod
    def from_columns(cls, row: dict) -> "CellConfig":
        """The cell of a table row (or any mapping with the :data:`KEY_COLUMNS`)."""
        extra = {k: row[k] for k in ("threshold", "noise", "outputs") if k in row}
        slots = [f"probe{k}_angle" for k in range(1, PROBE_SLOTS + 1)]
        if any(name in row for name in slots):  # a table row: angle 0 marks an empty slot
            extra["probe_angles"] = tuple(row[name] for name in slots if row.get(name, 0.0) > 0)
        return cls(activation=row["activation"], n=row["n"], d=row["d"], ratio=row["ratio"], seed=row["seed"],
                   attack=AttackOptions(**{k: row[k] for k in ATTACK_COLUMNS if k in row}), **extra)

    def columns(self) -> dict:
        """The configuration as table columns (:data:`KEY_COLUMNS`, in order); an unused probe slot
        has angle 0."""
        flat = dict(activation=self.activation, n=self.n, d=self.d, outputs=self.outputs, ratio=self.ratio,
                    seed=self.seed, threshold=self.threshold, noise=self.noise)
        flat.update({k: getattr(self.attack, k) for k in ATTACK_COLUMNS})
        angles = self.probe_angles + (0.0,) * (PROBE_SLOTS - len(self.probe_angles))
        flat.update({f"probe{k + 1}_angle": float(a) for k, a in enumerate(angles)})
        return {k: flat[k] for k in KEY_COLUMNS}

    @property
    def p(self) -> int:
        from ..models.random_features import features_for_ratio  # noqa: PLC0415  (keeps importing law light)

        return features_for_ratio(self.ratio, self.d, self.n)

    def key(self) -> tuple:
        return tuple(self.columns().values())


PROBE_ANGLE_COLUMNS = tuple(f"probe{k}_angle" for k in range(1, PROBE_SLOTS + 1))
KEY_COLUMNS = (("activation", "n", "d", "outputs", "ratio", "seed") + ATTACK_COLUMNS + ("threshold", "noise")
               + PROBE_ANGLE_COLUMNS)

# (name, type) of every column, in table order.
COLUMNS: tuple[tuple[str, type], ...] = (
    ("activation", str), ("n", int), ("d", int), ("outputs", int), ("ratio", float), ("p", int), ("seed", int),
    ("data_seed", int), ("model_seed", int), ("attack_seed", int),
    *((name, _ATTACK_TYPES[name]) for name in ATTACK_COLUMNS),
    ("threshold", float), ("noise", float), *((name, float) for name in PROBE_ANGLE_COLUMNS),
    ("regime", str), ("status", str), ("success", bool), ("failure_class", str), ("recovered_fraction", float),
    ("wrong_sign_fraction", float), ("sign_aware_mean", float), ("sign_aware_max", float),
    ("signed_mean", float), ("signed_max", float), ("entrywise_abs_mean", float),
    ("loss", float), ("loss_at_tol", bool), ("true_loss", float), ("restart_losses", str),
    ("train_residual", float), ("iterations", int), ("evaluations", int), ("reseeds", int),
    *(column for k in range(1, PROBE_SLOTS + 1)
      for column in ((f"probe{k}_success", bool), (f"probe{k}_class", str), (f"probe{k}_recovered_fraction", float),
                     (f"probe{k}_loss", float), (f"probe{k}_iterations", int))),
    ("wall_time", float), ("attack_time", float), ("probe_time", float), ("cpu_time", float), ("version", str),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
_TYPES = dict(COLUMNS)
TIMING_COLUMNS = ("wall_time", "attack_time", "probe_time", "cpu_time")
assert set(KEY_COLUMNS) <= set(COLUMN_NAMES)
assert set(_TYPES.values()) <= {str, int, float, bool}


# --------------------------------------------------------------------------- earlier table versions

# The column list of the table before the failure classes and the probe (``loss_at_tol`` was then
# called ``converged``), and the one before ``outputs`` existed (every cell then had one output).
# Tables and stores with either are read as the current version (:func:`upgrade_row`):
# :func:`~rftheory.experiments.table.read_table` reads such a CSV, and
# :class:`~rftheory.experiments.store.SweepStore` migrates such a store when it is opened.
SCHEMA_BEFORE_PROBE = (
    "activation", "n", "d", "outputs", "ratio", "p", "seed", "data_seed", "model_seed", "attack_seed",
    "restarts", "max_iter", "tol", "optimizer", "lr", "momentum", "reseed", "reseed_candidates", "derivative",
    "stop_at_tol", "dtype", "batch_restarts", "strategy", "extra_rows", "moves", "merge_cos", "threshold",
    "noise", "regime", "status", "success", "recovered_fraction", "wrong_sign_fraction", "sign_aware_mean",
    "sign_aware_max", "signed_mean", "signed_max", "entrywise_abs_mean", "loss", "converged", "restart_losses",
    "train_residual", "iterations", "evaluations", "reseeds", "wall_time", "attack_time", "cpu_time", "version",
)
LEGACY_COLUMN_NAMES = tuple(name for name in SCHEMA_BEFORE_PROBE if name != "outputs")  # before ``outputs``
LEGACY_SCHEMAS = (LEGACY_COLUMN_NAMES, SCHEMA_BEFORE_PROBE)
_LEGACY_TYPES = {**_TYPES, "converged": bool}


def legacy_type(name: str) -> type:
    """The column type of ``name`` in any table version (``converged`` was a bool)."""
    return _LEGACY_TYPES[name]


def upgrade_row(row: dict) -> dict:
    """A row of an earlier table version (:data:`LEGACY_SCHEMAS`) in the current columns.

    What the earlier versions did not record is filled with what they ran: one output
    (``outputs`` = 1); ``converged`` becomes ``loss_at_tol`` (it only ever meant L ≤ tol); no
    probe (every ``probe*_angle`` 0, success False, class ``"no_attack"``, fraction and loss NaN,
    0 iterations, time 0); the true loss was not measured (NaN), so ``failure_class`` is
    ``"recovered"`` for a success, ``"no_attack"`` for a cell without a trained model, and
    ``"unclassified"`` otherwise.  A row of the current version passes through unchanged.
    """
    row = dict(row)
    row.setdefault("outputs", 1)
    if "converged" in row:
        row.setdefault("loss_at_tol", row.pop("converged"))
    for name in PROBE_ANGLE_COLUMNS:
        row.setdefault(name, 0.0)
    for k in range(1, PROBE_SLOTS + 1):
        row.setdefault(f"probe{k}_success", False)
        row.setdefault(f"probe{k}_class", "no_attack")
        row.setdefault(f"probe{k}_recovered_fraction", _nan())
        row.setdefault(f"probe{k}_loss", _nan())
        row.setdefault(f"probe{k}_iterations", 0)
    row.setdefault("true_loss", _nan())
    row.setdefault("probe_time", 0.0)
    if "failure_class" not in row:
        row["failure_class"] = ("recovered" if row["success"] else
                                "no_attack" if row["status"] in NO_ATTACK_STATUSES else "unclassified")
    return {name: row[name] for name in COLUMN_NAMES}


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
    (``restarts=…``, ``max_iter=…``); ``options`` also sets ``threshold``,
    ``noise`` and ``probe_angles`` (:class:`CellConfig`).  ``outputs`` lists
    the numbers of label columns C swept (an axis of the grid, default one
    output).  Duplicates are removed; bad values raise ValueError (or
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
    unknown = set(options) - set(ATTACK_COLUMNS) - {"threshold", "noise", "probe_angles"}
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
    if "probe_angles" in options:
        extra["probe_angles"] = check_probe_angles(options["probe_angles"])
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


# --------------------------------------------------------------------------- failure classes and the probe


def check_probe_angles(angles) -> tuple:
    """``angles`` as a tuple of floats (degrees), each in (0, 90], distinct, at most :data:`PROBE_SLOTS`;
    ValueError otherwise.  A single number is one angle; an empty sequence (or None) means no probe."""
    if angles is None:
        return ()
    if isinstance(angles, (int, float, np.integer, np.floating)) and not isinstance(angles, bool):
        angles = (angles,)
    try:
        values = tuple(angles)
    except TypeError:
        raise ValueError(f"probe_angles must be a sequence of angles in degrees, got {angles!r}") from None
    out = []
    for a in values:
        if isinstance(a, bool) or not isinstance(a, (int, float, np.integer, np.floating)):
            raise ValueError(f"probe angles must be numbers (degrees), got {a!r}")
        a = float(a)
        if not 0 < a <= 90:  # False for NaN too
            raise ValueError(f"probe angles must lie in (0, 90] degrees, got {a:g}")
        if a in out:
            raise ValueError(f"probe angle {a:g} is given twice")
        out.append(a)
    if len(out) > PROBE_SLOTS:
        raise ValueError(f"at most {PROBE_SLOTS} probe angles per cell (the table has {PROBE_SLOTS} probe slots), "
                         f"got {len(out)}")
    return tuple(out)


def failure_class(status: str, success: bool, loss: float, true_loss: float, tol: float) -> str:
    """The class of a cell's outcome, from its row: why the attack failed, if it did.

    The projection loss L (docs/design.md) is the attack's objective, and the sweep knows the
    truth X, so it compares the attack's final loss L(X̂) with the truth's L(X), both computed
    in float64 and both judged against the attack's own tolerance ``tol`` (the level the attack
    treats as zero: it stops there).  In this order:

    ``"no_attack"``
        ``status`` is one of :data:`NO_ATTACK_STATUSES` (p < n, or a singular Gram matrix):
        there is no trained model to attack.
    ``"recovered"``
        ``success``: every sample recovered (sign-aware error ≤ threshold), whatever the loss.
    ``"truth_not_zero"``
        L(X) > tol (or NaN): the data do not reach the level the attack is asked to reach, so
        neither class below can be told apart.  The min-norm interpolator puts θ in the row
        span of Φ = σ(XVᵀ) exactly, so L(X) = 0 in exact arithmetic; in float64 it is of the
        order of the Gram solve's rounding, far below the default tol = 1e-10.  This class
        therefore flags a numerical problem (an ill-conditioned Gram matrix, or tol = 0,
        which asks for an exact zero) and is never folded into another class.
    ``"not_identifiable"``
        L(X̂) ≤ tol at a wrong X̂: a wrong reconstruction explains θ to the same tolerance as
        the truth, so θ does not single out X at this tolerance (at and below the counting
        limit p = nd, inputs on the sphere, this is expected).
    ``"optimiser"``
        L(X̂) > tol (or NaN: the attack diverged) while L(X) ≤ tol: a better point exists, the
        truth, and the attack did not find it; this says nothing about identifiability.
    """
    if status in NO_ATTACK_STATUSES:
        return "no_attack"
    if success:
        return "recovered"
    if not true_loss <= tol:  # NaN too
        return "truth_not_zero"
    if loss <= tol:
        return "not_identifiable"
    return "optimiser"


def rotated_start(X, angle: float, seed: int):
    """The truth X with every row rotated by ``angle`` degrees on its sphere.

    Row i moves along the great circle from x_i toward a random direction u_i ⊥ x_i:
    x_i(a) = cos(a)·x_i + sin(a)·‖x_i‖·u_i/‖u_i‖, where u_i is the tangent part of a standard
    normal draw g_i (g_i − ⟨g_i, x_i⟩/‖x_i‖²·x_i), drawn from ``default_rng([seed, PROBE_STREAM])``.
    The directions depend on (seed, n, d) only, so every angle of one seed rotates along the same
    great circles, and ‖x_i(a)‖ = ‖x_i‖ (√d for the sweep's data).  The angle between x_i(a) and
    x_i is a, so the start's sign-aware error is 2·sin(a/2) per row (0.52 at 30°, 1 at 60°).
    """
    from ..optim.sphere import riemannian_gradient  # noqa: PLC0415

    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] < 2:
        raise ValueError("d = 1: the sphere is two points, a row cannot be rotated by an angle")
    rng = np.random.default_rng([int(seed), PROBE_STREAM])
    U = riemannian_gradient(X, rng.standard_normal(X.shape))
    U = U / np.linalg.norm(U, axis=1, keepdims=True)
    a = math.radians(angle)
    return math.cos(a) * X + (math.sin(a) * np.linalg.norm(X, axis=1, keepdims=True)) * U


def probe_options(attack: AttackOptions) -> AttackOptions:
    """The attack's local optimiser alone: ``attack`` with one restart (the given start), strategy
    ``"restarts"`` (no birth-death moves), no greedy re-seeding and no batching.  The optimiser,
    its iteration cap, tolerance, derivative and working precision are the attack's."""
    return attack.replace(restarts=1, strategy="restarts", reseed=False, batch_restarts=False, stop_at_tol=True)


def run_probe(theta, model, X, angle: float, attack: AttackOptions, threshold: float, seed: int) -> dict:
    """The identifiability probe at one angle: ``reconstruct(θ, model, n, probe_options(attack),
    init=rotated_start(X, angle, seed))`` and its match to X.

    The probe asks whether the local optimiser, started near the truth (each row ``angle``
    degrees away), returns to it.  It needs no global search, so its success rate against
    p/(dn) estimates where the truth becomes an isolated, attracting zero of L: the
    identifiability threshold as a local optimiser sees it (counting on the sphere: p ≥ nd + 1
    for one output, p > n + n(d − 1)/C for C; :func:`counting_ratio`).  Below that limit the
    zeros of L form a set of dimension nd − p through X (a row on the sphere has d − 1
    freedoms, its coefficient one more), and the optimiser stops on it away from X.  Above it the probe
    fails only when the basin of X is narrower than ``angle``; a larger angle asks for more.
    The probe reads the true X (to start near it): it measures the problem, not an attack.

    Returns ``success`` (every sample recovered, sign-aware error ≤ ``threshold``),
    ``recovered_fraction``, ``loss`` (final L) and ``iterations``; a diverged run
    (FloatingPointError) is a failure with NaN loss, and so is d = 1 (no rotation exists).
    """
    from ..attack.metrics import reconstruction_errors  # noqa: PLC0415
    from ..attack.reconstruct import reconstruct  # noqa: PLC0415

    n = X.shape[0]
    if X.shape[1] < 2:
        return dict(success=False, recovered_fraction=0.0, loss=_nan(), iterations=0)
    try:
        res = reconstruct(theta, model, n, probe_options(attack), init=rotated_start(X, angle, seed))
    except FloatingPointError:
        return dict(success=False, recovered_fraction=0.0, loss=_nan(), iterations=0)
    errs = reconstruction_errors(X, np.asarray(res.X_hat), threshold)
    return dict(success=bool(np.all(errs.recovered)), recovered_fraction=float(errs.recovered_fraction),
                loss=float(res.loss), iterations=int(res.iterations))


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
    """Run one cell (data → fit → attack → metrics → true loss and failure class → probe) and
    return its table row.

    The attack is ``reconstruct(θ, model, n, cell.attack)``, exactly as a direct call with that
    record; the true loss L(X) (:func:`~rftheory.attack.loss.projection_loss` in float64),
    :func:`failure_class` and the probes (:func:`run_probe`, one per angle of
    ``cell.probe_angles``, columns ``probe1_*``, ``probe2_*``, each with its own class by the same
    rule: a probe that stops above tol is ``"optimiser"``, one at a wrong zero
    ``"not_identifiable"``) come after it and do not change it.  Cells without a trained model
    (p < n, singular Gram) run neither attack nor probe (class ``"no_attack"``); an unused probe
    slot keeps class ``"no_attack"`` too.

    ``blas_threads`` limits the BLAS thread pool during the cell (None: leave
    it alone); with a fixed limit the row (timing columns aside) is a pure
    function of ``config``.  A dict is read as table columns
    (:meth:`CellConfig.from_columns`).
    """
    from .. import __version__  # noqa: PLC0415
    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
    from ..linalg import SingularGramError  # noqa: PLC0415
    from ..attack.loss import projection_loss  # noqa: PLC0415
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
        regime=regime(c.n, c.d, p), status="ok", success=False, failure_class="",
        recovered_fraction=_nan(), wrong_sign_fraction=_nan(), sign_aware_mean=_nan(),
        sign_aware_max=_nan(), signed_mean=_nan(), signed_max=_nan(), entrywise_abs_mean=_nan(),
        loss=_nan(), loss_at_tol=False, true_loss=_nan(), restart_losses="", train_residual=_nan(),
        iterations=0, evaluations=0, reseeds=0, attack_time=0.0, probe_time=0.0, version=__version__,
    )
    for k in range(1, PROBE_SLOTS + 1):
        row.update({f"probe{k}_success": False, f"probe{k}_class": "no_attack", f"probe{k}_recovered_fraction": _nan(),
                    f"probe{k}_loss": _nan(), f"probe{k}_iterations": 0})
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
                        loss=float(res.loss), loss_at_tol=bool(res.loss_at_tol),
                        restart_losses=";".join(repr(float(v)) for v in res.restarts),
                        iterations=int(res.iterations), evaluations=int(res.evaluations),
                        reseeds=int(res.reseeds),
                    )
                row["attack_time"] = time.perf_counter() - t0
                row["true_loss"] = float(projection_loss(ds.X, model.theta, model, with_grad=False).loss)
                t0 = time.perf_counter()
                for k, angle in enumerate(c.probe_angles, start=1):
                    pr = run_probe(model.theta, model, ds.X, angle, c.attack, c.threshold, c.seed)
                    pr["class"] = failure_class("ok", pr["success"], pr["loss"], row["true_loss"], c.attack.tol)
                    row.update({f"probe{k}_{name}": value for name, value in pr.items()})
                row["probe_time"] = time.perf_counter() - t0
    row["failure_class"] = failure_class(row["status"], row["success"], row["loss"], row["true_loss"], c.attack.tol)
    row["wall_time"] = time.perf_counter() - wall0
    row["cpu_time"] = time.thread_time() - cpu0
    return {name: row[name] for name in COLUMN_NAMES}
