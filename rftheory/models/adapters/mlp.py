"""Two-layer MLP adapter (NumPy/CuPy, no torch).

Network (PyTorch layouts and state_dict names in brackets):

    z(x) = W₁ x + b₁                W₁ ∈ R^{m×d} ["hidden.weight"], b₁ ∈ R^m ["hidden.bias"]
    h(x) = σ(z(x)) ∈ R^m            the last-layer features, p_L = m (the width)
    f(x) = W₂ h(x) + b₂ ∈ R^C       W₂ ∈ R^{C×m} ["head.weight"], b₂ ∈ R^C ["head.bias"]

i.e. ``nn.Sequential``-free ``hidden = nn.Linear(d, m)``, σ, ``head =
nn.Linear(m, C)`` (see :func:`rftheory.models.adapters.torch_io.torch_module`).

Initialisation (seeded, host-side so every backend gets the same numbers):
W₁ ~ N(0, 1/d) (the RF convention of docs/design.md), W₂ ~ N(0, 1/m), biases 0.

Attack (docs/design.md, "Beyond the random features model"): features are the
gradient of the output with respect to the last layer at the trained body,
h(x) = σ(W₁x + b₁) with the *trained* W₁, b₁, and the attacked matrix is
Θ = (W₂ − W₂^init)ᵀ ∈ R^{m×C}.

Why the attack is valid.  GD on ℓ = ‖F − Y‖²/(2n) updates the head by
−η Rₜᵀ Hₜ with Hₜ = σ(X W₁,ₜᵀ + b₁,ₜ), so

    W₂ − W₂^init = −η Σₜ Rₜᵀ Hₜ.

* ``train="last"``: Hₜ = H is fixed, so every column of Θ lies exactly in
  the row span of H = h(X) — the random-features situation with features h;
  the loss at the true X is 0 up to rounding.
* ``train="all"`` (default): Hₜ drifts as W₁ trains, and Θ lies in the span
  of h_T(X) only up to the drift, ‖Hₜ − H_T‖/‖H_T‖.  In the standard
  parametrisation used here (W₂ ~ N(0, 1/m)) with the largest stable step
  (η ≈ n/λ_max(HHᵀ) ∝ 1/m), the first layer moves by O(1/m) relative to its
  initialisation (about 1e-4 for the digits example at m = 8·dn), so the
  projection loss at the true X is a small floor (≈ 1e-7 there) instead of
  0, and the attack's minimiser stays near the training set.  The report's
  ``body_change`` and the loss at the true X quantify this for every run.
"""
from __future__ import annotations

import math

import numpy as np

from ..activations import get_activation
from ...backend import resolve_backend
from ...validation import check_count
from ._base import FeatureMapModel

__all__ = ["TwoLayerMLP"]


class TwoLayerMLP(FeatureMapModel):
    """f(x) = W₂ σ(W₁x + b₁) + b₂ with C outputs (see the module docstring).

    Parameters
    ----------
    d : int
        Input dimension.
    width : int
        Hidden width m = p_L (last-layer feature count).
    outputs : int
        C, number of outputs.
    activation : str or Activation
        σ (any registered activation or sum, e.g. "relu", "relu+tanh").
    bias : bool
        First-layer bias b₁ (trained when training all layers).
    head_bias : bool
        Output bias b₂ (trained, not part of the attacked Θ).
    seed : int
        Seed of the initialisation.
    dtype : float64 or float32
    backend : "numpy" or "cupy"

    Attributes
    ----------
    params, init_params : dict
        Current and initial parameters, keyed by PyTorch state_dict names.
    p, d, dtype, xp, activation
        The feature-map protocol of :mod:`rftheory.attack.loss`.
    """

    def __init__(self, d: int, width: int, outputs: int = 1, activation="relu", *, bias: bool = True,
                 head_bias: bool = True, seed: int = 0, dtype=np.float64, backend="numpy"):
        for name, val in (("d", d), ("width", width), ("outputs", outputs)):
            check_count(val, name)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype}")
        self.xp = resolve_backend(backend)
        self.activation = get_activation(activation)
        self.d, self.p, self.seed = int(d), int(width), int(seed)
        self.params = {"hidden.weight": self._normal(1, (width, d), 1 / math.sqrt(d))}
        if bias:
            self.params["hidden.bias"] = self.xp.zeros(width, dtype=self.dtype)
        self.params["head.weight"] = self._normal(2, (outputs, width), 1 / math.sqrt(width))
        if head_bias:
            self.params["head.bias"] = self.xp.zeros(outputs, dtype=self.dtype)
        self._freeze_init()

    @property
    def width(self) -> int:
        return self.p

    def describe(self) -> str:
        return (f"two-layer MLP d={self.d} → width m={self.p} (σ={self.activation.name}"
                f"{', bias' if 'hidden.bias' in self.params else ''}) → C={self.outputs}, "
                f"{self._origin_words()}, total p={self.n_params}")

    # z = X W₁ᵀ + b₁, h = σ(z)
    def _body_forward(self, X, keep: bool):
        Z = X @ self.params["hidden.weight"].T
        if "hidden.bias" in self.params:
            Z += self.params["hidden.bias"]
        H = self.activation.fn(Z)
        return H, ((X, Z) if keep else None)

    # dZ = G ⊙ σ'(Z);  ∂/∂X = dZ W₁;  ∂/∂W₁ = dZᵀ X;  ∂/∂b₁ = Σ_i dZ_i
    def _body_backward(self, cache, G, param_grads: bool):
        X, Z = cache
        dZ = G * self.activation.deriv(Z)
        dX = dZ @ self.params["hidden.weight"]
        grads = {}
        if param_grads:
            grads["hidden.weight"] = dZ.T @ X
            if "hidden.bias" in self.params:
                grads["hidden.bias"] = dZ.sum(axis=0)
        return dX, grads
