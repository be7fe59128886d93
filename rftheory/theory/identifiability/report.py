r"""The verdict table of ``rftheory check``: every statement's check for one configuration.

:func:`identifiability_checks` runs the Theorem 1, Theorem 2 and lemma
measurements for one (X, V, σ) and compares each with a stated threshold,
returning a :class:`CheckReport` of :class:`~rftheory.theory.identifiability.common.Check`
verdicts plus the raw results they came from.  The thresholds are the
constants below; the docstring of :func:`identifiability_checks` lists them
check by check.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..hermite import IDENTIFIABLE
from .common import DEFAULT_ORDER, Check, _check_sphere, _weights_act
from .lemmas import feature_norms, feature_rank, kernel_concentration, sign_lemma
from .theorem1 import DEFAULT_DELTA, kernel_spurious_gap, single_sample_residual, spurious_gap
from .theorem2 import DEFAULT_EPS, distinctness_check

__all__ = [
    "CheckReport",
    "identifiability_checks",
    "ROUNDOFF_RESIDUAL",
    "GAP_FRACTION",
    "MISMATCH_FLOOR",
    "SIGN_VISIBLE",
]

ROUNDOFF_RESIDUAL = 1e-10  # "≈ 0": ~1e6·ε of float64 on relative residuals
GAP_FRACTION = 0.5  # Theorem 1 verdict: gap ≥ ½ of its kernel-limit value
MISMATCH_FLOOR = 0.05  # Theorem 2 verdict: min mismatch stays ≥ this
SIGN_VISIBLE = 1e-3  # sign lemma: a flip is visible when its residual is ≥ this


@dataclass
class CheckReport:
    """Checks for one configuration plus the raw results they came from."""

    checks: list = field(default_factory=list)
    results: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def identifiability_checks(
    X,
    model,
    *,
    delta: float = DEFAULT_DELTA,
    eps: float = DEFAULT_EPS,
    starts: int = 32,
    max_iter: int = 300,
    order: int = DEFAULT_ORDER,
    seed: int = 0,
    theorem2: bool = True,
) -> CheckReport:
    """All checks for one (X, V, σ): a list of :class:`Check` verdicts.

    Thresholds (stated here and in the table):

    * R(x_i) ≤ 1e-10 (round-off) for the true samples;
    * rank Φ = min(n, p);
    * ‖ΦΦᵀ/p − K∞‖_op ≤ op_ceiling and max-norm ≤ max_ceiling
      (:func:`kernel_concentration`);
    * |λ_min(ΦΦᵀ)/p − λ_min(K∞)| ≤ op_ceiling;
    * max_i |‖φ(x_i)‖²/p − E σ²|/sd ≤ z (:func:`feature_norms`);
    * spurious gap(δ) ≥ ½·gap∞(δ) (kernel-limit prediction);
    * Theorem 2 (first two samples): min mismatch ≥ 0.05;
    * sign lemma: the flip residual modulo col([1, V]) is ≤ 1e-10 when the
      parity report predicts an ambiguity and ≥ 1e-3 when it predicts
      identifiability.
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    rep = CheckReport()
    C = rep.checks
    truth = float(xp.max(single_sample_residual(X, X, model)))
    C.append(Check("max_i R(x_i) (true samples in span)", truth, ROUNDOFF_RESIDUAL, "<=", "round-off level"))
    rank, pred = feature_rank(X, model)
    C.append(Check("rank Φ", rank, pred, "==", "full rank min(n, p)"))
    kc = kernel_concentration(X, model, order=order)
    rep.results["kernel"] = kc
    C.append(Check("‖ΦΦᵀ/p − K∞‖_op", kc.op_error, kc.op_ceiling, "<=", "10·(E‖E‖_F²)^½ + n·trunc (Markov, 99%)"))
    C.append(Check("max|ΦΦᵀ/p − K∞|", kc.max_error, kc.max_ceiling, "<=", "Gaussian union bound, α = 0.01"))
    C.append(Check("|λ_min(ΦΦᵀ)/p − λ_min(K∞)|", abs(kc.lambda_min_emp - kc.lambda_min_inf), kc.op_ceiling, "<=",
                   f"Weyl; λ_min(K∞) = {kc.lambda_min_inf:.4g}"))
    fn = feature_norms(X, model)
    rep.results["norms"] = fn
    C.append(Check("max_i |‖φ(x_i)‖²/p − Eσ²|/sd", fn.max_z, fn.ceiling, "<=", f"Eσ² = {fn.second_moment:.4g}, sd = {fn.sd:.2e}"))
    sg = spurious_gap(X, model, delta=delta, starts=starts, max_iter=max_iter, seed=seed)
    rep.results["gap"] = sg
    gk = kernel_spurious_gap(X, act, delta=delta, order=order, starts=starts, max_iter=max_iter, seed=seed)
    rep.results["gap_kernel"] = gk
    C.append(Check(f"spurious gap min R(dist ≥ {delta:g})", sg.gap, GAP_FRACTION * gk, ">=",
                   f"½ × kernel-limit gap {gk:.4f}; p/(dn) = {sg.ratio:.3g}"))
    if theorem2 and n >= 2:
        dc = distinctness_check(X[:2], model, eps=eps, starts=max(4, starts // 4), max_iter=max_iter, seed=seed)
        rep.results["distinct"] = dc
        C.append(Check(f"Thm 2: min mismatch, both x̂ within {eps:g} of x_1", dc.mismatch, MISMATCH_FLOOR, ">=",
                       f"p/d = {dc.ratio:.3g}, largest angle {dc.angle:.3f} rad"))
    sl = sign_lemma(X, model)
    rep.results["sign"] = sl
    if sl.prediction == IDENTIFIABLE:
        C.append(Check("sign flip residual mod col([1,V])", sl.affine_residual, SIGN_VISIBLE, ">=", sl.prediction))
    else:
        C.append(Check("sign flip residual mod col([1,V])", sl.affine_residual, ROUNDOFF_RESIDUAL, "<=", sl.prediction))
    return rep
