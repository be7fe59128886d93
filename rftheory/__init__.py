"""rftheory: the law of data reconstruction for random features, as software.

The public API is re-exported here and imported on first use (PEP 562), so that
``import rftheory`` loads neither NumPy's heavier neighbours (SciPy, Numba, SymPy)
nor the compiled engine:

>>> import rftheory
>>> data = rftheory.synthetic_sphere(n=10, d=20, seed=0)
>>> model = rftheory.RandomFeatures(p=4000, d=20, seed=1000).fit(data.X, data.y)
>>> result = rftheory.reconstruct(model.theta, model, n=10)

Folders by role: :mod:`rftheory.models` (activations, random features, adapters),
:mod:`rftheory.theory` (Hermite coefficients, identifiability, signs),
:mod:`rftheory.attack` (loss, attack, metrics), :mod:`rftheory.optim` (sphere
geometry, L-BFGS), :mod:`rftheory.experiments` (law sweeps), :mod:`rftheory.data`.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it (imported on first attribute access)
_EXPORTS = {
    # models
    "Activation": "rftheory.models.activations",
    "get_activation": "rftheory.models.activations",
    "known_activations": "rftheory.models.activations",
    "RandomFeatures": "rftheory.models.random_features",
    "random_weights": "rftheory.models.random_features",
    "features_for_ratio": "rftheory.models.random_features",
    "TwoLayerMLP": "rftheory.models.adapters",
    "SmallResNet": "rftheory.models.adapters",
    # attack
    "AttackOptions": "rftheory.attack.options",
    "projection_loss": "rftheory.attack.loss",
    "LossResult": "rftheory.attack.loss",
    "reconstruct": "rftheory.attack.reconstruct",
    "ReconstructionResult": "rftheory.attack.reconstruct",
    "reconstruction_errors": "rftheory.attack.metrics",
    "chance_levels": "rftheory.attack.metrics",
    "subspace_reconstruct": "rftheory.attack.subspace",
    # theory
    "hermite_coefficients": "rftheory.theory.hermite",
    "kernel_limit": "rftheory.theory.hermite",
    "parity_report": "rftheory.theory.hermite",
    "identifiability_checks": "rftheory.theory.identifiability",
    # experiments
    "sweep": "rftheory.experiments.law",
    "critical_ratio": "rftheory.experiments.law",
    # data
    "Dataset": "rftheory.data",
    "synthetic_sphere": "rftheory.data",
    "digits": "rftheory.data",
}

# __version__ and every key of _EXPORTS, written out so that static tools see them (tests/test_package.py
# checks that the two agree)
__all__ = [
    "__version__", "Activation", "AttackOptions", "Dataset", "LossResult", "RandomFeatures",
    "ReconstructionResult", "SmallResNet", "TwoLayerMLP", "chance_levels", "critical_ratio",
    "digits", "features_for_ratio", "get_activation", "hermite_coefficients",
    "identifiability_checks", "kernel_limit", "known_activations", "parity_report",
    "projection_loss", "random_weights", "reconstruct", "reconstruction_errors",
    "subspace_reconstruct", "sweep", "synthetic_sphere",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rftheory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .attack.loss import LossResult, projection_loss
    from .attack.metrics import chance_levels, reconstruction_errors
    from .attack.options import AttackOptions
    from .attack.reconstruct import ReconstructionResult, reconstruct
    from .attack.subspace import subspace_reconstruct
    from .data import Dataset, digits, synthetic_sphere
    from .experiments.law import critical_ratio, sweep
    from .models.activations import Activation, get_activation, known_activations
    from .models.adapters import SmallResNet, TwoLayerMLP
    from .models.random_features import RandomFeatures, features_for_ratio, random_weights
    from .theory.hermite import hermite_coefficients, kernel_limit, parity_report
    from .theory.identifiability import identifiability_checks
