r"""The supporting lemmas: kernel concentration, λ_min, feature norms, rank, signs.

* Kernel concentration: E = ΦΦᵀ/p − K∞ = Σ_k Y_k, Y_k = (φ_kφ_kᵀ − K∞)/p
  with φ_k = σ(X v_k) ∈ R^n the k-th column of Φ: p independent, zero-mean,
  symmetric n×n summands.  Operator norm, by matrix Bernstein (Tropp 2012,
  Thm 1.4): if ‖Y_k‖ ≤ L and ‖Σ_k E Y_k²‖ ≤ s², then
  P(‖E‖_op ≥ t) ≤ 2n·exp(−(t²/2)/(s² + Lt/3)); at level α this gives
  t(α) = Lℓ/3 + ((Lℓ/3)² + 2s²ℓ)^{1/2}, ℓ = ln(2n/α).  L and s² are
  plug-in values from the same features: L = max_k ‖φ_kφ_kᵀ − K∞‖/p ≤
  (max_k ‖φ_k‖² + ‖K∞‖)/p (the bound is used) and
  s² = ‖(1/p)Σ_k(φ_kφ_kᵀ − K∞)²‖/p.  Max norm: entry (i, j) is a mean of p
  i.i.d. terms φ_ik φ_jk with variance v_ij (estimated from the same
  features), so max|E_ij| ≤ z·max_ij(v_ij/p)^{1/2} with
  z = (2 ln(n(n+1)/α))^{1/2} (Gaussian tail, union over the n(n+1)/2
  entries, level α).  Both ceilings add the truncation bound of K∞ (n·b in
  operator norm, b per entry).  Both are crossed when ΦΦᵀ/p does not
  concentrate at the K∞ of the stated σ and V ~ N(0, 1/d) (e.g. weights of
  another scale).
* λ_min: the lemma's conclusion λ_min(ΦΦᵀ)/p ≥ λ_min(K∞)/2 (by Weyl it
  holds once ‖E‖_op ≤ λ_min(K∞)/2, i.e. for p large enough against n; it
  fails for p close to n), and λ_min(K∞) > 0 certified against the
  truncation, λ_min(K∞) − n·b > 0 (fails for near-duplicate samples, whose
  kernel is nearly singular).
* Feature norm: for ‖x‖ = √d, ⟨v_k, x⟩ ~ N(0, 1) exactly, so ‖φ(x)‖²/p is a
  mean of p i.i.d. σ(g)² with mean E[σ²] and s.d. ((E[σ⁴] − E[σ²]²)/p)^{1/2}
  (moments by quadrature, independently of V).
* Rank: Φ has full rank min(n, p) (distinct samples, non-polynomial σ),
  numerically by the tolerance rule of :mod:`rftheory.theory.span`.
* Sign lemma: relu(z) − relu(−z) = z, so φ(x) − φ(−x) = Vx exactly for
  ReLU; modulo col([1, V]) the features are even.  The residual of φ(−x) on
  span{φ(x), 1, columns of V} is 0 for σ whose parity report is "exact
  per-sample sign symmetry" or "ambiguous modulo col([1, V])", and positive
  for an identifiable (mixed-parity) σ.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...backend import array_namespace
from ...models.activations import get_activation
from ...validation import check_matrix
from ..hermite import kernel_limit, parity_report
from ..span import numerical_rank, row_residuals
from .common import DEFAULT_ORDER, _check_sphere, _features, _weights_act

__all__ = [
    "gaussian_union_z",
    "bernstein_deviation",
    "KernelConcentration",
    "kernel_concentration",
    "activation_moments",
    "FeatureNorms",
    "feature_norms",
    "feature_rank",
    "SignLemma",
    "sign_lemma",
]


def gaussian_union_z(count: int, alpha: float = 0.01) -> float:
    """z with count·P(|N(0,1)| > z) ≤ α via the tail bound P(|N| > z) ≤ 2e^{−z²/2}: z = (2 ln(2·count/α))^{1/2}."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return math.sqrt(2.0 * math.log(2.0 * max(int(count), 1) / alpha))


