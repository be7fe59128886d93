"""The critical ratio r_c of a sweep: aggregation over seeds, a logistic fit and its bootstrap interval.

See :func:`critical_ratio` for the two estimators and the cluster bootstrap over seeds.  The
same estimate is made for two outcomes of a cell: the attack's success (``outcome="attack"``,
the column ``success``), which locates the threshold of the attack, and the identifiability
probe's (``outcome="probe1"`` or ``"probe2"``, the columns ``probe1_success``,
``probe2_success``), which locates the threshold of identifiability as the local optimiser sees
it (:func:`rftheory.experiments.cells.run_probe`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .cells import FAILURE_CLASSES, PROBE_SLOTS

K_MAX = 100.0  # largest logistic slope in ln r (transition width ≈ 1/K_MAX)
OUTCOMES = ("attack", "probe1", "probe2")  # what critical_ratio fits: the attack's or a probe's success


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
    entries (cells without an attack) are left out of the means.

    Rows with the failure classes and the probe also give ``classes`` (a dict: how many cells
    of each :data:`~rftheory.experiments.cells.FAILURE_CLASSES` value occur) and, for each
    probe slot k, ``probe{k}_angle`` (the group's angle; NaN when the slot is unused or the
    group mixes angles), ``probe{k}_success_rate`` (fraction of cells whose probe at that
    angle recovered every sample; NaN without a probe) and ``probe{k}_classes`` (the probes'
    classes counted like ``classes``)."""

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
        if all("failure_class" in r for r in group):
            entry["classes"] = {c: n for c in FAILURE_CLASSES
                                if (n := sum(r["failure_class"] == c for r in group))}
        for k in range(1, PROBE_SLOTS + 1):
            name = f"probe{k}_angle"
            if not all(name in r for r in group):
                continue
            angles = {r[name] for r in group}
            angle = angles.pop() if len(angles) == 1 else float("nan")
            entry[name] = angle if angle > 0 else float("nan")
            entry[f"probe{k}_success_rate"] = (float(np.mean([bool(r[f"probe{k}_success"]) for r in group]))
                                               if angle > 0 else float("nan"))
            if angle > 0 and all(f"probe{k}_class" in r for r in group):
                entry[f"probe{k}_classes"] = {c: n for c in FAILURE_CLASSES
                                              if (n := sum(r[f"probe{k}_class"] == c for r in group))}
        out.append(entry)
    return out


@dataclass
class CriticalRatio:
    """Estimate of the critical ratio r_c = p/(dn) where reconstruction starts
    to succeed, with a percentile bootstrap interval over seeds.

    ``estimate``/``low``/``high`` are NaN when the data (or too few bootstrap
    resamples) show no transition; ``note`` says why.  ``slope`` is the
    fitted logistic slope k in ln r (NaN for ``"interpolate"``).  ``outcome``
    says whose success was fitted (:data:`OUTCOMES`: the attack, or the probe
    in slot 1 or 2) and ``angle`` the probe's angle in degrees (NaN for the attack).
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
    outcome: str = "attack"
    angle: float = math.nan

    @property
    def label(self) -> str:
        """``"attack"`` or ``"probe 30°"``: whose threshold this is."""
        return "attack" if self.outcome == "attack" else f"probe {self.angle:g}°"


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
    outcome: str = "attack",
) -> list[CriticalRatio]:
    """Critical ratio r_c per (activation, outputs C) (pooled over the (n, d)
    sizes, the law's claim being that r = p/(dn) is the right scale), or per
    (activation, C, n, d) with ``per_size``.

    Success indicators s_j of every cell j (ratio r_j) are fitted by
    ``method`` (see the module docstring); the interval is the percentile
    interval of the estimate over ``n_boot`` cluster-bootstrap resamples of
    the seeds (resamples without a transition are dropped and counted in
    ``n_boot - n_boot_valid``).  Deterministic given ``seed``.

    ``outcome`` picks the indicator: ``"attack"`` (column ``success``) or
    ``"probe1"``/``"probe2"`` (column ``probe1_success``/``probe2_success``, the
    identifiability probe at the angle in ``probe1_angle``/``probe2_angle``).
    For a probe, rows whose slot is unused (angle 0) are left out and the
    groups are also split by the angle; cells without a trained model (p < n)
    count as failures, as they do for the attack.
    """
    if method not in ("logistic", "interpolate"):
        raise ValueError(f"method must be 'logistic' or 'interpolate', got {method!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"n_boot must be non-negative, got {n_boot}")
    rows = list(rows)
    by = ("activation", "outputs", "n", "d") if per_size else ("activation", "outputs")
    column, angle_column = "success", None
    if outcome != "attack":
        column, angle_column = f"{outcome}_success", f"{outcome}_angle"
        rows = [r for r in rows if r.get(angle_column, 0.0) > 0]
        by = by + (angle_column,)
    results = []
    for key, group in sorted(_group(rows, by).items()):
        x = np.log(np.array([r["ratio"] for r in group], dtype=np.float64))
        y = np.array([1.0 if r[column] else 0.0 for r in group])
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
            slope=k, cells=len(group), seeds=len(uniq), note=note, outputs=int(key[1]), outcome=outcome,
            angle=float(key[-1]) if angle_column is not None else math.nan,  # math.nan: one object, so == holds
        ))
    return results
