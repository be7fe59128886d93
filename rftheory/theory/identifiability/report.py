r"""The verdict table of ``rftheory check``: every statement's check for one configuration.

:func:`identifiability_checks` runs the Theorem 1, Theorem 2 and lemma
measurements for one (X, V, σ) and returns a :class:`CheckReport` with

* ``hypotheses``: each theorem's size hypothesis ("p ≫ dn", "p ≫ n") as the
  measured ratio (:class:`Hypothesis`; informational, never a verdict: the
  statements give no explicit constant for ≫, so no threshold on the ratio is
  the paper's, and the conclusions are measured whatever the ratio);
* ``limits``: the two counting limits as numbers of features on the
  √d-sphere (:func:`counting_limits`) — span identifiability n + d and θ
  identifiability nd + 1 — and, with C outputs, C(p − n) against n(d − 1);
* ``checks``: the verdicts, each a measured conclusion compared with a
  threshold from a stated inequality (:class:`~rftheory.theory.identifiability.common.Check`),
  every one of which a constructed case crosses (tests/theory/test_identifiability_failures.py).

The thresholds are the constants below; :func:`identifiability_checks` lists
them row by row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..hermite import IDENTIFIABLE
from .common import DEFAULT_ORDER, Check, _check_sphere, _weights_act
from .lemmas import feature_norms, feature_rank, kernel_concentration, sign_lemma
from .theorem1 import DEFAULT_DELTA, attack_starts, single_sample_residual, spurious_gap
from .theorem2 import DEFAULT_EPS, distinctness_check

__all__ = [
    "CheckReport",
    "Hypothesis",
    "identifiability_checks",
    "counting_limits",
    "counting_ratio",
    "span_ratio",
    "ROUNDOFF_RESIDUAL",
    "SPURIOUS_ZERO",
    "MISMATCH_FLOOR",
    "SIGN_VISIBLE",
    "LEVEL",
]

ROUNDOFF_RESIDUAL = 1e-10  # "≈ 0" for a residual computed directly: ~1e6·ε of float64 on relative residuals
# Theorem 1: a spurious zero is found when the search's min R over the far region is at or below this.
# The search minimises R² in float64, so an exact zero is resolved only to about √ε ≈ 1.5e-8 in R (R²'s
# round-off is ~ε); 1e-6 leaves two decades for conditioning and is three decades below the smallest gap
# measured at and just above the span limit (8.6e-4 at n = 12, d = 40, p = n + d = 52; 3e-3 at p = 53).
SPURIOUS_ZERO = 1e-6
MISMATCH_FLOOR = 0.05  # Theorem 2 verdict: min mismatch stays ≥ this
SIGN_VISIBLE = 1e-3  # sign lemma: a flip is visible when its residual is ≥ this
SIGN_ORDER = 20  # sign lemma: the Hermite orders the parity prediction reads
LEVEL = 0.01  # level α of the concentration ceilings (matrix Bernstein, Gaussian union bound)
LAMBDA_FRACTION = 0.5  # the λ_min lemma's conclusion: λ_min(ΦΦᵀ)/p ≥ ½ λ_min(K∞)


@dataclass(frozen=True)
class Hypothesis:
    """A theorem's size hypothesis, reported as the measured ratio it is about; never a verdict.

    The statements read "p ≫ dn" (Theorem 1; Theorem 2 at n = 2) and "p ≫ n"
    (the kernel lemmas) with no explicit constant, so there is no stated
    inequality to compare the ratio with: ``measured`` is the ratio
    (p/(dn), p/(2d), p/n) and ``detail`` its formula.  The conclusions are
    measured and judged whatever the ratio.
    """

    statement: str
    measured: float
    detail: str = ""


def counting_limits(n: int, d: int, p: int, outputs: int = 1) -> dict:
    """The counting limits of one configuration on the √d-sphere, as numbers of features.

    A row on the sphere has d − 1 freedoms.  ``span`` = n + d: a far x̂ with
    φ(x̂) = Φᵀa ∈ span Φ is p equations in (d − 1) + n unknowns (x̂, a), a
    solution set of dimension n + d − 1 − p; it is ≥ 1 through every x_i for
    p ≤ n + d − 2 (spurious zeros on curves leaving the x_i), 0 at
    p = n + d − 1 (isolated zeros, which need not be real), and negative from
    p = n + d, where no far zero exists generically.  ``theta`` = nd + 1:
    θ = Φ̂ᵀα is p equations in n(d − 1) + n = nd unknowns (X̂, α), so wrong X̂
    with θ in their span exist for p ≤ nd (isolated at p = nd) and not from
    p = nd + 1.  With C outputs Θ = Φ̂ᵀA is Cp equations in n(d − 1) + nC
    unknowns: ``equations`` = C(p − n) against ``unknowns`` = n(d − 1),
    identifiable by counting when equations > unknowns, i.e.
    p > ``boundary`` = n + n(d − 1)/C (C = 1: p > nd; C = n: p > n + d − 1).
    As ratios p/(dn) the same limits are :func:`counting_ratio` and
    :func:`span_ratio`.  For x̂ in R^d instead of on the sphere (d freedoms
    a row) each count is one feature per row higher: n + d + 1, n(d + 1) and
    C(p − n) ≥ nd; the package's data and candidates live on the sphere.
    """
    C = int(outputs)
    return dict(span=n + d, theta=n * d + 1, outputs=C, equations=C * (p - n), unknowns=n * (d - 1),
                boundary=n + n * (d - 1) / C)


def counting_ratio(d: int, outputs: int = 1) -> float:
    """θ identifiability's counting limit with C outputs, as p/(dn), on the √d-sphere.

    C(p − n) > n(d − 1) ⇔ p > n + n(d − 1)/C ⇔ p/(dn) > 1/d + (d − 1)/(dC)
    (:func:`counting_limits`; n cancels).  Wrong X̂ with Θ in their span exist
    by counting at and below the returned ratio and not above it.  C = 1: 1
    (wrong X̂ up to p = nd, none from nd + 1, i.e. p/(dn) ≥ 1 + 1/(nd));
    C = n: :func:`span_ratio`, the span limit.
    """
    return (1.0 + (d - 1) / outputs) / d


def span_ratio(n: int, d: int) -> float:
    """Span identifiability's counting limit, as p/(dn), on the √d-sphere: (n + d − 1)/(dn).

    Spurious zeros exist by counting at and below it (p ≤ n + d − 1) and not
    above it (from p = n + d, ``counting_limits(...)["span"]``).
    """
    return (n + d - 1) / (d * n)


@dataclass
class CheckReport:
    """Checks for one configuration plus the raw results they came from, the hypotheses and the limits."""

    checks: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    hypotheses: list = field(default_factory=list)
    limits: dict = field(default_factory=dict)

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
    outputs: int = 1,
    attack_seeding: bool = True,
) -> CheckReport:
    """All checks for one (X, V, σ): hypotheses, counting limits and :class:`Check` verdicts.

    Verdicts (measured RELATION threshold), with the inequality each comes from:

    * rank Φ = min(n, p): distinct samples, non-polynomial σ (crossed by
      duplicate samples);
    * ‖ΦΦᵀ/p − K∞‖_op ≤ t(α) + n·b: matrix Bernstein at level α = 0.01
      with plug-in constants, b the truncation bound of K∞
      (:func:`~rftheory.theory.identifiability.lemmas.kernel_concentration`);
    * max|ΦΦᵀ/p − K∞| ≤ z·max(v_ij/p)^{1/2} + b: Gaussian union bound, α = 0.01
      (both crossed by weights of another scale than N(0, 1/d));
    * λ_min(ΦΦᵀ)/p ≥ ½ λ_min(K∞): the λ_min lemma (crossed by p close to n);
    * λ_min(K∞) − n·b ≥ 0: K∞ certified positive definite (crossed by
      near-duplicate samples);
    * max_i |‖φ(x_i)‖²/p − Eσ²|/sd ≤ z: CLT scale and union bound, α = 0.01;
    * Theorem 1's conclusion: the spurious gap min{R(x̂) : dist(x̂) ≥ δ} found
      by the search is above SPURIOUS_ZERO = 1e-6 (the search's round-off
      level for an exact zero); at or below it a spurious zero was found:
      FAIL.  Crossed for p ≤ n + d − 2 (and, where real isolated zeros
      exist, at p = n + d − 1: :func:`counting_limits`).  The search starts
      from ``starts`` random points (half on the cap boundaries) plus, when
      ``attack_seeding`` and p ≤ nd, the far rows of the attack's own
      zero-loss reconstructions (:func:`~rftheory.theory.identifiability.theorem1.attack_starts`);
    * Theorem 2 (first two samples): min mismatch ≥ 0.05 (crossed for p ≤ d + 1);
    * sign lemma: the measured flip residual of φ(−x_i) modulo
      span{φ(x_i), 1, columns of V} against the prediction of the Hermite
      parity report (:func:`~rftheory.theory.hermite.parity_report`, which
      reads μ_k for k ≤ 20 and counts |μ_k| > 1e-10 + its error bound as
      non-zero).  Predicted identifiable (both nonlinear parities): ≥ 1e-3
      (crossed when p ≤ d + 2, where that span is all of R^p, or by an
      activation nearly sign-symmetric, relu + 1e-5·tanh).  Predicted
      ambiguous (σ(−z) = ±σ(z) + affine, or σ affine): ≤ 1e-10, exact
      because then φ(−x) = ±φ(x) + a·1 + b·Vx and the residual is round-off;
      crossed when σ has a parity-breaking part the report cannot see:
      below its tolerance (abs + 5e-10·tanh, whose μ_1 = 3.0e-10 counts and
      μ_3 = −7.4e-11 does not, so the report reads "even plus linear" while
      the odd nonlinear part still moves φ(−x) off that span by more than
      round-off) or beyond its order (|z| + 0.1·h_21(z), read as even).

    Reported, not a verdict (it cannot fail: R(x_i) = 0 by construction):
    ``results["truth_residual"]`` = max_i R(x_i), the round-off of the projection.

    Hypotheses (ratios, not verdicts: "≫" comes with no explicit constant):
    Theorem 1 p/(dn) (p ≫ dn), Theorem 2 p/(2d) (p ≫ dn at n = 2), the
    kernel lemmas p/n (p ≫ n).  ``outputs`` = C adds the multi-output
    counting C(p − n) vs n(d − 1) to ``limits`` (:func:`counting_limits`).
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    rep = CheckReport()
    rep.limits = counting_limits(n, d, p, outputs)
    H = rep.hypotheses
    H.append(Hypothesis("Theorem 1: p ≫ dn", p / (d * n), "p/(dn)"))
    if theorem2 and n >= 2:
        H.append(Hypothesis("Theorem 2: p ≫ dn at n = 2", p / (2 * d), "p/(2d)"))
    H.append(Hypothesis("kernel lemmas: p ≫ n", p / n, "p/n"))
    C = rep.checks
    # R(x_i) is 0 by construction: its measured value is the projection's round-off, reported, not a verdict
    rep.results["truth_residual"] = float(xp.max(single_sample_residual(X, X, model)))
    rank, pred = feature_rank(X, model)
    C.append(Check("rank Φ", rank, pred, "==", "full rank min(n, p): distinct samples"))
    kc = kernel_concentration(X, model, order=order, alpha=LEVEL)
    rep.results["kernel"] = kc
    C.append(Check("‖ΦΦᵀ/p − K∞‖_op", kc.op_error, kc.op_ceiling, "<=",
                   f"matrix Bernstein, α = {LEVEL:g}: t(α) + n·trunc (L = {kc.bernstein_L:.3g}, "
                   f"s² = {kc.bernstein_s2:.3g})"))
    C.append(Check("max|ΦΦᵀ/p − K∞|", kc.max_error, kc.max_ceiling, "<=", f"Gaussian union bound, α = {LEVEL:g}"))
    C.append(Check("λ_min(ΦΦᵀ)/p", kc.lambda_min_emp, LAMBDA_FRACTION * kc.lambda_min_inf, ">=",
                   f"lemma: ≥ ½ λ_min(K∞), λ_min(K∞) = {kc.lambda_min_inf:.4g}"))
    C.append(Check("λ_min(K∞) − n·trunc", kc.lambda_min_inf - n * kc.kernel_bound, 0.0, ">=",
                   "K∞ certified positive definite: distinct samples"))
    fn = feature_norms(X, model, alpha=LEVEL)
    rep.results["norms"] = fn
    C.append(Check("max_i |‖φ(x_i)‖²/p − Eσ²|/sd", fn.max_z, fn.ceiling, "<=",
                   f"CLT scale, union bound α = {LEVEL:g}; Eσ² = {fn.second_moment:.4g}, sd = {fn.sd:.2e}"))
    extra = attack_starts(X, model, delta=delta, seed=seed) if attack_seeding else None
    sg = spurious_gap(X, model, delta=delta, starts=starts, max_iter=max_iter, seed=seed, extra_starts=extra)
    rep.results["gap"] = sg
    rep.results["attack_starts"] = 0 if extra is None else int(len(extra))
    C.append(Check(f"Thm 1: spurious gap min R(dist ≥ {delta:g})", sg.gap, SPURIOUS_ZERO, ">=",
                   f"≤ {SPURIOUS_ZERO:g} (search round-off) is a spurious zero; p = {p} vs span limit n + d = "
                   f"{n + d}"))
    if theorem2 and n >= 2:
        dc = distinctness_check(X[:2], model, eps=eps, starts=max(4, starts // 4), max_iter=max_iter, seed=seed)
        rep.results["distinct"] = dc
        C.append(Check(f"Thm 2: min mismatch, both x̂ within {eps:g} of x_1", dc.mismatch, MISMATCH_FLOOR, ">=",
                       f"p/d = {dc.ratio:.3g}, largest angle {dc.angle:.3f} rad"))
    sl = sign_lemma(X, model, order=SIGN_ORDER)
    rep.results["sign"] = sl
    why = f"Hermite parity prediction (μ_k, k ≤ {SIGN_ORDER}): {sl.prediction}"
    if sl.prediction == IDENTIFIABLE:
        C.append(Check("sign flip residual mod col([1,V])", sl.affine_residual, SIGN_VISIBLE, ">=", why))
    else:
        C.append(Check("sign flip residual mod col([1,V])", sl.affine_residual, ROUNDOFF_RESIDUAL, "<=", why))
    return rep
