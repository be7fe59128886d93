r"""Numeric Hermite coefficients: adaptive quadrature, or mpmath at a chosen precision.

``"quad"``
    Adaptive Gauss–Kronrod quadrature (``scipy.integrate.quad_vec``, all k
    at once) of μ_k = ∫_0^∞ [σ(x) + (−1)^k σ(−x)] h_k(x) φ(x) dx on [0, ∞)
    (the split at 0 makes kinks at 0 harmless; the even/odd split makes the
    coefficients of an exactly odd/even σ exactly zero).  The error bound is
    the quadrature's error estimate (absolute, shared by all k, requested at
    1e-14) plus float rounding — an estimate, not a proof.  Activations
    without closed forms (tanh, sigmoid, softplus, silu, user callables) use
    this path; low-degree Gauss–Hermite is never used.
``"mpmath"``
    ``numeric="mpmath"``: ``mpmath.quad`` at ``dps`` digits on [0, 1, 4, ∞),
    with mpmath's error estimate (needs a SymPy expression for σ).

SciPy, SymPy and mpmath are imported inside the functions that use them.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .expansion import HermiteExpansion, make_expansion
from .polynomials import EPS, INV_SQRT2PI

if TYPE_CHECKING:  # for annotations only
    from .spec import Options, Spec

__all__ = ["quad_second_moment", "mpmath_all", "numeric_expansion"]

# Requested quadrature accuracy: the coefficients are O(1), so an absolute 1e-14 is
# a few float64 ulps; the relative target only matters for large E[σ²].
_QUAD_EPSABS = 1e-14
_QUAD_EPSREL = 1e-13
# Subinterval limits: far more than a smooth σ needs, so that kinks and slowly decaying
# tails reach the requested accuracy instead of stopping at the limit.
_QUAD_VEC_LIMIT = 10000
_QUAD_LIMIT = 2000


def _eval_pair(fn, x: float) -> tuple[float, float]:
    """(σ(x), σ(−x)) as floats, from one call of the array function."""
    s = np.asarray(fn(np.array([x, -x], dtype=np.float64)), dtype=np.float64)
    return float(s[0]), float(s[1])


def _quad_all(fn, K: int):
    """μ_0..μ_K and E[σ²] by one vector-valued adaptive quadrature on [0, ∞).

    Component k integrates [σ(x) + (−1)^k σ(x̄)] h_k(x) φ(x) (x̄ = −x); for even
    k ≥ 2 the constant 2σ(0) is subtracted first (∫_0^∞ h_k φ = 0 there),
    which makes an odd-plus-constant σ give exact zeros.  The last component
    integrates [σ(x)² + σ(−x)²] φ(x).
    """
    from scipy.integrate import quad_vec  # noqa: PLC0415

    with np.errstate(all="ignore"):  # overflow/NaN are detected on the result
        return _quad_all_impl(quad_vec, fn, K)


def _quad_all_impl(quad_vec, fn, K: int):
    sq = np.sqrt(np.arange(K + 2, dtype=np.float64))
    sign = np.where(np.arange(K + 1) % 2 == 0, 1.0, -1.0)
    s0p, _ = _eval_pair(fn, 0.0)
    shift = np.zeros(K + 1)
    if math.isfinite(s0p):
        shift[2::2] = 2.0 * s0p
    seen = np.zeros(K + 2)
    psi = np.empty(K + 1)

    def f(x):
        out = np.zeros(K + 2)
        ph = INV_SQRT2PI * math.exp(-0.5 * x * x)
        if ph == 0.0:
            return out
        sp_, sm = _eval_pair(fn, x)
        psi[0] = ph
        if K >= 1:
            psi[1] = x * ph
        for k in range(1, K):
            psi[k + 1] = (x * psi[k] - sq[k] * psi[k - 1]) / sq[k + 1]
        out[: K + 1] = (sp_ + sign * sm - shift) * psi
        out[K + 1] = (sp_ * sp_ + sm * sm) * ph
        np.maximum(seen, np.abs(out), out=seen)
        return out

    res, err, info = quad_vec(
        f, 0.0, np.inf, epsabs=_QUAD_EPSABS, epsrel=_QUAD_EPSREL, limit=_QUAD_VEC_LIMIT, norm="max", full_output=True
    )
    # status 2 ("rounding error") only means the 1e-14 target is below the
    # attainable accuracy; the returned error estimate still stands.
    if not np.all(np.isfinite(res)) or not math.isfinite(float(err)):
        raise ValueError("σ(g)·h_k(g) is not integrable (NaN/inf met): is E[σ(g)²] finite?")
    err = float(err)
    bounds = np.where(seen[: K + 1] > 0, err, 0.0) + 4 * EPS * np.abs(res[: K + 1])
    e2err = err + 4 * EPS * abs(res[K + 1])
    return res[: K + 1], bounds, float(res[K + 1]), float(e2err)


def quad_second_moment(fn) -> tuple[float, float]:
    """E[σ(g)²] = ∫_0^∞ [σ(x)² + σ(−x)²] φ(x) dx by adaptive quadrature, and its error estimate."""
    from scipy.integrate import quad  # noqa: PLC0415

    def g(x):
        a, b = _eval_pair(fn, x)
        return (a * a + b * b) * INV_SQRT2PI * math.exp(-0.5 * x * x)

    with np.errstate(all="ignore"):
        val, err = quad(g, 0.0, np.inf, epsabs=_QUAD_EPSABS, epsrel=_QUAD_EPSREL, limit=_QUAD_LIMIT)
    if not math.isfinite(val):
        raise ValueError("E[σ(g)²] is not finite")
    return float(val), float(err) + 4 * EPS * abs(val)


def mpmath_all(spec: Spec, K: int, dps: int):
    """μ_k and E[σ²] by mpmath.quad at dps digits (σ from its SymPy expression)."""
    if spec.sym is None:
        raise ValueError(f"numeric='mpmath' needs a SymPy expression for {spec.name!r}; use numeric='quad'")
    import mpmath  # noqa: PLC0415
    import sympy as sp  # noqa: PLC0415

    expr, x = spec.sym()
    f = sp.lambdify(x, expr, modules="mpmath")
    vals, bounds = np.zeros(K + 1), np.zeros(K + 1)
    with mpmath.workdps(dps):

        def he(k, t):
            a, b = mpmath.mpf(1), t
            if k == 0:
                return a
            for j in range(1, k):
                a, b = b, t * b - j * a
            return b

        pts = [0, 1, 4, mpmath.inf]  # bulk of φ, its shoulder (φ(4) ≈ 1e-4), the tail
        for k in range(K + 1):
            s = 1 if k % 2 == 0 else -1
            v, e = mpmath.quad(lambda t: (f(t) + s * f(-t)) * he(k, t) * mpmath.npdf(t), pts, error=True)
            norm = mpmath.sqrt(mpmath.factorial(k))
            vals[k] = float(v / norm)
            bounds[k] = float(e / norm) + float(np.spacing(abs(vals[k])))
        v, e = mpmath.quad(lambda t: (f(t) ** 2 + f(-t) ** 2) * mpmath.npdf(t), pts, error=True)
    return vals, bounds, float(v), float(e) + float(np.spacing(float(v)))


def numeric_expansion(spec: Spec, K: int, opts: Options, exact_prefix: dict | None = None) -> HermiteExpansion:
    """μ_0..μ_K by ``opts.numeric`` ("quad" or "mpmath"); orders in ``exact_prefix`` (k → SymPy
    closed form from :func:`rftheory.theory.hermite.symbolic.symbolic_budget`) replace the numbers."""
    if opts.numeric == "mpmath":
        vals, bounds, e2, e2err = mpmath_all(spec, K, opts.dps)
        method = "mpmath"
    else:
        vals, bounds, e2, e2err = _quad_all(spec.fn, K)
        method = "quad"
    methods = [method] * (K + 1)
    exact = [None] * (K + 1)
    if exact_prefix:
        import sympy as sp  # noqa: PLC0415

        for k, e in exact_prefix.items():
            if k <= K and e is not None:
                exact[k] = e
                v = float(sp.N(e, 30))
                vals[k] = v
                bounds[k] = float(np.spacing(abs(v)))
                methods[k] = "sympy-integrate"
    return make_expansion(spec, vals, methods, exact, bounds, e2, e2err, method)
