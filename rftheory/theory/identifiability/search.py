r"""The Riemannian search of the identifiability checks, with spherical-cap constraints.

Optimiser
---------
The package's one batched Riemannian L-BFGS
(:func:`rftheory.optim.lbfgs.riemannian_lbfgs`, called through
:func:`riemannian_lbfgs` with this module's settings): m independent
problems, each a (k×d) block of points, are optimised at once with
per-problem memory (10 pairs), step sizes and Armijo back-tracking (at most
25 trial steps).  Directions are projected on the tangent space
(g − ⟨g, x⟩x/‖x‖²) and every step is retracted (x ← √d·x/‖x‖).  Spherical-cap
constraints (caps cut out for Theorem 1, a cap kept for Theorem 2) plug into
the optimiser's constraint hook, an active-set rule: a point on a cap
boundary whose steepest descent leaves the feasible set is *bound* — its
gradient and direction lose the component along the boundary normal ν and
after the step it is put back on the same boundary — and every trial point
is projected on the feasible set.  With g_p the gradient so projected, a
step is accepted when f(x_t) ≤ f(x) + 10⁻⁴·min(⟨g_p, x_t − x⟩, 0) and
f(x_t) ≤ f(x).  A problem stops at f ≤ tol, ‖g_p‖ ≤ 10⁻¹⁰, a stall
(relative decrease below 10⁻⁷ over 10 accepted steps), a failed line search
from the steepest-descent direction, or ``max_iter``
(``stop_reason`` of the result says which).  The result is a local minimum
from each start; the minimum over starts is an upper bound on the global infimum.

Constraint sets
---------------
A cap around the unit vector a is {x : ⟨x, a⟩/‖x‖ ≥ c}.  Theorem 1 cuts out
the caps around every ±x_i (``_ExcludeCaps``: the far region dist(x̂) ≥ δ,
c = c(δ)); Theorem 2 keeps one cap around x_1 (``_KeepCap``).  A point is on
a cap boundary when its cosine is within ``ACTIVE_TOL`` of c.
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import array_namespace, to_numpy
from ...optim.lbfgs import LBFGSResult
from ...optim.lbfgs import riemannian_lbfgs as _lbfgs
from ...optim.sphere import retract_to_sphere

__all__ = ["riemannian_lbfgs", "OptimResult", "ACTIVE_TOL"]


OptimResult = LBFGSResult  # the record of rftheory.optim.lbfgs: X, f, iterations, evaluations, stop_reason, history


def riemannian_lbfgs(
    fun,
    X0,
    *,
    constraint=None,
    max_iter: int = 300,
    tol: float = -math.inf,
    grad_tol: float = 1e-10,
    memory: int = 10,
    stall_window: int = 10,
    stall_rtol: float = 1e-7,
    max_backtracks: int = 25,
) -> OptimResult:
    """Minimise m independent objectives on products of √d-spheres at once, with this module's settings.

    The package's one optimiser (:func:`rftheory.optim.lbfgs.riemannian_lbfgs`)
    with a Euclidean-gradient objective; the starts are retracted to the
    √d-sphere and projected on the feasible set first.

    Parameters
    ----------
    fun : callable
        ``fun(X) -> (f, G)`` for X of shape (m', k, d): values f (m',) and
        Euclidean gradients G (m', k, d), problem by problem (the same
        function for every problem; it is called on subsets of problems).
    X0 : array (m, k, d)
        Starting points.
    constraint : optional
        A spherical-cap constraint (``_ExcludeCaps`` or ``_KeepCap``), the
        optimiser's constraint hook (active-set rule on the cap boundaries);
        None: no constraint.
    tol : float
        A problem stops once f ≤ tol (default −inf: no target value).
    max_iter, grad_tol, memory, stall_window, stall_rtol, max_backtracks
        See the module docstring.  The defaults: 10 pairs suffice for the
        k·d-dimensional problems here; the stall test is finer (10⁻⁷) than the
        attack's because these searches estimate minima, not just reach a tolerance.
    """
    xp = array_namespace(X0)
    X = xp.asarray(X0, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"X0 must have shape (m, k, d), got {tuple(X.shape)}")
    X = retract_to_sphere(X)
    if constraint is not None:
        X = constraint.project(X)
    res = _lbfgs(fun, X, max_iter=max_iter, tol=tol, grad_tol=grad_tol, memory=memory, stall_window=stall_window,
                 stall_rtol=stall_rtol, max_backtracks=max_backtracks, gradient="euclidean", constraint=constraint)
    return res._replace(f=xp.asarray(res.f), iterations=xp.asarray(res.iterations))


ACTIVE_TOL = 1e-9  # a point is on a cap boundary when its cosine is within this of c


def _orthogonal_unit(U, a, xp):
    """Unit vectors along the part of U's rows orthogonal to the unit rows of a."""
    w = U - xp.sum(U * a, axis=-1, keepdims=True) * a
    wn = xp.linalg.norm(w, axis=-1, keepdims=True)
    # degenerate (U = ±a): use the basis vector least aligned with a
    e = xp.eye(U.shape[-1])[xp.argmin(xp.abs(a), axis=-1)]
    e = e - xp.sum(e * a, axis=-1, keepdims=True) * a
    e = e / xp.maximum(xp.linalg.norm(e, axis=-1, keepdims=True), 1e-300)
    return xp.where(wn > 1e-12, w / xp.maximum(wn, 1e-300), e)


