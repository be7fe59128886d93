"""The compiled engine behind one door: :func:`make_loss`.  Private: only :mod:`rftheory.attack.loss` imports it.

``make_loss(model, θ, ‖θ‖², derivative=…, tangent=…)`` returns an evaluator

    f(X̂, with_grad) -> (L (R,), ∂L/∂X̂ (R, n̂, d) float32 or None, α (R, n̂))

for float32 NumPy stacks X̂ of shape (R, n̂, d), with the mathematics of
:func:`rftheory.attack.loss.projection_loss` (v = Φ̂θ, A = Φ̂Φ̂ᵀ, α = A⁻¹v,
r = θ − Φ̂ᵀα, L = ‖r‖²/‖θ‖²) on packed panels of V and the engine's own
threads (:mod:`rftheory._engine.panel_loss`), or None where the engine does
not serve the model, θ or options; the loss module then runs its NumPy/BLAS
path.  The engine serves exactly σ = a·relu + b·tanh, as the activation
states it (``Activation.relu_tanh``): it never parses σ, so a new activation
needs no change here and simply takes the BLAS path.

Everything the engine needs is kept inside it: the packed copy of V is
cached per model, weakly (it goes with the model), and the evaluator picks
its thread count (the BLAS limit when made, one thread for a small problem)
and pins BLAS to one thread while its kernels run, restoring it after every
call.  :func:`blas_for` gives the BLAS path the same small-problem rule.

Also here: the fused σ/σ' kernel (:func:`fused_value_and_derivative`) and
:func:`sum_of_squares` of the BLAS path.
"""
from __future__ import annotations

import numpy as np

from .kernels import fused_value_and_derivative, sum_of_squares
from .threads import SMALL_PROBLEM_FLOPS, blas_for

__all__ = ["make_loss", "blas_for", "fused_value_and_derivative", "sum_of_squares", "SMALL_PROBLEM_FLOPS"]


def make_loss(model, theta, theta_sq: float, *, derivative: str = "true", tangent: bool = False,
              threads: int | None = None, one_shot: bool = False):
    """The engine's evaluator of the projection loss for ``model`` and θ, or None.

    Parameters
    ----------
    model : RandomFeatures
        Served when float32 on NumPy with V stored (≤ 1 GiB), σ = a·relu + b·tanh,
        Numba present and the "panel" kernel on (RFTHEORY_NUMBA).
    theta : float64 NumPy array (p,)
        θ, already checked by the caller; ``theta_sq`` = ‖θ‖² > 0 as the caller computed it.
    derivative : "true" or "relu"
        σ' of the gradient (the ReLU surrogate 1[z > 0] on request).
    tangent : bool
        Gradient rows projected onto the tangent spaces of the spheres through X̂'s rows.
    threads : int, optional
        Threads for the kernels, whatever the problem size.  Default: the
        BLAS thread limit now (so ``threadpoolctl.threadpool_limits(1)``
        makes the engine serial too), and one thread for an evaluation below
        SMALL_PROBLEM_FLOPS = 4·R·n̂·d·p.
    one_shot : bool
        For an evaluator made per call (``projection_loss``): its buffers are
        this thread's, kept per model by the engine and reused by the next one.

    Returns the evaluator ``f(X_hat, with_grad=True)`` (see the module
    docstring), or None.
    """
    from .panel_loss import PanelLoss, panel_coefficients  # noqa: PLC0415 - loads Numba only when asked

    if derivative not in ("true", "relu") or not isinstance(theta, np.ndarray):
        return None
    coefficients = panel_coefficients(model)
    if coefficients is None:
        return None
    return PanelLoss(model, coefficients, theta, theta_sq, relu_surrogate=derivative == "relu", tangent=tangent,
                     threads=threads, one_shot=one_shot)
