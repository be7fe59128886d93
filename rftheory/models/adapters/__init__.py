"""Beyond random features: torch-free network adapters for the attack.

* :class:`TwoLayerMLP` — f(x) = W₂ σ(W₁x + b₁) + b₂ (C outputs).
* :class:`SmallResNet` — 3×3 conv stem, residual blocks of two 3×3 convs,
  flatten or global average pooling, linear head (convolutions via im2col).
* :mod:`rftheory.models.adapters.torch_io` — load/export ``.npz`` files of PyTorch
  state_dicts (documented key mapping), and torch reference modules.

Every adapter is trained by full-batch gradient descent on the squared loss
from a seeded initialisation (:meth:`~FeatureMapModel.fit`), and follows the
feature-map protocol of :mod:`rftheory.attack.loss`: ``features(X)`` = h(X), the
last-layer features of the trained body (the gradient of each output with
respect to its row of the head W_L), and ``features_vjp(X, G)``, the
hand-written input VJP.  The attacked matrix is
``model.delta_theta()`` = (W_L − W_L^init)ᵀ ∈ R^{p_L×C}, so

    reconstruct(model.delta_theta(), model, n)

runs the attack exactly as on a random-features model (Gram K ⊗ I_C: one
n×n solve for all C outputs).
"""
from ._base import FeatureMapModel, TrainingReport, gradient_descent, one_hot_targets
from .mlp import TwoLayerMLP
from .resnet import POOLS, SmallResNet

__all__ = [
    "FeatureMapModel",
    "TrainingReport",
    "gradient_descent",
    "one_hot_targets",
    "TwoLayerMLP",
    "SmallResNet",
    "POOLS",
]
