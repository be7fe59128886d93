"""Shared helpers of the engine tests: the engine's door at a chosen thread count, the BLAS-path switch,
and a float32 random-features model with a random θ."""
from __future__ import annotations


import numpy as np
import pytest

from rftheory._engine.panel import (
    panel_kernels_available,
)
from rftheory._engine import make_loss, sum_of_squares
from rftheory._engine.panel_loss import panel_coefficients
from rftheory.models.random_features import RandomFeatures

needs_numba = pytest.mark.skipif(not panel_kernels_available(), reason="needs Numba")


def panel_loss_applicable(model, X) -> bool:
    """Whether projection_loss takes the engine's panel path for this model and X̂."""
    return isinstance(X, np.ndarray) and panel_coefficients(model) is not None


def engine_loss(model, X, *, threads, with_grad=True, derivative="true", tangent=False):
    """projection_loss's result through the engine's door with a given thread count (any problem size)."""
    theta = np.asarray(model.theta, dtype=np.float64)
    evaluate = make_loss(model, theta, sum_of_squares(theta), derivative=derivative, tangent=tangent,
                         threads=threads)
    loss, grad, alpha = evaluate(X if X.ndim == 3 else X[None], with_grad)
    return (loss, grad, alpha) if X.ndim == 3 else (loss[0], None if grad is None else grad[0], alpha[0])


def _model(p, d, activation="relu+tanh", dtype=np.float32, seed=3):
    model = RandomFeatures(p, d, activation, seed=seed, dtype=dtype)
    model.theta = np.random.default_rng(seed).standard_normal(p)
    return model
