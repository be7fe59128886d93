r"""Shared parts of the identifiability checks: models, the sphere check, distances, verdicts.

Models
------
A "model" is a :class:`rftheory.models.random_features.RandomFeatures` or any
object with ``weights`` (V, p×d) and ``activation``; :class:`FixedWeights`
wraps an explicit V.  Features φ(x) = σ(Vx) and Φ = σ(XVᵀ) are recomputed
here in float64 (V is promoted whatever the model's dtype), because the
quantities of interest reach round-off level (R(x_i) ≈ 1e-16).

Sphere
------
The statements are about rows on the sphere of radius √d; the checks raise
ValueError when max_i |‖x_i‖²/d − 1| exceeds ``SPHERE_RTOL``.

Distances
---------
Sign-aware relative distance of x̂ to the data:
``dist(x̂) = min_i min_{s=±1} ‖x̂ − s·x_i‖/‖x_i‖``.  On the √d-sphere
``dist(x̂) ≥ δ  ⇔  |⟨x̂, x_i⟩|/d ≤ c(δ) = 1 − δ²/2`` for every i
(:func:`cap_cosine`).

Verdicts
--------
:class:`Check` holds one measured number, a stated threshold and the
relation between them; ``passed`` is computed from the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ...backend import array_namespace
from ...models.activations import Activation, get_activation
from ...validation import check_count, check_matrix

__all__ = [
    "FixedWeights",
    "Check",
    "Distance",
    "sign_aware_distance",
    "cap_cosine",
    "DEFAULT_ORDER",
    "SPHERE_RTOL",
]

DEFAULT_ORDER = 60  # Hermite order of the kernel predictions (tail ≤ 1e-4 for relu+tanh)
SPHERE_RTOL = 1e-6  # allowed |‖x‖²/d − 1|: above the float32 rounding (~1e-7) of rows scaled to √d


class FixedWeights:
    """Feature map φ(x) = σ(Vx) for an explicit weight matrix V (p×d).

    Useful for transformed weights (e.g. V Qᵀ for a rotation Q) that no seed
    produces.  Has the attributes the checks need: ``p, d, weights,
    activation, xp, dtype`` and ``features(X)``.
    """

    def __init__(self, V, activation="relu+tanh"):
        V = check_matrix(V, "V")
        self.xp = array_namespace(V)
        self.dtype = np.dtype(V.dtype) if V.dtype.kind == "f" else np.dtype(np.float64)
        self.weights = self.xp.asarray(V, dtype=self.dtype)
        self.p, self.d = (int(s) for s in V.shape)
        self.activation: Activation = get_activation(activation)

    def features(self, X):
        """Φ = σ(X Vᵀ)."""
        return self.activation.fn(self.xp.asarray(X, dtype=self.dtype) @ self.weights.T)

    def __repr__(self) -> str:
        return f"FixedWeights(p={self.p}, d={self.d}, activation={self.activation.name!r})"


def _weights_act(model, xp, d):
    if not (hasattr(model, "weights") and hasattr(model, "activation")):
        raise TypeError(
            f"model must be a RandomFeatures or FixedWeights (with .weights and .activation), got {type(model).__name__}"
        )
    V = model.weights
    if V.shape[1] != d:
        raise ValueError(f"model has d={V.shape[1]} but the samples have d={d} columns")
    return xp.asarray(V, dtype=np.float64), get_activation(model.activation)


def _features(X, V, act):
    return act.fn(X @ V.T)


def _check_sphere(X, name="X", rtol=SPHERE_RTOL):
    X = check_matrix(X, name)
    xp = array_namespace(X)
    X = xp.asarray(X, dtype=np.float64)
    d = X.shape[1]
    dev = float(xp.max(xp.abs(xp.sum(X * X, axis=1) / d - 1.0)))
    if not dev <= rtol:
        raise ValueError(
            f"rows of {name} must lie on the √d-sphere (‖x‖ = √d = {math.sqrt(d):.6g}); max |‖x‖²/d − 1| = "
            f"{dev:.3g} > {rtol:g}. Rescale them, e.g. with rftheory.data.synthetic.project_to_sphere"
        )
    return X, xp


@dataclass(frozen=True)
class Check:
    """One verdict: ``measured`` compared with a stated ``threshold``.

    ``relation`` is "<=", ">=" or "==" and reads "measured RELATION
    threshold"; ``passed`` is computed from the numbers (NaN fails).
    """

    quantity: str
    measured: float
    threshold: float
    relation: str
    detail: str = ""

    def __post_init__(self):
        if self.relation not in ("<=", ">=", "=="):
            raise ValueError(f"relation must be '<=', '>=' or '==', got {self.relation!r}")

    @property
    def passed(self) -> bool:
        m, t = float(self.measured), float(self.threshold)
        if math.isnan(m) or math.isnan(t):
            return False
        if self.relation == "<=":
            return m <= t
        if self.relation == ">=":
            return m >= t
        return m == t

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


class Distance(NamedTuple):
    """``distance`` min_{i,s} ‖x̂ − s x_i‖/‖x_i‖, with the minimising ``index`` and ``sign``."""

    distance: object
    index: object
    sign: object


def sign_aware_distance(X_hat, X) -> Distance:
    """Sign-aware relative distance of each row of X̂ to the nearest ±x_i.

    dist(x̂) = min_i min_{s=±1} ‖x̂ − s x_i‖/‖x_i‖ (any norms; on the
    √d-sphere it is √(2 − 2|⟨x̂, x_i⟩|/d)).
    """
    X_hat = check_matrix(X_hat, "X_hat")
    X = check_matrix(X, "X", cols=X_hat.shape[1], cols_name="d (columns of X_hat)")
    xp = array_namespace(X_hat, X)
    A = xp.asarray(X_hat, dtype=np.float64)
    B = xp.asarray(X, dtype=np.float64)
    nb = xp.sum(B * B, axis=1)
    na = xp.sum(A * A, axis=1)
    G = A @ B.T
    d2 = na[:, None] + nb[None, :] - 2.0 * xp.abs(G)
    rel = xp.sqrt(xp.maximum(d2, 0.0) / nb[None, :])
    idx = xp.argmin(rel, axis=1)
    ar = xp.arange(A.shape[0])
    sign = xp.where(G[ar, idx] >= 0, 1.0, -1.0)
    return Distance(rel[ar, idx], idx, sign)


def cap_cosine(delta: float) -> float:
    """c(δ) = 1 − δ²/2: on the sphere, ‖x̂ − x‖/‖x‖ ≥ δ ⇔ ⟨x̂, x⟩/d ≤ c(δ)."""
    if not (isinstance(delta, (int, float, np.floating)) and 0 < delta < math.sqrt(2)):
        raise ValueError(f"the distance threshold must lie in (0, √2), got {delta!r}")
    return 1.0 - 0.5 * float(delta) ** 2


def _check_count(name, v, lo=1):
    return check_count(v, name, minimum=lo)
