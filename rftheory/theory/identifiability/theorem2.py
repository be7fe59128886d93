r"""Theorem 2 (n = 2, distinctness): the span mismatch of candidate pairs near x_1.

For X = (x_1, x_2) and a candidate pair X̂ = (x̂_1, x̂_2) with features Φ̂, the
span mismatch is the relative residual of the true features on span Φ̂,

    M(X̂) = ‖P⊥_Φ̂ Φᵀ‖_F / ‖Φ‖_F  (0 iff span Φ ⊂ span Φ̂).

Its square is a variable-projection loss: α = (Φ̂Φ̂ᵀ)⁻¹Φ̂Φᵀ,
Rm = Φ − αᵀΦ̂, M² = ‖Rm‖²/‖Φ‖², ∂M²/∂Φ̂ = −2 α Rm/‖Φ‖², chained through
σ'(X̂Vᵀ) and V.  :func:`distinctness_check` minimises M over pairs with both
points within distance ε of x_1 (‖x̂_k − x_1‖/√d ≤ ε), with the search of
:mod:`rftheory.theory.identifiability.search` kept inside the cap around x_1;
Theorem 2 says this minimum stays away from 0 as p/d grows.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...backend import array_namespace, to_numpy
from ...validation import check_matrix
from ..span import principal_angles, row_residuals
from .common import _check_count, _check_sphere, _features, _weights_act, cap_cosine
from .search import _KeepCap, riemannian_lbfgs

__all__ = ["span_mismatch", "DistinctnessResult", "distinctness_check", "DEFAULT_EPS"]

DEFAULT_EPS = 0.3  # both candidates within ε of x_1 (the same radius as Theorem 1's δ)


def _mismatch_objective(T, V, act):
    """M(X̂)² = ‖P⊥_Φ̂ Tᵀ‖²/‖T‖² per problem (X̂: (m, k, d)) and its gradient."""
    xp = array_namespace(T)
    tt = float(xp.sum(T * T))

    def fun(Xb):
        Z = Xb @ V.T  # (m, k, p)
        F = act.fn(Z)
        A = F @ xp.swapaxes(F, 1, 2)  # (m, k, k)
        B = F @ T.T  # (m, k, C)
        try:
            alpha = xp.linalg.solve(A, B)
        except Exception:  # exactly singular Gram (coincident candidates)
            alpha = xp.linalg.pinv(A) @ B
        Rm = T[None] - xp.swapaxes(alpha, 1, 2) @ F  # (m, C, p)
        L = xp.sum(Rm * Rm, axis=(1, 2)) / tt
        dF = (-2.0 / tt) * (alpha @ Rm)  # (m, k, p)
        G = (dF * act.deriv(Z)) @ V
        return L, G

    return fun


def span_mismatch(X_hat, X, model):
    """M(X̂) = ‖P⊥_Φ̂ Φᵀ‖_F/‖Φ‖_F: relative residual of the true features on span σ(X̂Vᵀ)."""
    X = check_matrix(X, "X")
    X_hat = check_matrix(X_hat, "X_hat", cols=X.shape[1], cols_name="d (columns of X)")
    xp = array_namespace(X_hat, X)
    V, act = _weights_act(model, xp, X.shape[1])
    Phi = _features(xp.asarray(X, dtype=np.float64), V, act)
    Phi_hat = _features(xp.asarray(X_hat, dtype=np.float64), V, act)
    r = row_residuals(Phi, Phi_hat)
    return float(xp.sqrt(xp.sum(r.absolute**2) / xp.sum(r.norms**2)))


class DistinctnessResult(NamedTuple):
    """Theorem 2 figures for one (x_1, x_2, V).

    mismatch : min M(x̂_1, x̂_2) found with both candidates within ε of x_1.
    angle : largest principal angle (rad) between span Φ̂ and span Φ at that pair.
    pair : the pair found (2, d).
    distances : ‖x̂_k − x_1‖/√d of both candidates.
    truth_mismatch : M(x_1, x_2) (round-off floor).
    eps, p, d, ratio (= p/d).
    """

    mismatch: float
    angle: float
    pair: object
    distances: object
    truth_mismatch: float
    eps: float
    p: int
    d: int
    ratio: float


def distinctness_check(
    X,
    model,
    *,
    eps: float = DEFAULT_EPS,
    starts: int = 16,
    max_iter: int = 300,
    seed: int = 0,
) -> DistinctnessResult:
    """min M(x̂_1, x̂_2) over pairs with ‖x̂_k − x_1‖/√d ≤ ε (Theorem 2, n = 2).

    X must have exactly two rows on the √d-sphere.  Starts: pairs of
    independent points drawn uniformly in angle inside the cap around x_1.
    """
    X, xp = _check_sphere(X)
    if X.shape[0] != 2:
        raise ValueError(f"the Theorem 2 check is for n = 2 samples, got n = {X.shape[0]}")
    starts = _check_count("starts", starts)
    n, d = X.shape
    V, act = _weights_act(model, xp, d)
    p = int(V.shape[0])
    c = cap_cosine(eps)
    rng = np.random.default_rng([seed, 7124])
    a = to_numpy(X[0]) / math.sqrt(d)
    theta_max = math.acos(c)
    P0 = np.empty((starts, 2, d))
    for s in range(starts):
        for k in range(2):
            u = rng.standard_normal(d)
            u -= (u @ a) * a
            u /= np.linalg.norm(u)
            th = rng.uniform(0.0, theta_max)
            P0[s, k] = math.sqrt(d) * (math.cos(th) * a + math.sin(th) * u)
    Phi = _features(X, V, act)
    res = riemannian_lbfgs(_mismatch_objective(Phi, V, act), xp.asarray(P0), constraint=_KeepCap(X[0], c), max_iter=max_iter)
    Ms = [span_mismatch(res.X[s], X, model) for s in range(starts)]
    b = int(np.argmin(Ms))
    pair = res.X[b]
    ang = principal_angles(_features(pair, V, act), Phi)
    dist = xp.linalg.norm(pair - X[0][None, :], axis=1) / math.sqrt(d)
    return DistinctnessResult(
        mismatch=float(Ms[b]),
        angle=float(ang[0]) if ang.size else math.pi / 2,
        pair=pair,
        distances=dist,
        truth_mismatch=span_mismatch(X, X, model),
        eps=float(eps),
        p=p,
        d=d,
        ratio=p / d,
    )