class KernelConcentration(NamedTuple):
    """Kernel lemma figures for one (X, V).

    op_error, max_error : ‖ΦΦᵀ/p − K∞‖ in operator and max norm.
    fro_scale : (Σ_ij v_ij/p)^{1/2} = (E‖E‖_F²)^{1/2} (v_ij from the features).
    max_scale : max_ij (v_ij/p)^{1/2}.
    kernel_bound : entrywise truncation bound of K∞ (kernel_limit).
    bernstein_L, bernstein_s2 : the plug-in constants L and s² of the matrix Bernstein bound.
    op_ceiling : t(α) + n·kernel_bound, t(α) the matrix Bernstein deviation at level α.
    max_ceiling : z·max_scale + kernel_bound (z = gaussian_union_z(n(n+1)/2, α)).
    lambda_min_emp : λ_min(ΦΦᵀ)/p.   lambda_min_inf : λ_min(K∞).
    n, p.
    """

    op_error: float
    max_error: float
    fro_scale: float
    max_scale: float
    kernel_bound: float
    bernstein_L: float
    bernstein_s2: float
    op_ceiling: float
    max_ceiling: float
    lambda_min_emp: float
    lambda_min_inf: float
    n: int
    p: int


def bernstein_deviation(L: float, s2: float, n: int, alpha: float) -> float:
    """t with 2n·exp(−(t²/2)/(s² + Lt/3)) = α: t = Lℓ/3 + ((Lℓ/3)² + 2s²ℓ)^{1/2}, ℓ = ln(2n/α)
    (matrix Bernstein for a sum of independent zero-mean symmetric n×n matrices, ‖Y_k‖ ≤ L,
    ‖Σ E Y_k²‖ ≤ s²)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    ell = math.log(2.0 * max(int(n), 1) / alpha)
    a = L * ell / 3.0
    return a + math.sqrt(a * a + 2.0 * s2 * ell)


def kernel_concentration(X, model, *, order: int = DEFAULT_ORDER, alpha: float = 0.01) -> KernelConcentration:
    """‖ΦΦᵀ/p − K∞‖ (op and max), its predicted ceilings at level ``alpha``, and λ_min(ΦΦᵀ)/p vs λ_min(K∞).

    K∞ from :func:`rftheory.theory.hermite.kernel_limit` at ``order``; see the
    module docstring for the ceilings (matrix Bernstein for the operator
    norm, a Gaussian union bound for the max norm, both at level α).
    """
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    Phi = _features(X, V, act)
    emp = Phi @ Phi.T / p
    kl = kernel_limit(X, act, order)
    K = xp.asarray(kl.kernel, dtype=np.float64)
    E = emp - K
    op = float(xp.max(xp.abs(xp.linalg.eigvalsh(E))))  # E is symmetric: ‖E‖_op = max |eigenvalue|
    mx = float(xp.max(xp.abs(E)))
    # per-entry variance of φ_ik φ_jk over k (unbiased), without forming n×n×p at once
    var = xp.empty((n, n))
    for i in range(n):
        prod = Phi[i][None, :] * Phi  # (n, p)
        var[i] = xp.var(prod, axis=1, ddof=1) if p > 1 else 0.0
    fro_scale = math.sqrt(float(xp.sum(var)) / p)
    max_scale = math.sqrt(float(xp.max(var)) / p)
    z = gaussian_union_z(n * (n + 1) // 2, alpha)
    lam_emp = float(xp.linalg.eigvalsh(emp)[0])
    K_eigs = xp.linalg.eigvalsh(K)
    lam_inf = float(K_eigs[0])
    # matrix Bernstein plug-ins: L ≥ max_k ‖φ_kφ_kᵀ − K∞‖/p, s² = ‖(1/p)Σ_k (φ_kφ_kᵀ − K∞)²‖/p
    col_sq = xp.sum(Phi * Phi, axis=0)  # ‖φ_k‖², (p,)
    K_norm = float(xp.max(xp.abs(K_eigs)))
    L = (float(xp.max(col_sq)) + K_norm) / p
    M = (Phi * col_sq[None, :]) @ Phi.T / p - K @ emp - emp @ K + K @ K
    M = 0.5 * (M + M.T)
    s2 = float(xp.max(xp.abs(xp.linalg.eigvalsh(M)))) / p
    return KernelConcentration(
        op_error=op,
        max_error=mx,
        fro_scale=fro_scale,
        max_scale=max_scale,
        kernel_bound=kl.error_bound,
        bernstein_L=L,
        bernstein_s2=s2,
        op_ceiling=bernstein_deviation(L, s2, n, alpha) + n * kl.error_bound,
        max_ceiling=z * max_scale + kl.error_bound,
        lambda_min_emp=lam_emp,
        lambda_min_inf=lam_inf,
        n=n,
        p=p,
    )


def activation_moments(activation) -> tuple[float, float]:
    """(E[σ(g)²], E[σ(g)⁴]) for g ~ N(0, 1) by adaptive quadrature (scipy.integrate.quad).

    Independent of the Hermite coefficients and of any V.
    """
    from scipy.integrate import quad  # noqa: PLC0415

    act = get_activation(activation)

    def moment(q):
        def f(x):
            return float(act.fn(np.asarray([x]))[0]) ** q * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

        tot = 0.0
        for lo, hi in ((-math.inf, -8.0), (-8.0, 0.0), (0.0, 8.0), (8.0, math.inf)):
            tot += quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        return tot

    return moment(2), moment(4)


class FeatureNorms(NamedTuple):
    """‖φ(x_i)‖²/p per sample, E[σ²], the predicted s.d. ((E σ⁴ − (E σ²)²)/p)^{1/2},
    the max standardised deviation, and its ceiling z = gaussian_union_z(n, α)."""

    norms_sq: object
    second_moment: float
    sd: float
    max_z: float
    ceiling: float


def feature_norms(X, model, *, alpha: float = 0.01, moments=None) -> FeatureNorms:
    """‖φ(x_i)‖²/p vs E[σ²] for rows on the √d-sphere (⟨v_k, x⟩ ~ N(0, 1) exactly)."""
    X, xp = _check_sphere(X)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    m2, m4 = activation_moments(act) if moments is None else moments
    sd = math.sqrt(max(m4 - m2 * m2, 0.0) / p)
    Phi = _features(X, V, act)
    ns = xp.sum(Phi * Phi, axis=1) / p
    max_z = float(xp.max(xp.abs(ns - m2))) / sd if sd > 0 else math.inf
    return FeatureNorms(ns, m2, sd, max_z, gaussian_union_z(n, alpha))


def feature_rank(X, model, *, rtol=None) -> tuple[int, int]:
    """(numerical rank of Φ, predicted min(n, p))."""
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    V, act = _weights_act(model, xp, X.shape[1])
    Phi = _features(xp.asarray(X, dtype=np.float64), V, act)
    return numerical_rank(Phi, rtol=rtol), min(Phi.shape)


class SignLemma(NamedTuple):
    """Sign lemma figures.

    identity_error : max|φ(x) − φ(−x) − Vx| / max|Vx| (0 for ReLU in exact arithmetic;
        reported for every σ, meaningful for ReLU).
    affine_residual : max_i residual of φ(−x_i) on span{φ(x_i), 1, columns of V}.
    span_flip_residual : max_i residual of φ(−x_i) on span Φ (all samples).
    prediction : hermite.parity_report verdict for σ.
    """

    identity_error: float
    affine_residual: float
    span_flip_residual: float
    prediction: str


def sign_lemma(X, model, *, order: int = 20) -> SignLemma:
    """Measure the sign (parity) structure of the features; see the module docstring."""
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    X = xp.asarray(X, dtype=np.float64)
    V, act = _weights_act(model, xp, X.shape[1])
    p = V.shape[0]
    Z = X @ V.T
    F, Fm = act.fn(Z), act.fn(-Z)
    ident = float(xp.max(xp.abs(F - Fm - Z)) / xp.max(xp.abs(Z)))
    aff = 0.0
    for i in range(X.shape[0]):
        A = xp.concatenate([F[i][None, :], xp.ones((1, p)), V.T], axis=0)
        aff = max(aff, float(row_residuals(Fm[i][None, :], A).relative[0]))
    flip = float(xp.max(row_residuals(Fm, F).relative))
    return SignLemma(ident, aff, flip, parity_report(act, order).prediction)
