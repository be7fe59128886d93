r"""Numerical identifiability checks: Theorem 1, Theorem 2 and the supporting lemmas.

Conventions (docs/design.md)
----------------------------
Data X ∈ R^{n×d} with rows on the sphere of radius √d (‖x_i‖ = √d; the
checks raise ValueError otherwise), weights V ∈ R^{p×d} with i.i.d.
N(0, 1/d) entries, features φ(x) = σ(Vx) ∈ R^p and Φ = σ(XVᵀ) ∈ R^{n×p}
(no 1/√p).  A "model" is a
:class:`rftheory.models.random_features.RandomFeatures` or any object with
``weights`` (V, p×d) and ``activation``; :class:`FixedWeights` wraps an
explicit V.  Every function takes NumPy or CuPy arrays (the backend of X,
see :func:`rftheory.backend.array_namespace`) and returns the same kind;
features are recomputed in float64.  The random starts of the searches are
drawn on the host from ``numpy.random.default_rng([seed, tag])`` (one fixed
tag per search), so NumPy and CuPy runs start alike.

The package's modules:

* :mod:`.common` — models (:class:`FixedWeights`), the sphere check, the
  sign-aware distance dist(x̂) = min_i min_{s=±1} ‖x̂ − s·x_i‖/‖x_i‖ and the
  cap cosine c(δ) = 1 − δ²/2, the verdict record :class:`Check`;
* :mod:`.search` — the batched Riemannian L-BFGS with this package's
  settings (:func:`riemannian_lbfgs`) and the spherical-cap constraints;
* :mod:`.theorem1` — the single-sample residual
  R(x̂) = ‖P⊥_Φ φ(x̂)‖/‖φ(x̂)‖, its kernel limit R∞, the spurious gap
  gap(δ) = inf{R(x̂) : dist(x̂) ≥ δ} and path profiles;
* :mod:`.theorem2` — the span mismatch M(X̂) = ‖P⊥_Φ̂ Φᵀ‖_F/‖Φ‖_F and the
  distinctness check for n = 2;
* :mod:`.lemmas` — kernel concentration ‖ΦΦᵀ/p − K∞‖, λ_min, feature
  norms, rank and the sign lemma;
* :mod:`.report` — :func:`identifiability_checks`, the verdict table of
  ``rftheory check`` (the size hypotheses as measured ratios, the counting
  limits on the sphere n + d and nd + 1, and the verdicts), its
  thresholds, and the counting limits themselves (:func:`counting_limits`,
  as ratios p/(dn) :func:`counting_ratio` and :func:`span_ratio`).
"""
from __future__ import annotations

from .common import DEFAULT_ORDER, SPHERE_RTOL, Check, Distance, FixedWeights, cap_cosine, sign_aware_distance
from .lemmas import (
    FeatureNorms,
    KernelConcentration,
    SignLemma,
    activation_moments,
    feature_norms,
    feature_rank,
    bernstein_deviation,
    gaussian_union_z,
    kernel_concentration,
    sign_lemma,
)
from .report import (
    LEVEL,
    MISMATCH_FLOOR,
    SPURIOUS_ZERO,
    Hypothesis,
    counting_limits,
    counting_ratio,
    span_ratio,
    ROUNDOFF_RESIDUAL,
    SIGN_VISIBLE,
    CheckReport,
    identifiability_checks,
)
from .search import OptimResult, riemannian_lbfgs
from .theorem1 import (
    DEFAULT_DELTA,
    PATH_KINDS,
    PathProfile,
    ResidualMinima,
    SpuriousGap,
    attack_starts,
    kernel_residual,
    kernel_spurious_gap,
    minimize_residual,
    path_profile,
    single_sample_residual,
    spurious_gap,
)
from .theorem2 import DEFAULT_EPS, DistinctnessResult, distinctness_check, span_mismatch

__all__ = [
    "FixedWeights",
    "Check",
    "sign_aware_distance",
    "cap_cosine",
    "single_sample_residual",
    "kernel_residual",
    "riemannian_lbfgs",
    "OptimResult",
    "ResidualMinima",
    "minimize_residual",
    "SpuriousGap",
    "spurious_gap",
    "kernel_spurious_gap",
    "PathProfile",
    "path_profile",
    "PATH_KINDS",
    "DistinctnessResult",
    "span_mismatch",
    "distinctness_check",
    "KernelConcentration",
    "kernel_concentration",
    "FeatureNorms",
    "feature_norms",
    "activation_moments",
    "feature_rank",
    "SignLemma",
    "sign_lemma",
    "gaussian_union_z",
    "identifiability_checks",
    "CheckReport",
    "Distance",
    "ROUNDOFF_RESIDUAL",
    "SPURIOUS_ZERO",
    "LEVEL",
    "Hypothesis",
    "counting_limits",
    "counting_ratio",
    "span_ratio",
    "attack_starts",
    "bernstein_deviation",
    "MISMATCH_FLOOR",
    "SIGN_VISIBLE",
    "DEFAULT_ORDER",
    "DEFAULT_DELTA",
    "DEFAULT_EPS",
    "SPHERE_RTOL",
]
