"""Geometry of the product of spheres on which the attack and the identifiability searches optimise.

A point is an array X whose rows (last axis) x_i lie on the sphere of radius ρ
(ρ = √d by default, d = X.shape[-1], docs/design.md's convention ‖x_i‖ = √d); any
leading shape is allowed, e.g. (n, d) for one iterate or (R, n, d) for R runs.

* tangent projection  P_X(G)_i = g_i − (⟨g_i, x_i⟩/‖x_i‖²) x_i    (:func:`riemannian_gradient`)
* retraction          R(X)_i = ρ·x_i/‖x_i‖                         (:func:`retract_to_sphere`)
* step                R(X + t·D)                                   (:func:`step_on_sphere`)
* random points       uniform on the sphere, rows g/‖g‖·ρ          (:func:`random_sphere`)

NumPy float32/float64 arrays use the compiled row kernels of
:mod:`rftheory.optim._compiled` when :func:`rftheory.backend.numba_enabled`
("rows") is on (sums and norms in float64, one pass, no temporaries); CuPy and
other arrays use the array-API expressions below, equal up to rounding.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import array_namespace
from ._compiled import retract_rows, rows_kernel_applies, step_rows, tangent_rows

__all__ = ["riemannian_gradient", "retract_to_sphere", "step_on_sphere", "random_sphere"]

TINY = 1e-300  # floor of a norm before dividing by it (a zero row stays finite)


def riemannian_gradient(X, G):
    """Tangent part of G on the product of spheres: g_i − (⟨g_i, x_i⟩/‖x_i‖²) x_i."""
    if rows_kernel_applies(X, G):
        return tangent_rows(X, G)
    xp = array_namespace(X, G)
    coef = xp.sum(G * X, axis=-1, keepdims=True) / xp.sum(X * X, axis=-1, keepdims=True)
    return G - coef * X


def retract_to_sphere(X, radius=None):
    """Rescale every row to norm ``radius`` (default √d)."""
    if radius is None:
        radius = math.sqrt(X.shape[-1])
    if rows_kernel_applies(X):
        return retract_rows(X, radius)
    xp = array_namespace(X)
    norms = xp.linalg.norm(X, axis=-1, keepdims=True)
    return X * (radius / xp.maximum(norms, TINY))


def step_on_sphere(X, t: float, direction, radius=None):
    """R(X + t·D): the step t along ``direction`` retracted to the sphere of ``radius`` (default √d), per row."""
    if radius is None:
        radius = math.sqrt(X.shape[-1])
    if rows_kernel_applies(X, direction):
        return step_rows(X, t, direction, radius)
    return retract_to_sphere(X + t * direction, radius)


def random_sphere(n: int, d: int, rng: np.random.Generator, xp=np, dtype=np.float64):
    """n points uniform on the sphere of radius √d in R^d: standard normal rows g, rescaled to √d·g/‖g‖.

    Drawn on the host from ``rng`` (so a seed gives the same points on every
    backend), then moved to ``xp`` in ``dtype``.
    """
    G = rng.standard_normal((n, d))
    G *= math.sqrt(d) / np.linalg.norm(G, axis=1, keepdims=True)
    return xp.asarray(G, dtype=dtype)
