r"""Estimate the data subspace from ΔW₁ = W₁_T − W₁_0 of a trained two-layer network.

For a two-layer network f(x) = c·aᵀσ(W₁x) (any fixed output scale c) with
no first-layer bias, the gradient of any loss Σ_i ℓ(f(x_i), y_i) w.r.t. W₁
is Dᵀ X with D ∈ R^{n×m} (D_ij = c ℓ'_i a_j σ'(w_jᵀx_i)).  Without weight
decay every GD step adds such a term, so

    ΔW₁ = W₁_T − W₁_0 = G X   (G ∈ R^{m×n}),      rowspan ΔW₁ ⊆ span{x_i},

and the top right singular vectors of ΔW₁ span the data: all of an
r-dimensional data subspace once rank(G X) = r (so n ≥ r), otherwise the
n-dimensional span of the samples.  The attacker needs W₁ before and after
training (a seeded initialisation).  In floating point the subtraction
W₁_T − W₁_0 leaves O(ε‖W₁‖) off the subspace, so the attainable angle is
≈ ε‖W₁_0‖/s_r (about 1e-12 rad for d=40, r=4 in benchmarks/bench_subspace.py).
The rank r̂ is chosen from the singular values s_1 ≥ s_2 ≥ … ≥ s_K of ΔW₁
(K = min(m, d)) by a stated rule:

* ``"gap"`` (default): r̂ = argmax_{1≤k<K} s_k / max(s_{k+1}, ε·s_1)
  (ε = float64 machine epsilon), the largest multiplicative gap; if that
  largest ratio is below ``min_gap`` (default 1e3, three decades: far above
  the ratios of consecutive singular values of generic data) no
  low-dimensional structure is claimed and r̂ = K;
* ``"threshold"``: r̂ = #{k : s_k > rtol·s_1} (default rtol = 1e-8, well
  above the ε‖W₁_0‖ rounding left by the subtraction);
* or a rank given by the caller.

Weight decay (W₁ ← (1 − ηκ)W₁ − η∇) breaks the identity for ΔW₁: the decayed
initialisation leaves a full-rank component −(1 − (1 − ηκ)^T) W₁_0 in it.  The
identity holds for W₁_T − c·W₁_0 with one scalar c, which
:func:`rftheory.attack.unified.decay_factor` fits.

Principal angles between the estimate and a known subspace are computed by
:func:`rftheory.theory.span.principal_angles` (sine-based for small angles, so an
angle of 1e-12 rad is resolved, not rounded to 0 as arccos would).  The
networks are trained by :mod:`rftheory.models.training`.

All public functions accept NumPy or CuPy arrays and return the same kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import array_namespace, to_numpy
from ..models.training import train_two_layer, train_two_layer_mlp
from ..theory.span import principal_angles
from ..validation import check_count, check_matrix

__all__ = [
    "SubspaceEstimate",
    "choose_rank",
    "estimate_subspace",
    "estimate_subspace_from_training",
    "subspace_angles",
    "RANK_RULES",
]

RANK_RULES = ("gap", "threshold")


@dataclass
class SubspaceEstimate:
    """Subspace estimated from ΔW₁.

    basis : (d, r̂) orthonormal columns (top right singular vectors).
    rank : r̂.   rule : how r̂ was chosen ("gap", "threshold" or "given").
    singular_values : all singular values of ΔW₁ (descending, NumPy).
    gap : s_r̂ / s_{r̂+1} (inf when r̂ = K or s_{r̂+1} = 0).
    angles : principal angles (radians, descending) to the true subspace
        when one was given, else None.
    """

    basis: object
    rank: int
    rule: str
    singular_values: np.ndarray
    gap: float
    angles: object = None

    @property
    def max_angle(self) -> float | None:
        return None if self.angles is None else float(to_numpy(self.angles).max(initial=0.0))


def choose_rank(singular_values, rule: str = "gap", *, rtol: float = 1e-8, min_gap: float = 1e3) -> int:
    """r̂ from descending singular values by the rule in the module docstring."""
    s = np.sort(np.asarray(to_numpy(singular_values), dtype=np.float64))[::-1]
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("singular values must be a non-empty 1-D array of finite non-negative numbers")
    K = s.size
    if s[0] == 0.0:
        raise ValueError("ΔW₁ is zero: the first layer did not move (no training, or lr = 0)")
    if rule == "threshold":
        if not 0 < rtol < 1:
            raise ValueError(f"rtol must be in (0, 1), got {rtol}")
        return int(np.count_nonzero(s > rtol * s[0]))
    if rule == "gap":
        if K == 1:
            return 1
        floor = np.finfo(np.float64).eps * s[0]
        ratios = s[:-1] / np.maximum(s[1:], floor)
        k = int(np.argmax(ratios))
        return k + 1 if ratios[k] >= min_gap else K
    raise ValueError(f"unknown rank rule {rule!r}; choose from {', '.join(RANK_RULES)} or pass rank=")


def subspace_angles(basis, reference):
    """Principal angles (radians, descending) between the column spaces of two d×k bases.

    Delegates to :func:`rftheory.theory.span.principal_angles` on the transposes
    (accurate for tiny angles); min(rank) angles are returned.
    """
    basis = check_matrix(basis, "basis")
    reference = check_matrix(reference, "reference", rows=basis.shape[0], rows_name="d (rows of basis)")
    xp = array_namespace(basis, reference)
    return principal_angles(xp.asarray(basis).T, xp.asarray(reference).T)


def estimate_subspace(delta_W1, rank: int | None = None, *, rule: str = "gap", rtol: float = 1e-8,
                      min_gap: float = 1e3, true_basis=None) -> SubspaceEstimate:
    """Top-r̂ right singular vectors of ΔW₁ (m×d) as a d×r̂ orthonormal basis.

    r̂ = ``rank`` if given, else by ``rule`` (:func:`choose_rank`).  With
    ``true_basis`` (d×r) the principal angles to it are reported.
    """
    dW = check_matrix(delta_W1, "delta_W1")
    xp = array_namespace(dW, true_basis)
    dW = xp.asarray(dW, dtype=np.float64)
    _, s, Vt = xp.linalg.svd(dW, full_matrices=False)
    s_np = to_numpy(s)
    if rank is None:
        r = choose_rank(s_np, rule, rtol=rtol, min_gap=min_gap)
        how = rule
    else:
        r = check_count(rank, "rank")
        if r > s_np.size:
            raise ValueError(f"rank={r} exceeds min(m, d)={s_np.size}")
        how = "given"
    gap = float(s_np[r - 1] / s_np[r]) if r < s_np.size and s_np[r] > 0 else math.inf
    basis = Vt[:r].T
    angles = None
    if true_basis is not None:
        true_basis = check_matrix(true_basis, "true_basis", rows=dW.shape[1], rows_name="d (columns of ΔW₁)")
        angles = subspace_angles(basis, xp.asarray(true_basis, dtype=np.float64))
    return SubspaceEstimate(basis, r, how, s_np, gap, angles)


def estimate_subspace_from_training(X, y, *, network: str = "mlp", width: int = 256, steps: int | None = None,
                                    lr: float | None = None, activation="relu+tanh", seed: int = 0,
                                    weight_decay: float = 0.0, rank: int | None = None, rule: str = "gap",
                                    rtol: float = 1e-8, min_gap: float = 1e3, true_basis=None):
    """Train a two-layer net on (X, y) and estimate the data subspace from ΔW₁.

    ``network="mlp"`` (default) trains :class:`rftheory.models.adapters.TwoLayerMLP`
    without biases (:func:`train_two_layer_mlp`, ``steps`` = its max_steps,
    default 20000, stopping at relative loss 1e-8); ``"builtin"`` uses
    :func:`train_two_layer` (``steps`` default 200), the only one with
    ``weight_decay``.  Returns (SubspaceEstimate, TwoLayerTraining); see
    :func:`estimate_subspace` for the rank parameters.
    """
    if network == "mlp":
        if weight_decay:
            raise ValueError("network='mlp' (rftheory.models.adapters.TwoLayerMLP) has no weight decay; "
                             "use network='builtin' for weight_decay > 0")
        training = train_two_layer_mlp(X, y, width, activation=activation, seed=seed, lr=lr,
                                       max_steps=20000 if steps is None else steps)
    elif network == "builtin":
        training = train_two_layer(X, y, width, steps=200 if steps is None else steps, lr=lr, activation=activation,
                                   seed=seed, weight_decay=weight_decay)
    else:
        raise ValueError(f"network must be 'mlp' or 'builtin', got {network!r}")
    est = estimate_subspace(training.delta_W1, rank, rule=rule, rtol=rtol, min_gap=min_gap, true_basis=true_basis)
    return est, training