class _Caps:
    """Common part of the spherical-cap constraints.

    A cap around the unit vector a is {x : ⟨x, a⟩/‖x‖ ≥ c}.  ``snap`` puts
    x on its boundary along the great circle through a:
    x ← ‖x‖(c·a + √(1 − c²)·u), u the unit part of x orthogonal to a.
    ``outward`` is +1 when the cap is the infeasible side (excluded caps)
    and −1 when it is the feasible side (kept cap); ν, the unit tangent
    normal pointing out of the feasible set, is outward·(a − ⟨a, x̂⟩x̂)/‖·‖.
    """

    outward = 1.0

    def _setup(self, xp, c):
        self.xp = xp
        self.c = float(c)
        self.s = math.sqrt(max(1.0 - self.c**2, 0.0))

    def snap(self, Xb, anchors, mask):
        xp = self.xp
        shape = Xb.shape
        Xr = Xb.reshape(-1, shape[-1])
        A = anchors.reshape(-1, shape[-1])
        radius = xp.linalg.norm(Xr, axis=1, keepdims=True)
        U = Xr / radius
        new = (self.c * A + self.s * _orthogonal_unit(U, A, xp)) * radius
        return xp.where(mask.reshape(-1)[:, None], new, Xr).reshape(shape)  # unmasked rows untouched

    def normal_to(self, Xb, anchors):
        xp = self.xp
        U = Xb / xp.linalg.norm(Xb, axis=-1, keepdims=True)
        nu = anchors - xp.sum(anchors * U, axis=-1, keepdims=True) * U
        return self.outward * nu / xp.maximum(xp.linalg.norm(nu, axis=-1, keepdims=True), 1e-300)


class _ExcludeCaps(_Caps):
    """Feasible set {x : |⟨x, x_i⟩|/(‖x‖‖x_i‖) ≤ c ∀i} (distance ≥ δ from every ±x_i).

    ``project`` moves a point inside a cap to the boundary of that cap along
    the great circle through its centre, most violated cap first, repeated
    until no cap is violated (at most 2n + 2 rounds).
    """

    outward = 1.0

    def __init__(self, X, c):
        xp = array_namespace(X)
        self._setup(xp, c)
        self.anchors = X / xp.linalg.norm(X, axis=1, keepdims=True)
        self.rounds = 2 * X.shape[0] + 2

    def _worst(self, U):
        xp = self.xp
        C = U @ self.anchors.T
        A = xp.abs(C)
        worst = xp.argmax(A, axis=1)
        ar = xp.arange(U.shape[0])
        sign = xp.where(C[ar, worst] >= 0, 1.0, -1.0)
        return A[ar, worst], self.anchors[worst] * sign[:, None]

    def project(self, Xb):
        xp = self.xp
        shape = Xb.shape
        Xr = Xb.reshape(-1, shape[-1])
        for _ in range(self.rounds):
            U = Xr / xp.linalg.norm(Xr, axis=1, keepdims=True)
            cw, a = self._worst(U)
            viol = cw > self.c
            if not bool(xp.any(viol)):
                break
            Xr = self.snap(Xr, a, viol)
        return Xr.reshape(shape)

    def boundary(self, Xb):
        """(ν, on-boundary mask, signed anchor of the nearest cap) per point."""
        xp = self.xp
        shape = Xb.shape
        U = Xb.reshape(-1, shape[-1])
        U = U / xp.linalg.norm(U, axis=1, keepdims=True)
        cw, a = self._worst(U)
        a = a.reshape(shape)
        return self.normal_to(Xb, a), (cw >= self.c - ACTIVE_TOL).reshape(shape[:-1]), a


class _KeepCap(_Caps):
    """Feasible set {x : ⟨x, a⟩/(‖x‖‖a‖) ≥ c} (every point within δ of the anchor a)."""

    outward = -1.0

    def __init__(self, anchor, c):
        xp = array_namespace(anchor)
        self._setup(xp, c)
        self.a = anchor / xp.linalg.norm(anchor)

    def project(self, Xb):
        xp = self.xp
        U = Xb / xp.linalg.norm(Xb, axis=-1, keepdims=True)
        A = xp.broadcast_to(self.a, Xb.shape)
        return self.snap(Xb, A, (xp.sum(U * A, axis=-1) < self.c))

    def boundary(self, Xb):
        xp = self.xp
        U = Xb / xp.linalg.norm(Xb, axis=-1, keepdims=True)
        A = xp.broadcast_to(self.a, Xb.shape)
        return self.normal_to(Xb, A), xp.sum(U * A, axis=-1) <= self.c + ACTIVE_TOL, A


def _cap_boundary_points(X, c, m, rng, xp):
    """m points on the boundaries {|cos(x, x_i)| = c}, cycling through ±x_i."""
    n, d = X.shape
    Xh = to_numpy(X)
    out = np.empty((m, d))
    for j in range(m):
        i = j % n
        sgn = 1.0 if (j // n) % 2 == 0 else -1.0
        a = sgn * Xh[i] / np.linalg.norm(Xh[i])
        u = rng.standard_normal(d)
        u -= (u @ a) * a
        u /= np.linalg.norm(u)
        out[j] = math.sqrt(d) * (c * a + math.sqrt(1 - c * c) * u)
    return xp.asarray(out)
