r"""Sign-ambiguity diagnostics: the Hermite-parity prediction and its measurement.

Conventions (docs/design.md): rows x_i on the √d-sphere, V ∈ R^{p×d} with
N(0, 1/d) entries, φ(x) = σ(Vx) ∈ R^p, θ the attacked vector, and
col([1, V]) the (d+1)-dimensional column span of the p×(d+1) matrix [1, V]
(1 the all-ones vector of R^p).

Prediction (:func:`sign_prediction`, :func:`prediction_table`)
-------------------------------------------------------------
Taken from :func:`rftheory.theory.hermite.parity_report` (not re-derived here).
Write σ = σ_e + σ_o (even and odd parts).  The affine part μ_0 + μ_1 z of σ
puts a component of every feature in col([1, V]); the verdict depends on the
*nonlinear* parities (even k ≥ 2, odd k ≥ 3):

* "exact per-sample sign symmetry": σ(−z) = s·σ(z) with s = +1 (σ even,
  e.g. abs) or s = −1 (σ odd, e.g. tanh, erf), so φ(−x) = s·φ(x) and
  span{φ(x_i)} is unchanged by flipping any x_i.
* "ambiguous modulo col([1, V])": σ(−z) = s·σ(z) + a + b z, so
  φ(−x) − s·φ(x) = a·1 + b·Vx ∈ col([1, V]) (relu: φ(x) − φ(−x) = Vx;
  sigmoid: φ(x) + φ(−x) = 1).
* "identifiable": both nonlinear parities present (relu+tanh): neither
  φ(x) − φ(−x) nor φ(x) + φ(−x) lies in col([1, V]).
* "degenerate (affine σ)": φ(x) ∈ col([1, V]) itself.

Here s is +1 when σ has a nonlinear even part and −1 when it has a nonlinear
odd part (:attr:`SignPrediction.parity`).

Measurements
------------
* :func:`flip_difference`: per sample, with P⊥ the orthogonal projector onto
  the complement of col([1, V]) in R^p (from a QR factorisation of [1, V]),

      odd_projected   = ‖P⊥(φ(x) − φ(−x))‖ / ‖φ(x)‖   (0 for relu, abs, gelu, ...)
      even_projected  = ‖P⊥(φ(x) + φ(−x))‖ / ‖φ(x)‖   (0 for tanh, sigmoid, ...)
      odd_raw, even_raw: the same without P⊥ (0 only for an exact symmetry)
      nonaffine       = ‖P⊥ φ(x)‖ / ‖φ(x)‖            (0 for an affine σ)

  and :func:`measured_verdict` turns them into one of the four verdicts
  with a stated relative threshold.
* :func:`flipped_loss`, :func:`flip_loss_scan`: the projection loss
  L = ‖θ − P_{rowspan Φ̂} θ‖²/‖θ‖² (:func:`rftheory.attack.loss.projection_loss`) of the
  true set with k samples replaced by −x_i, for θ fitted on the true X.
* :func:`barrier_profile`: L along the great circle
  x_i(t) = cos(πt)·x_i + sin(πt)·‖x_i‖·u (u a unit vector ⊥ x_i, t ∈ [0, 1]),
  which stays on the √d-sphere and goes from x_i to −x_i with the other
  samples fixed; the barrier height is the maximum of L on the path.
* :func:`sign_agreement`: per-sample sign agreement of a reconstruction X̂
  with X (matching and errors from :func:`rftheory.attack.metrics.reconstruction_errors`).
* :func:`compare_activations`: the attack (:func:`rftheory.attack.reconstruct.reconstruct`)
  on the same synthetic data and the same V seed for several activations.

Every function that takes arrays accepts NumPy or CuPy and returns per-sample
arrays of the kind of X; the matching of :func:`sign_agreement` runs on the
host, as in :mod:`rftheory.attack.metrics`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..models.activations import get_activation, known_activations
from ..backend import array_namespace, to_backend, to_numpy
from .hermite import (
    AMBIGUOUS_AFFINE,
    DEGENERATE_AFFINE,
    IDENTIFIABLE,
    SIGN_SYMMETRIC,
    ParityReport,
    parity_report,
)
from ..attack.loss import projection_loss
from ..attack.metrics import DEFAULT_THRESHOLD, ReconstructionErrors, reconstruction_errors
from ..validation import check_matrix, check_vector

__all__ = [
    "SIGN_SYMMETRIC",
    "AMBIGUOUS_AFFINE",
    "IDENTIFIABLE",
    "DEGENERATE_AFFINE",
    "DEFAULT_ACTIVATIONS",
    "SignPrediction",
    "sign_prediction",
    "prediction_table",
    "affine_basis",
    "project_out_affine",
    "FlipDifference",
    "flip_difference",
    "default_rtol",
    "measured_verdict",
    "flip_rows",
    "flipped_loss",
    "FlipLossScan",
    "flip_loss_scan",
    "great_circle",
    "BarrierProfile",
    "barrier_profile",
    "barrier_profiles",
    "SignAgreement",
    "sign_agreement",
    "ComparisonRow",
    "Comparison",
    "compare_activations",
]

DEFAULT_ACTIVATIONS = ("relu", "relu+tanh", "tanh")

# =============================================================================
# Prediction (from the Hermite parity report)
# =============================================================================


@dataclass(frozen=True)
class SignPrediction:
    """The sign-ambiguity prediction for one activation.

    Attributes
    ----------
    activation : str
    prediction : str
        ``report.prediction`` (one of SIGN_SYMMETRIC, AMBIGUOUS_AFFINE,
        IDENTIFIABLE, DEGENERATE_AFFINE).
    parity : int or None
        s in φ(−x) ≡ s·φ(x): +1 if σ's nonlinear part is even, −1 if it is odd,
        None when it has both parities (identifiable) or none (affine).
    relation : str
        The relation between φ(−x) and φ(x) the prediction states.
    report : ParityReport
        The full :func:`rftheory.theory.hermite.parity_report`.
    """

    activation: str
    prediction: str
    parity: int | None
    relation: str
    report: ParityReport

    @property
    def sign_visible(self) -> bool:
        """False when a sign flip is invisible exactly or modulo col([1, V])."""
        return self.prediction == IDENTIFIABLE


def _relation(report: ParityReport) -> tuple[int | None, str]:
    pred = report.prediction
    if pred == DEGENERATE_AFFINE:
        return None, "φ(x) ∈ col([1, V])"
    if pred == IDENTIFIABLE:
        return None, "φ(−x) ∓ φ(x) ∉ col([1, V])"
    s = 1 if report.has_even else -1
    rel = "φ(−x) = φ(x)" if s == 1 else "φ(−x) = −φ(x)"
    if pred == AMBIGUOUS_AFFINE:
        rel += " + col([1, V])"
    return s, rel


def sign_prediction(activation, order: int = 20, tol: float = 1e-10, **kwargs) -> SignPrediction:
    """Prediction for ``activation`` from :func:`rftheory.theory.hermite.parity_report`.

    ``order``, ``tol`` and ``kwargs`` are passed to ``parity_report``
    (coefficients |μ_k| > tol + error bound count as non-zero, k ≤ order).
    """
    rep = parity_report(activation, order, tol, **kwargs)
    s, rel = _relation(rep)
    return SignPrediction(activation=rep.activation, prediction=rep.prediction, parity=s, relation=rel, report=rep)


def prediction_table(activations=None, order: int = 20, tol: float = 1e-10) -> list[SignPrediction]:
    """:func:`sign_prediction` for each activation (default: every registered one,
    :func:`rftheory.models.activations.known_activations`)."""
    names = known_activations() if activations is None else list(activations)
    return [sign_prediction(a, order, tol) for a in names]


# =============================================================================
# col([1, V]) and the projected flip difference
# =============================================================================


def affine_basis(model):
    """Orthonormal basis Q (p×(d+1), float64) of col([1, V]).

    Reduced QR of the p×(d+1) matrix [1, V] on the model's backend.  Raises
    ValueError when p ≤ d + 1 (then col([1, V]) is, generically, all of R^p and
    every projected quantity is 0) or when [1, V] is numerically rank deficient.
    """
    p, d = model.p, model.d
    if p <= d + 1:
        raise ValueError(
            f"p={p} ≤ d+1={d + 1}: col([1, V]) spans R^p, so the projected flip difference is "
            "identically 0; use p > d + 1 (the diagnostics are meant for p ≫ d)"
        )
    xp = model.xp
    V = xp.asarray(model.weights, dtype=np.float64)
    M = xp.concatenate([xp.ones((p, 1), dtype=np.float64), V], axis=1)
    Q, R = xp.linalg.qr(M)
    diag = xp.abs(xp.diagonal(R))
    if not float(diag.min()) > p * np.finfo(np.float64).eps * float(diag.max()):
        raise ValueError("[1, V] is numerically rank deficient; col([1, V]) has dimension < d+1")
    return Q


def project_out_affine(F, Q):
    """P⊥ applied to each row of F (n×p): f − Q(Qᵀf), Q from :func:`affine_basis`."""
    return F - (F @ Q) @ Q.T


@dataclass
class FlipDifference:
    """Per-sample relative flip differences (see the module docstring).

    All arrays have shape (n,) and the kind (NumPy/CuPy) of X.
    """

    odd_projected: object
    even_projected: object
    odd_raw: object
    even_raw: object
    nonaffine: object
    dtype: np.dtype

    def max(self, name: str) -> float:
        xp = array_namespace(getattr(self, name))
        return float(xp.max(getattr(self, name)))

    def min(self, name: str) -> float:
        xp = array_namespace(getattr(self, name))
        return float(xp.min(getattr(self, name)))


def flip_difference(X, model, Q=None) -> FlipDifference:
    """Relative flip differences of φ(x_i) and φ(−x_i), raw and projected by P⊥.

    Parameters
    ----------
    X : array (n, d)
        Samples (any norm; the theory uses ‖x‖ = √d).
    model : RandomFeatures
        Supplies V and σ; features are computed in the model's dtype and the
        differences in float64.
    Q : array, optional
        Basis from :func:`affine_basis` (computed if not given).

    Returns
    -------
    FlipDifference
        odd_projected = ‖P⊥(φ(x) − φ(−x))‖/‖φ(x)‖, even_projected =
        ‖P⊥(φ(x) + φ(−x))‖/‖φ(x)‖, odd_raw / even_raw without P⊥, and
        nonaffine = ‖P⊥φ(x)‖/‖φ(x)‖.
    """
    X = check_matrix(X, "X", cols=model.d, cols_name="d")
    out_xp = array_namespace(X)
    if Q is None:
        Q = affine_basis(model)
    xp = model.xp
    Xm = xp.asarray(X)
    F_plus = model.features(Xm).astype(np.float64)
    F_minus = model.features(-Xm).astype(np.float64)
    norm = xp.linalg.norm(F_plus, axis=1)
    if bool(xp.any(norm == 0)):
        raise ValueError("φ(x) = 0 for some sample: relative flip differences are undefined")
    odd = F_plus - F_minus
    even = F_plus + F_minus

    def rel(A):
        return to_backend(xp.linalg.norm(A, axis=1) / norm, out_xp)

    return FlipDifference(
        odd_projected=rel(project_out_affine(odd, Q)),
        even_projected=rel(project_out_affine(even, Q)),
        odd_raw=rel(odd),
        even_raw=rel(even),
        nonaffine=rel(project_out_affine(F_plus, Q)),
        dtype=np.dtype(model.dtype),
    )


def default_rtol(dtype) -> float:
    """√ε of ``dtype``: 1.5e-8 for float64, 3.5e-4 for float32.

    Rounding leaves relative flip differences of a few ε (features computed
    in ``dtype``); any genuine nonlinear Hermite part of a registered
    activation gives ≥ 1e-2.
    """
    return float(math.sqrt(np.finfo(np.dtype(dtype)).eps))


def measured_verdict(fd: FlipDifference, rtol: float | None = None) -> str:
    """Classify measured flip differences into the verdicts of the prediction.

    With m(q) = max over samples of q and threshold ``rtol`` (default
    :func:`default_rtol` of the feature dtype):

    * m(nonaffine) ≤ rtol                          → DEGENERATE_AFFINE
    * m(odd_raw) ≤ rtol or m(even_raw) ≤ rtol       → SIGN_SYMMETRIC
    * m(odd_projected) ≤ rtol or m(even_projected) ≤ rtol → AMBIGUOUS_AFFINE
    * otherwise                                     → IDENTIFIABLE
    """
    if rtol is None:
        rtol = default_rtol(fd.dtype)
    if not (rtol >= 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite non-negative number, got {rtol!r}")
    if fd.max("nonaffine") <= rtol:
        return DEGENERATE_AFFINE
    if min(fd.max("odd_raw"), fd.max("even_raw")) <= rtol:
        return SIGN_SYMMETRIC
    if min(fd.max("odd_projected"), fd.max("even_projected")) <= rtol:
        return AMBIGUOUS_AFFINE
    return IDENTIFIABLE


# =============================================================================
# Loss of flipped sets
# =============================================================================


def _flip_mask(flips, n: int) -> np.ndarray:
    """Boolean mask (host) from a mask of length n or a sequence of row indices."""
    f = np.asarray(to_numpy(flips) if not isinstance(flips, (list, tuple, range)) else list(flips))
    if f.dtype == bool:
        if f.shape != (n,):
            raise ValueError(f"a boolean flip mask must have length n={n}, got shape {f.shape}")
        return f.copy()
    if f.size == 0:
        return np.zeros(n, dtype=bool)
    if f.ndim != 1 or f.dtype.kind not in "iu":
        raise TypeError("flips must be a boolean mask of length n or a sequence of row indices")
    if np.any((f < 0) | (f >= n)):
        raise ValueError(f"flip indices must be in 0..{n - 1}, got {f.tolist()}")
    mask = np.zeros(n, dtype=bool)
    mask[f] = True
    return mask


def flip_rows(X, flips):
    """X with the rows in ``flips`` (boolean mask or indices) replaced by −x_i."""
    X = check_matrix(X, "X")
    xp = array_namespace(X)
    mask = _flip_mask(flips, X.shape[0])
    signs = xp.asarray(np.where(mask, -1.0, 1.0), dtype=X.dtype if X.dtype.kind == "f" else np.float64)
    return X * signs[:, None]


def flipped_loss(X, theta, model, flips) -> float:
    """L(X with rows ``flips`` negated) = ‖θ − P_{rowspan Φ̂} θ‖²/‖θ‖²,
    by :func:`rftheory.attack.loss.projection_loss` (no gradient)."""
    return float(projection_loss(flip_rows(X, flips), theta, model, with_grad=False).loss)


@dataclass
class FlipLossScan:
    """Loss of the true set with k samples flipped.

    ``base_loss`` = L(X); ``ks`` (array of k); ``losses[j]`` the losses of the
    flip sets tried for ``ks[j]`` (all C(n, k) subsets when there are at most
    ``trials``, else ``trials`` random distinct subsets); ``subsets[j]`` the
    subsets themselves (tuples of row indices).
    """

    base_loss: float
    ks: np.ndarray
    losses: list
    subsets: list
    seed: int

    @property
    def mean(self) -> np.ndarray:
        return np.array([float(np.mean(v)) for v in self.losses])

    @property
    def min(self) -> np.ndarray:
        return np.array([float(np.min(v)) for v in self.losses])

    @property
    def max(self) -> np.ndarray:
        return np.array([float(np.max(v)) for v in self.losses])


def _subsets(n: int, k: int, trials: int, rng) -> list:
    if math.comb(n, k) <= trials:
        return [tuple(c) for c in combinations(range(n), k)]
    seen: set = set()
    while len(seen) < trials:
        seen.add(tuple(sorted(rng.choice(n, size=k, replace=False).tolist())))
    return sorted(seen)


def flip_loss_scan(X, theta, model, ks=None, trials: int = 8, seed: int = 0) -> FlipLossScan:
    """Losses of the true set X with k samples flipped, for each k in ``ks``
    (default 1..n); subsets drawn with ``numpy.random.default_rng([seed, k])``."""
    X = check_matrix(X, "X", cols=model.d, cols_name="d")
    n = X.shape[0]
    if ks is None:
        ks = range(1, n + 1)
    ks = np.array([int(k) for k in ks], dtype=int)
    if np.any((ks < 0) | (ks > n)):
        raise ValueError(f"k must be in 0..n={n}, got {ks.tolist()}")
    if int(trials) < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    base = float(projection_loss(X, theta, model, with_grad=False).loss)
    losses, subsets = [], []
    for k in ks:
        subs = _subsets(n, int(k), int(trials), np.random.default_rng([seed, int(k)]))
        subsets.append(subs)
        losses.append(np.array([flipped_loss(X, theta, model, list(s)) for s in subs]))
    return FlipLossScan(base_loss=base, ks=ks, losses=losses, subsets=subsets, seed=int(seed))


# =============================================================================
# Barrier along the great circle x_i -> -x_i
# =============================================================================


def great_circle(x, u, t):
    """Points cos(πt)·x + sin(πt)·‖x‖·û for each t, û = unit part of u ⊥ x.

    Rows have norm ‖x‖; t = 0 gives x and t = 1 gives −x.  Returns an array
    (len(t), d) of the kind of x.
    """
    xp = array_namespace(x, u)
    x = xp.asarray(x, dtype=np.float64)
    u = xp.asarray(u, dtype=np.float64)
    nx = float(xp.linalg.norm(x))
    if nx == 0:
        raise ValueError("x is the zero vector: no great circle through it")
    nu0 = float(xp.linalg.norm(u))
    u = u - (float(u @ x) / nx**2) * x
    nu = float(xp.linalg.norm(u))
    if not nu > 1e-12 * nu0:
        raise ValueError("direction u is parallel to x: the great circle x → −x is not defined by it")
    u = u / nu
    t = xp.asarray(np.asarray(to_numpy(t), dtype=np.float64).ravel())
    c = xp.cos(math.pi * t)[:, None]
    s = xp.sin(math.pi * t)[:, None]
    return c * x[None, :] + (s * nx) * u[None, :]


@dataclass
class BarrierProfile:
    """Loss along x_i(t), t ∈ [0, 1], other samples fixed (see module docstring).

    Attributes
    ----------
    sample : int
    t : ndarray (host)
    loss : ndarray (host), L at each t
    direction : array (d,), the unit vector u ⊥ x_i used (kind of X)
    """

    sample: int
    t: np.ndarray
    loss: np.ndarray
    direction: object

    @property
    def start_loss(self) -> float:
        return float(self.loss[0])

    @property
    def end_loss(self) -> float:
        """L with x_i replaced by −x_i."""
        return float(self.loss[-1])

    @property
    def height(self) -> float:
        """Barrier height: max of L along the path."""
        return float(np.max(self.loss))

    @property
    def excess(self) -> float:
        """max L − max(L(0), L(1)): how far the path rises above both ends."""
        return float(np.max(self.loss) - max(self.loss[0], self.loss[-1]))

    @property
    def argmax_t(self) -> float:
        return float(self.t[int(np.argmax(self.loss))])


BARRIER_STREAM = 0xB4  # tag of the barrier's default-direction stream (any fixed nonzero value)


def barrier_profile(X, theta, model, sample: int, points: int = 33, direction=None, seed: int = 0) -> BarrierProfile:
    """L(X with x_i ← x_i(t)) on ``points`` equispaced t ∈ [0, 1].

    ``direction`` u (d,) fixes the great circle (its part ⊥ x_i is used); by
    default u is a standard normal draw from
    ``numpy.random.default_rng([seed, sample, BARRIER_STREAM])`` (the stream tag keeps it apart from
    ``default_rng(seed)``, which ``default_rng([seed, 0])`` would equal: trailing zeros do not change a
    SeedSequence, so data drawn with the same seed could give u ∥ x_0).
    """
    X = check_matrix(X, "X", cols=model.d, cols_name="d")
    n, d = X.shape
    if not (isinstance(sample, (int, np.integer)) and 0 <= sample < n):
        raise ValueError(f"sample must be an index in 0..{n - 1}, got {sample!r}")
    if int(points) < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    xp = array_namespace(X, theta)
    X = xp.asarray(X, dtype=np.float64)
    x = X[sample]
    if direction is None:
        direction = np.random.default_rng([int(seed), int(sample), BARRIER_STREAM]).standard_normal(d)
    direction = xp.asarray(check_vector(to_numpy(direction), "direction", length=d, length_name="d"), dtype=np.float64)
    t = np.linspace(0.0, 1.0, int(points))
    path = great_circle(x, direction, t)
    u = direction - (float(direction @ x) / float(x @ x)) * x
    u = u / xp.linalg.norm(u)
    losses = np.empty(len(t))
    Xt = X.copy()
    for j in range(len(t)):
        Xt[sample] = path[j]
        losses[j] = projection_loss(Xt, theta, model, with_grad=False).loss
    return BarrierProfile(sample=int(sample), t=t, loss=losses, direction=u)


def barrier_profiles(X, theta, model, samples=None, points: int = 33, seed: int = 0) -> list[BarrierProfile]:
    """:func:`barrier_profile` for each sample index in ``samples`` (default all)."""
    X = check_matrix(X, "X", cols=model.d, cols_name="d")
    if samples is None:
        samples = range(X.shape[0])
    return [barrier_profile(X, theta, model, int(i), points=points, seed=seed) for i in samples]


# =============================================================================
# Sign agreement of a reconstruction
# =============================================================================


@dataclass
class SignAgreement:
    """Per-sample sign agreement of X̂ with X after Hungarian matching.

    ``agreement[i]`` is +1 when x_i is recovered with the right sign
    (signed error ≤ threshold), −1 when it is recovered only as −x_i
    (``errors.wrong_sign``), 0 when not recovered (sign-aware error > threshold);
    ``cosine[i]`` = ⟨x_i, x̂_π(i)⟩/(‖x_i‖‖x̂_π(i)‖).  Arrays have the kind of X;
    ``errors`` is the host :class:`rftheory.attack.metrics.ReconstructionErrors`.
    """

    agreement: object
    cosine: object
    errors: ReconstructionErrors

    def _frac(self, value) -> float:
        a = to_numpy(self.agreement)
        return float(np.mean(a == value))

    @property
    def correct_sign_fraction(self) -> float:
        return self._frac(1)

    @property
    def wrong_sign_fraction(self) -> float:
        return self._frac(-1)

    @property
    def unrecovered_fraction(self) -> float:
        return self._frac(0)


def sign_agreement(X, X_hat, threshold: float = DEFAULT_THRESHOLD) -> SignAgreement:
    """Sign agreement of a reconstruction (see :class:`SignAgreement`)."""
    xp = array_namespace(X, X_hat)
    errs = reconstruction_errors(X, X_hat, threshold)
    Xh, Xt = to_numpy(X_hat).astype(np.float64), to_numpy(X).astype(np.float64)
    Xm = Xh[errs.permutation]
    cos = np.sum(Xt * Xm, axis=1) / (np.linalg.norm(Xt, axis=1) * np.maximum(np.linalg.norm(Xm, axis=1), 1e-300))
    agree = np.zeros(Xt.shape[0], dtype=np.int64)
    agree[errs.recovered & ~errs.wrong_sign] = 1
    agree[errs.wrong_sign] = -1
    return SignAgreement(agreement=to_backend(agree, xp), cosine=to_backend(cos, xp), errors=errs)


# =============================================================================
# Comparison run
# =============================================================================


@dataclass
class ComparisonRow:
    """One activation of :func:`compare_activations`."""

    activation: str
    prediction: str
    loss: float
    converged: bool
    iterations: int
    wall_time: float
    signed_mean: float
    sign_aware_mean: float
    entrywise_abs_mean: float
    recovered: int
    wrong_sign: int
    n: int
    one_flip_loss: float  # mean over i of L(X with x_i flipped), θ fitted on X
    odd_projected_max: float
    even_projected_max: float
    agreement: SignAgreement = field(repr=False)

    @property
    def recovered_fraction(self) -> float:
        return self.recovered / self.n

    @property
    def wrong_sign_fraction(self) -> float:
        return self.wrong_sign / self.n


@dataclass
class Comparison:
    """Rows of :func:`compare_activations` and the configuration (seeds, sizes)."""

    rows: list
    config: dict

    def row(self, activation: str) -> ComparisonRow:
        for r in self.rows:
            if r.activation == activation:
                return r
        raise KeyError(activation)

    def verdict(self) -> tuple[bool | None, str]:
        """Does the measurement show that identifiable activations get no
        wrong-sign recoveries where sign-ambiguous ones get some?

        Returns (True, msg) when every IDENTIFIABLE row has 0 wrong signs and
        every AMBIGUOUS_AFFINE row (or, without such rows, every SIGN_SYMMETRIC
        row) has at least one; (False, msg) otherwise,
        naming the rows that disagree; (None, msg) when a needed kind of row
        is missing.
        """
        ident = [r for r in self.rows if r.prediction == IDENTIFIABLE]
        ambig = [r for r in self.rows if r.prediction == AMBIGUOUS_AFFINE]
        symm = [r for r in self.rows if r.prediction == SIGN_SYMMETRIC]
        if not ident or not (ambig or symm):
            return None, "comparison needs an identifiable and a sign-ambiguous activation"
        bad_ident = [r for r in ident if r.wrong_sign > 0]
        group = ambig or symm  # the sign-ambiguous rows the contrast is about
        quiet_ambig = [r for r in group if r.wrong_sign == 0]
        parts = []
        for r in bad_ident:
            parts.append(f"{r.activation} (identifiable) has {r.wrong_sign}/{r.n} wrong-sign recoveries")
        for r in quiet_ambig:
            parts.append(
                f"{r.activation} ({r.prediction}) has NO wrong-sign recovery "
                f"({r.recovered}/{r.n} recovered, all with the right sign)"
            )
            louder = [q.activation for q in ident if r.one_flip_loss >= q.one_flip_loss and r in ambig]
            if louder:
                parts.append(
                    f"flipping one true sample costs {r.activation} a loss of {r.one_flip_loss:.1e} on average, "
                    f"not less than {', '.join(louder)} "
                    f"({', '.join(f'{q.one_flip_loss:.1e}' for q in ident if q.activation in louder)}): "
                    "θ sees the sign through its component in col([1, V])"
                )
        sym_txt = "; ".join(f"{r.activation} (exact symmetry): {r.wrong_sign}/{r.n} wrong sign" for r in symm)
        if not parts:
            names = ", ".join(r.activation for r in group)
            msg = (f"AGREES with the prediction: {', '.join(r.activation for r in ident)} has no wrong-sign "
                   f"recoveries where {names} has some")
            return True, msg + (f"; {sym_txt}" if sym_txt else "")
        msg = "DISAGREES with the prediction (predicted contrast not observed): " + "; ".join(parts)
        return False, msg + (f"; {sym_txt}" if sym_txt else "")


def compare_activations(
    activations=DEFAULT_ACTIVATIONS,
    *,
    n: int = 8,
    d: int = 10,
    p: int | None = None,
    ratio: float = 4.0,
    data_seed: int = 0,
    v_seed: int | None = None,
    attack_seed: int | None = None,
    restarts: int = 3,
    max_iter: int = 2000,
    tol: float = 1e-10,
    threshold: float = DEFAULT_THRESHOLD,
    dtype=np.float64,
    backend: str = "numpy",
    order: int = 20,
    progress=None,
) -> Comparison:
    """The attack on the same data and the same V for several activations.

    Data: :func:`rftheory.data.synthetic.synthetic_sphere` (n, d, ``data_seed``).
    V: seed ``v_seed`` (default data_seed + 1000, as ``rftheory reconstruct``),
    p = ``p`` or round(ratio·d·n) rows; the same V for every activation.
    θ: min-norm interpolator of the synthetic labels.  Attack:
    :func:`rftheory.attack.reconstruct.reconstruct` with n̂ = n, seed ``attack_seed``
    (default data_seed).  Each row reports the final loss, the mean signed,
    sign-aware and entrywise-abs errors, the recovered and wrong-sign counts
    (:func:`sign_agreement`), the mean one-flip loss of the true set and the
    maximal projected flip differences.  ``progress(activation, row)`` is
    called after each activation.
    """
    from ..data.synthetic import synthetic_sphere  # noqa: PLC0415
    from ..models.random_features import RandomFeatures, features_for_ratio  # noqa: PLC0415
    from ..attack.reconstruct import reconstruct  # noqa: PLC0415

    acts = [get_activation(a) for a in activations]
    if not acts:
        raise ValueError("give at least one activation")
    ds = synthetic_sphere(n, d, seed=data_seed)
    if p is None:
        if not ratio > 0:
            raise ValueError(f"ratio must be positive, got {ratio}")
        p = features_for_ratio(ratio, d, n)
    v_seed = data_seed + 1000 if v_seed is None else int(v_seed)
    attack_seed = data_seed if attack_seed is None else int(attack_seed)
    config = dict(n=n, d=d, p=p, ratio=p / (d * n), data_seed=data_seed, v_seed=v_seed, attack_seed=attack_seed,
                  restarts=restarts, max_iter=max_iter, tol=tol, threshold=threshold,
                  dtype=np.dtype(dtype).name, backend=backend, data=ds.description)
    rows = []
    Q = None
    for act in acts:
        model = RandomFeatures(p, d, act, seed=v_seed, dtype=dtype, backend=backend).fit(ds.X, ds.y)
        if Q is None:
            Q = affine_basis(model)  # same V for every activation
        X = model.xp.asarray(ds.X)
        pred = sign_prediction(act, order=order)
        fd = flip_difference(X, model, Q)
        one_flip = float(np.mean([flipped_loss(X, model.theta, model, [i]) for i in range(n)]))
        t0 = time.perf_counter()
        res = reconstruct(model.theta, model, n, restarts=restarts, max_iter=max_iter, tol=tol, seed=attack_seed)
        wall = time.perf_counter() - t0
        sa = sign_agreement(ds.X, to_numpy(res.X_hat), threshold)
        e = sa.errors
        row = ComparisonRow(
            activation=act.name, prediction=pred.prediction, loss=float(res.loss), converged=bool(res.loss_at_tol),
            iterations=int(res.iterations), wall_time=wall,
            signed_mean=float(e.signed.mean()), sign_aware_mean=float(e.sign_aware.mean()),
            entrywise_abs_mean=float(e.entrywise_abs.mean()), recovered=int(e.recovered.sum()),
            wrong_sign=int(e.wrong_sign.sum()), n=n, one_flip_loss=one_flip,
            odd_projected_max=fd.max("odd_projected"), even_projected_max=fd.max("even_projected"), agreement=sa,
        )
        rows.append(row)
        if progress is not None:
            progress(act.name, row)
    return Comparison(rows=rows, config=config)
