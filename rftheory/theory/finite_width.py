r"""Finite-width calculator: a concentration bound on the RF kernel, and the
empirically measured reconstruction threshold beside it.

**This is rftheory's own bound, derived below; it is not the bound of
arXiv 2605.06519** (whose finite-width recovery guarantee is not reproduced
here).  It answers: how wide must the RF model be so that, with probability
at least 1 − δ over V, every entry of the empirical kernel is ε-close to its
limit,

    max_{i,j} |K̂_ij − K∞_ij| ≤ ε,    K̂_ij = (1/p) Σ_{k=1}^p σ(v_kᵀx_i) σ(v_kᵀx_j),

with K∞_ij = E[σ(g_i)σ(g_j)] (docs/design.md: K∞ = E_V[ΦΦᵀ]/p).

Setting.  Rows on the √d-sphere and v_k ~ N(0, I/d) i.i.d., so for each k
the pair (g_ki, g_kj) = (v_kᵀx_i, v_kᵀx_j) is standard bivariate normal with
correlation ρ_ij = x_iᵀx_j/d, and the summands Y_k = σ(g_ki)σ(g_kj) are
i.i.d. over k with mean K∞_ij.  K̂ is symmetric, so there are
N = n(n+1)/2 distinct entries; a union bound over them costs log N (the
often-quoted n² would add at most log 2).

Bounded σ (tanh, erf, sigmoid, …): Hoeffding.  If σ takes values in
[a, b] then Y_k lies in [y_lo, y_hi] = [min, max] of {a², ab, b²} (a bilinear
function attains its extremes at corners), w = y_hi − y_lo, and Hoeffding's
inequality for a mean of p independent bounded variables gives

    P(|K̂_ij − K∞_ij| ≥ ε) ≤ 2 exp(−2pε²/w²).

The union bound over N entries is ≤ δ as soon as

    p ≥ w² log(2N/δ) / (2ε²).                                        (H)

Unbounded Lipschitz σ (relu, leaky_relu, abs, softplus, gelu, silu,
relu+tanh, …): truncation + Hoeffding.  Y_k is only sub-exponential, so the
variables are truncated at level T: Ỹ_k = Y_k·1{|g_ki| ≤ T, |g_kj| ≤ T}.

1. Truncation event.  E = {|v_kᵀx_i| ≤ T for all k ≤ p, i ≤ n}.  Each
   v_kᵀx_i is N(0, 1), so P(Eᶜ) ≤ 2pn·Q(T), Q the standard normal upper
   tail.  Require 2pn·Q(T) ≤ δ/2.  On E, K̂_ij = (1/p)Σ_k Ỹ_k exactly.
2. Bias.  With A = {|g_i| > T or |g_j| > T}, Cauchy–Schwarz twice gives
   |E Ỹ − E Y| = |E[Y 1_A]| ≤ (E Y²)^{1/2} P(A)^{1/2} ≤ (M₄ · 4Q(T))^{1/2},
   M₄ = E[σ(g)⁴] (E[σ_i²σ_j²] ≤ (E σ_i⁴ E σ_j⁴)^{1/2} = M₄).  Require
   2 (M₄ Q(T))^{1/2} ≤ ε/2.
3. Fluctuation.  Ỹ_k lies in the range of products of values of σ on
   [−T, T] together with 0 (the truncated value), of width w_T.  Hoeffding
   with deviation ε/2 and failure δ/(2N) per entry needs
   p ≥ w_T² log(4N/δ) / (2(ε/2)²) = 2 w_T² log(4N/δ)/ε².
4. On E and the fluctuation event (together probability ≥ 1 − δ),
   |K̂_ij − K∞_ij| ≤ ε/2 + ε/2 = ε for all i, j.

Steps 1 and 3 couple p and T (T must grow like √(2 log(4pn/δ))), so p is
found by the fixed-point iteration p ← ⌈2 w_{T(p)}² log(4N/δ)/ε²⌉ with
T(p) the smallest level satisfying 1 and 2; it increases monotonically and
stops when p repeats.  The range of σ on [−T, T] is evaluated on a grid of
spacing h and widened by L·h/2 with L = max|σ'| (numerical Lipschitz
constant) so the grid cannot under-estimate it; M₄ is a 1-D quadrature.

``inequality="bernstein"`` replaces Hoeffding by Bernstein's inequality in
both cases: for |Y − EY| ≤ c (c = w, resp. w_T) and Var Y ≤ M₄,
P(|Ȳ − EY| ≥ t) ≤ 2 exp(−pt²/(2(M₄ + ct/3))), so
p ≥ 2(M₄ + ct/3) log(2N'/δ')/t² with (t, N'/δ') = (ε, N/δ) for bounded σ
and (ε/2, 2N/δ) for the truncated case.  It is much tighter when M₄ ≪ c².

Accuracy target for the Gram matrix.  Weyl's inequality and
‖E‖₂ ≤ n·max|E_ij| give λ_min(K̂) ≥ λ_min(K∞) − n·ε, so
ε = f·λ_min(K∞)/n guarantees λ_min(ΦΦᵀ/p) ≥ (1 − f)·λ_min(K∞) (f = 1/2 by
default, :func:`gram_width`).  Neither figure depends on d: kernel
concentration is necessary for the reconstruction law, not sufficient, and
the measured threshold p ≈ dn (:func:`empirical_threshold`) is a different
quantity.  Both are printed side by side by ``benchmarks/bench_subspace.py``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, special

from ..models.activations import get_activation
from ..backend import array_namespace, to_numpy
from ..validation import check_count, check_matrix

__all__ = [
    "BOUND_LABEL",
    "FiniteWidthBound",
    "kernel_width_bound",
    "gram_accuracy",
    "gram_width",
    "activation_range",
    "fourth_moment",
    "kernel_deviation",
    "measured_kernel_width",
    "measured_gram_width",
    "EmpiricalThreshold",
    "empirical_threshold",
]

BOUND_LABEL = "rftheory's bound (Hoeffding-type, derived in rftheory.theory.finite_width; not the paper's)"
INEQUALITIES = ("hoeffding", "bernstein")


@dataclass
class FiniteWidthBound:
    """Width p suggested by the kernel concentration bound (module docstring).

    Attributes
    ----------
    p : int
        Suggested number of random features.
    n, delta, eps : the target (n samples, failure probability, accuracy).
    entries : int
        N = n(n+1)/2, the entries in the union bound.
    regime : str
        "bounded" (Hoeffding directly) or "truncated" (Lipschitz σ).
    inequality : "hoeffding" or "bernstein".
    summand_range : (float, float)
        Range of the (truncated) summands Y_k used by the inequality.
    truncation : float or None
        Truncation level T (truncated regime only).
    moment4 : float
        M₄ = E[σ(g)⁴].
    label : str
        Always :data:`BOUND_LABEL`.
    """

    p: int
    n: int
    delta: float
    eps: float
    entries: int
    regime: str
    inequality: str
    summand_range: tuple
    truncation: float | None
    moment4: float
    activation: str
    label: str = BOUND_LABEL

    def formula(self) -> str:
        w = self.summand_range[1] - self.summand_range[0]
        if self.inequality == "bernstein":
            return "p ≥ 2(M₄ + c·t/3)·log(2N'/δ')/t²  (Bernstein; see rftheory.theory.finite_width)"
        if self.regime == "bounded":
            return f"p ≥ w²·log(2N/δ)/(2ε²), w = {w:.4g}, N = {self.entries}"
        return f"p ≥ 2·w_T²·log(4N/δ)/ε², T = {self.truncation:.4g}, w_T = {w:.4g}, N = {self.entries}"


def _grid_range(fn, lo, hi, L, points=200_001, refine=2_001):
    """(min, max) of fn on [lo, hi], certified for an L-Lipschitz fn.

    Coarse grid, then a fine grid on the two cells around each extreme; the
    result is widened by L·h'/2 (h' the fine spacing), the most an
    L-Lipschitz function can exceed its values at the grid points.
    """
    z = np.linspace(lo, hi, points)
    v = np.asarray(fn(z), dtype=np.float64)
    h = (hi - lo) / (points - 1)
    out = []
    for i, pick in ((int(np.argmin(v)), np.min), (int(np.argmax(v)), np.max)):
        zf = np.linspace(max(lo, z[i] - h), min(hi, z[i] + h), refine)
        out.append(float(pick(np.concatenate([v[i : i + 1], np.asarray(fn(zf), dtype=np.float64)]))))
    slack = 0.5 * L * (2 * h / (refine - 1))
    return out[0] - slack, out[1] + slack


@functools.lru_cache(maxsize=64)
def _lipschitz(act, span=60.0):
    z = np.linspace(-span, span, 240_001)
    return float(np.max(np.abs(act.deriv(z))))


def _is_bounded(act) -> bool:
    far = np.abs(act.fn(np.array([-1e6, 1e6]))).max()
    near = np.abs(act.fn(np.array([-1e3, 1e3]))).max()
    return bool(np.isfinite(far) and far <= 1.001 * near + 1e-9)


def activation_range(activation, T: float | None = None) -> tuple[float, float]:
    """[inf σ, sup σ] over [−T, T] (T = None: over R, for bounded σ).

    Evaluated on a grid, refined around the extremes, and widened by L·h/2
    (L = max|σ'| on [−60, 60], h the finest spacing): an L-Lipschitz
    function cannot exceed its grid values by more.  Over R the grid is
    [−60, 60] plus σ(±10⁶) (saturating σ).  Cached per (σ, T).
    """
    if T is not None and not T > 0:
        raise ValueError(f"T must be positive, got {T}")
    return _activation_range(get_activation(activation), None if T is None else float(T))


@functools.lru_cache(maxsize=1024)
def _activation_range(act, T):
    L = _lipschitz(act)
    if T is None:
        if not _is_bounded(act):
            raise ValueError(f"σ = {act.name} is unbounded; give a truncation level T")
        lo, hi = _grid_range(act.fn, -60.0, 60.0, L)
        tails = np.asarray(act.fn(np.array([-1e6, 1e6])), dtype=np.float64)
        return min(lo, float(tails.min())), max(hi, float(tails.max()))
    return _grid_range(act.fn, -T, T, L)


def _product_range(a, b, with_zero=False):
    corners = [a * a, a * b, b * b] + ([0.0] if with_zero else [])
    return min(corners), max(corners)


def fourth_moment(activation) -> float:
    """M₄ = E[σ(g)⁴], g ~ N(0, 1) (adaptive quadrature; cached per σ)."""
    return _fourth_moment(get_activation(activation))


@functools.lru_cache(maxsize=64)
def _fourth_moment(act) -> float:
    def f(z):
        return float(act.fn(np.array([z]))[0]) ** 4 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    val = sum(integrate.quad(f, a, b, limit=200)[0] for a, b in ((-np.inf, -1.0), (-1.0, 0.0), (0.0, 1.0), (1.0, np.inf)))
    return float(val)


def _check_target(n, delta, eps):
    check_count(n, "n")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be positive and finite, got {eps}")


def _q_inverse(prob: float) -> float:
    """Smallest T ≥ 0 with Q(T) ≤ prob (Q the standard normal upper tail)."""
    return max(0.0, -float(special.ndtri(prob))) if prob < 0.5 else 0.0


def kernel_width_bound(n: int, delta: float, eps: float, activation="relu+tanh", *,
                       inequality: str = "hoeffding", bounded: bool | None = None) -> FiniteWidthBound:
    """Width p with P(max_ij |K̂_ij − K∞_ij| > ε) ≤ δ (this package's bound).

    Parameters
    ----------
    n : int
        Number of samples (N = n(n+1)/2 entries in the union bound).
    delta : float in (0, 1)
        Target failure probability over V.
    eps : float
        Entrywise accuracy.
    activation : str or Activation
    inequality : "hoeffding" (default) or "bernstein"
    bounded : bool, optional
        Force the regime; by default σ is treated as bounded when
        |σ(±10⁶)| does not exceed |σ(±10³)| (saturating), else as
        Lipschitz and unbounded (truncation argument).

    See the module docstring for the derivation of both regimes.
    """
    _check_target(n, delta, eps)
    if inequality not in INEQUALITIES:
        raise ValueError(f"inequality must be one of {', '.join(INEQUALITIES)}, got {inequality!r}")
    act = get_activation(activation)
    n = int(n)
    N = n * (n + 1) // 2
    M4 = fourth_moment(act)
    if bounded is None:
        bounded = _is_bounded(act)
    if bounded:
        a, b = activation_range(act)
        lo, hi = _product_range(a, b)
        w = hi - lo
        if inequality == "hoeffding":
            p = w * w * math.log(2 * N / delta) / (2 * eps * eps)
        else:
            p = 2 * (M4 + w * eps / 3) * math.log(2 * N / delta) / (eps * eps)
        return FiniteWidthBound(max(1, math.ceil(p)), n, delta, eps, N, "bounded", inequality, (lo, hi), None, M4, act.name)

    T_bias = _q_inverse((eps / 4) ** 2 / M4)  # 2(M₄Q(T))^{1/2} ≤ ε/2

    def width(T):
        a, b = activation_range(act, T)
        lo, hi = _product_range(a, b, with_zero=True)
        w = hi - lo
        t = eps / 2
        if inequality == "hoeffding":
            return w * w * math.log(4 * N / delta) / (2 * t * t), (lo, hi)
        return 2 * (M4 + w * t / 3) * math.log(4 * N / delta) / (t * t), (lo, hi)

    p, T = 1, T_bias
    for _ in range(200):
        T = max(T_bias, _q_inverse(delta / (4 * p * n)))  # 2pn·Q(T) ≤ δ/2
        p_new_f, rng = width(T)
        p_new = max(1, math.ceil(p_new_f))
        if p_new <= p:
            break
        p = p_new
    else:  # pragma: no cover - the iteration converges in a handful of steps
        raise RuntimeError("width fixed-point iteration did not converge")
    T = max(T_bias, _q_inverse(delta / (4 * p * n)))
    _, rng = width(T)
    return FiniteWidthBound(p, n, delta, eps, N, "truncated", inequality, rng, T, M4, act.name)


def gram_accuracy(X, activation="relu+tanh", fraction: float = 0.5, order: int = 40) -> tuple[float, float]:
    """(ε, λ_min(K∞)) with ε = fraction·λ_min(K∞)/n (see the module docstring).

    K∞ from :func:`rftheory.theory.hermite.kernel_limit` at ``order``; its stated
    truncation error bound e is subtracted (λ_min(K∞) ≥ λ_min(K_K) − n·e),
    so ε is conservative.  Rows of X must be on the √d-sphere.
    """
    from .hermite import kernel_limit  # noqa: PLC0415

    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    X = check_matrix(X, "X")
    n = X.shape[0]
    K, err = kernel_limit(to_numpy(X).astype(np.float64), activation, order)
    lam = float(np.linalg.eigvalsh(np.asarray(to_numpy(K), dtype=np.float64))[0]) - n * err
    if not lam > 0:
        raise ValueError(f"λ_min(K∞) is not certified positive ({lam:.3g}): duplicate or ± samples?")
    return fraction * lam / n, lam


def gram_width(X, delta: float = 0.1, activation="relu+tanh", *, fraction: float = 0.5,
               inequality: str = "hoeffding") -> FiniteWidthBound:
    """Width with λ_min(ΦΦᵀ/p) ≥ (1 − fraction)·λ_min(K∞) w.p. ≥ 1 − δ.

    :func:`kernel_width_bound` at ε = :func:`gram_accuracy` (X, …).
    """
    eps, _ = gram_accuracy(X, activation, fraction)
    return kernel_width_bound(X.shape[0], delta, eps, activation, inequality=inequality)


def kernel_deviation(X, p: int, activation="relu+tanh", *, trials: int = 20, seed: int = 0, reference=None):
    """max_ij |K̂_ij − K∞_ij| for ``trials`` independent V (N(0, I/d), p×d).

    ``reference`` is K∞ (n×n); by default :func:`rftheory.theory.hermite.kernel_limit`
    at order 40.  Returns an array (trials,) of X's kind.
    """
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    X = xp.asarray(X, dtype=np.float64)
    n, d = X.shape
    act = get_activation(activation)
    if reference is None:
        from .hermite import kernel_limit  # noqa: PLC0415

        reference = kernel_limit(X, act, 40).kernel
    K = xp.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng([seed, p, 0xF1])
    out = []
    for _ in range(int(trials)):
        V = xp.asarray(rng.standard_normal((int(p), d)) / math.sqrt(d))
        F = act.fn(X @ V.T)
        out.append(float(xp.max(xp.abs(F @ F.T / p - K))))
    return xp.asarray(out)


def measured_kernel_width(X, eps: float, delta: float, p_values, activation="relu+tanh", *, trials: int = 40,
                          seed: int = 0, reference=None) -> tuple[int | None, list]:
    """Empirical counterpart of :func:`kernel_width_bound`.

    For each p (ascending) the fraction of ``trials`` draws of V with
    max_ij |K̂_ij − K∞_ij| > ε is measured (:func:`kernel_deviation`);
    returns (smallest p whose failure fraction is ≤ δ, failure fractions).
    """
    _check_target(check_matrix(X, "X").shape[0], delta, eps)
    ps = sorted(int(p) for p in p_values)
    fails = []
    found = None
    for p in ps:
        dev = to_numpy(kernel_deviation(X, p, activation, trials=trials, seed=seed, reference=reference))
        fails.append(float(np.mean(dev > eps)))
        if found is None and fails[-1] <= delta:
            found = p
    return found, fails


def measured_gram_width(X, delta: float, p_values, activation="relu+tanh", *, fraction: float = 0.5,
                        trials: int = 40, seed: int = 0) -> tuple[int | None, list, float]:
    """Empirical counterpart of :func:`gram_width`.

    For each p (ascending), the fraction of ``trials`` draws of V (N(0, I/d))
    with λ_min(ΦΦᵀ/p) < (1 − fraction)·λ_min(K∞) (λ_min(K∞) certified as in
    :func:`gram_accuracy`).  Returns (smallest p whose failure fraction is
    ≤ δ, failure fractions, λ_min(K∞)).
    """
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    X = xp.asarray(X, dtype=np.float64)
    n, d = X.shape
    _check_target(n, delta, 1.0)
    _, lam = gram_accuracy(X, activation, fraction)
    act = get_activation(activation)
    level = (1 - fraction) * lam
    fails, found = [], None
    for p in sorted(int(p) for p in p_values):
        rng = np.random.default_rng([seed, p, 0x6A])
        bad = 0
        for _ in range(int(trials)):
            V = xp.asarray(rng.standard_normal((p, d)) / math.sqrt(d))
            F = act.fn(X @ V.T)
            bad += float(xp.linalg.eigvalsh(F @ F.T / p)[0]) < level
        fails.append(bad / int(trials))
        if found is None and fails[-1] <= delta:
            found = p
    return found, fails, lam


@dataclass
class EmpiricalThreshold:
    """Measured recovery as a function of p.

    p_values : widths tried (ascending).
    success : fraction of seeds with every sample recovered, per p.
    recovered : mean fraction of recovered samples, per p.
    losses : final projection losses, per p (list over seeds).
    threshold : smallest p in the grid from which every larger p in the grid
        has success ≥ ``level`` (None if the largest p fails).
    search : "full" or "known" (subspace).
    """

    p_values: list
    success: list
    recovered: list
    losses: list
    threshold: int | None
    search: str
    n: int
    d: int
    rank: int | None
    seeds: tuple
    level: float
    wall_time: float = 0.0
    details: list = field(default_factory=list)


def empirical_threshold(n: int, d: int, p_values, *, seeds=(0, 1, 2), activation="relu+tanh", rank: int | None = None,
                        search: str = "full", level: float = 1.0, threshold: float = 0.05,
                        **reconstruct_kwargs) -> EmpiricalThreshold:
    """Sweep p: train the RF min-norm interpolator, attack θ, measure recovery.

    Data: :func:`rftheory.data.synthetic.synthetic_sphere` (rank None) or
    :func:`rftheory.data.subspace.synthetic_subspace` (rank r), seed s for data
    and s + 1000 for V.  ``search="full"`` runs
    :func:`rftheory.attack.reconstruct.reconstruct` over R^d; ``"known"`` runs
    :func:`rftheory.attack.subspace.subspace_reconstruct` on the true basis.  A run
    succeeds when every sample's sign-aware error is ≤ ``threshold``
    (:func:`rftheory.attack.metrics.reconstruction_errors`).  Extra keyword
    arguments go to the attack (restarts, max_iter, …).
    """
    import time  # noqa: PLC0415

    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
    from ..attack.metrics import reconstruction_errors  # noqa: PLC0415
    from ..models.random_features import RandomFeatures  # noqa: PLC0415
    from ..attack.reconstruct import reconstruct  # noqa: PLC0415
    from ..attack.subspace import subspace_reconstruct  # noqa: PLC0415
    from ..data.subspace import synthetic_subspace  # noqa: PLC0415

    if search not in ("full", "known"):
        raise ValueError(f"search must be 'full' or 'known', got {search!r}")
    if search == "known" and rank is None:
        raise ValueError("search='known' needs data with a known subspace: give rank=")
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    ps = sorted(int(p) for p in p_values)
    if not ps or ps[0] < n:
        raise ValueError(f"p_values must be non-empty and at least n={n}")
    start = time.perf_counter()
    success, recovered, losses, details = [], [], [], []
    for p in ps:
        ok, rec, ls = [], [], []
        for s in seeds:
            ds = synthetic_sphere(n, d, seed=s) if rank is None else synthetic_subspace(n, d, rank, seed=s)
            model = RandomFeatures(p, d, activation, seed=s + 1000).fit(ds.X, ds.y)
            kw = dict(seed=s, **reconstruct_kwargs)
            res = (reconstruct(model.theta, model, n, **kw) if search == "full"
                   else subspace_reconstruct(model.theta, model, ds.basis, n, **kw))
            errs = reconstruction_errors(ds.X, to_numpy(res.X_hat), threshold)
            ok.append(bool(errs.recovered.all()))
            rec.append(errs.recovered_fraction)
            ls.append(res.loss)
            details.append(dict(p=p, seed=s, loss=res.loss, max_error=float(errs.sign_aware.max()),
                                recovered=errs.recovered_fraction, seconds=res.wall_time))
        success.append(float(np.mean(ok)))
        recovered.append(float(np.mean(rec)))
        losses.append(ls)
    thr = None
    for i in range(len(ps) - 1, -1, -1):
        if success[i] >= level:
            thr = ps[i]
        else:
            break
    return EmpiricalThreshold(ps, success, recovered, losses, thr, search, n, d, rank, tuple(seeds), level,
                              time.perf_counter() - start, details)
