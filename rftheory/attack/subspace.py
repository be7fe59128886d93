r"""Subspace-aware reconstruction and the attack on Δθ = θ_T − θ₀.

This module implements the "beyond the random features model" programme of
docs/design.md for low-dimensional data (arXiv 2605.06519 describes the method;
the formulas below are this package's, stated in full).  The pieces live by
role:

* data in a random subspace: :mod:`rftheory.data.subspace`;
* the RF map restricted to a subspace: :mod:`rftheory.models.subspace`;
* GD on random features from θ₀ and two-layer trainers: :mod:`rftheory.models.training`;
* the subspace estimate from ΔW₁: :mod:`rftheory.attack.subspace_estimate`;
* the attack itself (this module).

Subspace attack
---------------
With U ∈ R^{d×r} an orthonormal basis, candidates are X̂ = √(d/r) Z Uᵀ with
Z ∈ R^{n̂×r} on the √r-sphere, and φ(x̂) = σ(W z) with W = √(d/r) V U
(:class:`rftheory.models.subspace.SubspaceRandomFeatures`, i.i.d. N(0, 1/r)
entries): on a known subspace the attack *is* an RF attack in dimension r,
so the threshold moves from p ≈ dn to p ≈ rn.  The same loss (projection
loss with the true σ') and the same optimiser run unchanged on Z;
:func:`subspace_reconstruct` maps the result back, X̂ = √(d/r) Z Uᵀ.

Δθ objective (training from an initialisation θ₀)
--------------------------------------------------
Gradient descent on ½‖Φθ − y‖² from θ₀ keeps θ_t − θ₀ = Φᵀλ_t in rowspan Φ
(:func:`rftheory.models.training.rf_gradient_descent`), but θ_T itself is
not there (θ₀ is a generic p-vector).  So the attack runs the same
projection loss on Δθ = θ_T − θ₀, which the attacker can form when it knows
θ₀ (docs/design.md: "the attacked vector is Δθ when an initialisation exists"):
:func:`delta_theta_loss`.

All public functions accept NumPy or CuPy arrays and return the same kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import array_namespace
from ..models.subspace import SubspaceRandomFeatures
from .loss import LossResult, projection_loss
from .reconstruct import ReconstructionResult, reconstruct

__all__ = [
    "SubspaceReconstructionResult",
    "subspace_reconstruct",
    "delta_theta_loss",
]


@dataclass
class SubspaceReconstructionResult(ReconstructionResult):
    """:class:`ReconstructionResult` with X̂ lifted to R^d, plus Z and U."""

    Z: object = None
    basis: object = None


def subspace_reconstruct(theta, model, basis, n: int, **kwargs) -> SubspaceReconstructionResult:
    """Reconstruct n̂ = ``n`` samples searching only X̂ = √(d/r) Z Uᵀ.

    Runs :func:`rftheory.attack.reconstruct.reconstruct` (same loss, same
    optimiser, keyword arguments passed through) on
    :class:`SubspaceRandomFeatures` (model, basis); Z has rows on the
    √r-sphere, X̂ rows on the √d-sphere inside span U.  An ``init`` given in
    R^{n×d} is projected onto span U first.  ``model`` may already be a
    :class:`SubspaceRandomFeatures` (``basis`` is then ignored).
    """
    sub = model if isinstance(model, SubspaceRandomFeatures) else SubspaceRandomFeatures(model, basis)
    init = kwargs.pop("init", None)
    if init is not None:
        init = sub.project(init)
    res = reconstruct(theta, sub, n, init=init, **kwargs)
    out = SubspaceReconstructionResult(**{f: getattr(res, f) for f in ReconstructionResult.__dataclass_fields__})
    out.Z = res.X_hat
    out.X_hat = sub.lift(res.X_hat)
    out.basis = sub.basis
    return out


def delta_theta_loss(X_hat, theta, theta0, model, **kwargs) -> LossResult:
    """The unified objective: projection loss of Δθ = θ − θ₀ (θ₀ = None: of θ).

    L(X̂) = ‖Δθ − P_{rowspan Φ̂} Δθ‖²/‖Δθ‖²; see
    :func:`rftheory.attack.loss.projection_loss` for the gradient and ``kwargs``.
    """
    xp = array_namespace(theta, theta0)
    attacked = xp.asarray(theta, dtype=np.float64)
    if theta0 is not None:
        attacked = attacked - xp.asarray(theta0, dtype=np.float64)
    return projection_loss(X_hat, attacked, model, **kwargs)
