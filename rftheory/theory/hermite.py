r"""Hermite expansions of activations: exact where possible, certified numbers elsewhere.

Conventions (DESIGN.md)
-----------------------
* ``He_k`` are the probabilists' Hermite polynomials (He_0 = 1, He_1 = x,
  He_{k+1} = x He_k − k He_{k−1}) and ``h_k = He_k / √(k!)`` the orthonormal
  ones: E[h_j(g) h_k(g)] = δ_jk for g ~ N(0, 1).
* The Hermite coefficients of σ are

      μ_k(σ) = E_{g~N(0,1)}[σ(g) h_k(g)],   σ = Σ_k μ_k h_k  in L²(N(0,1)),

  so Parseval gives Σ_k μ_k² = E[σ(g)²].
* For rows on the √d-sphere (‖x_i‖ = √d) and V with i.i.d. N(0, 1/d)
  entries, the pre-activations (⟨v, x_i⟩, ⟨v, x_j⟩) are standard normal
  with correlation ρ_ij = ⟨x_i, x_j⟩/d, and Mehler's formula
  E[h_k(u) h_l(w)] = δ_kl ρ^k gives the limiting kernel

      K∞ = E_V[Φ Φᵀ]/p = Σ_k μ_k² (X Xᵀ/d)^{∘k}       (∘k: entrywise power),

  exactly for every d (not only as d → ∞).  Truncating at order K leaves an
  entrywise error of at most Σ_{k>K} μ_k² = E[σ²] − Σ_{k≤K} μ_k², because
  |ρ_ij| ≤ 1.

How the numbers are produced (``HermiteExpansion.methods``)
-----------------------------------------------------------
``"closed-form"``
    σ is a finite combination of x^n·B(x) with B ∈ {1, Heaviside H(x),
    erf(c x), exp(−a x²)} (relu = x H, step = H, abs = x(2H − 1),
    leaky_relu = a x + (1 − a) x H, erf, gelu = x/2 + x erf(x/√2)/2,
    polynomials, and any SymPy expression reducing to such terms).  The
    unnormalised moments m_k = E[σ He_k] follow from exact recurrences

        H:           m_0 = 1/2,  m_1 = 1/√(2π),  m_{k+2} = −k m_k (k odd), m_even≥2 = 0
        erf(c x):    m_1 = 2c/√(π(1+2c²)),  m_{k+2} = −k r m_k (k odd), r = 2c²/(1+2c²)
        exp(−a x²):  m_0 = 1/√(1+2a),  m_{k+2} = −(k+1) r m_k (k even), r = 2a/(1+2a)
        x·f:         m_k(x f) = m_{k+1}(f) + k m_{k−1}(f)     (x He_k = He_{k+1} + k He_{k−1})

    (the first three are Gaussian integration by parts, E[f He_k] =
    E[f' He_{k−1}], with H' = δ and erf' a Gaussian).  With ``exact=False``
    they are evaluated in mpmath at 40 and 60 significant digits; the stated
    error bound is the difference of the two plus the float64 rounding.
    E.g. ReLU: μ_0 = 1/√(2π), μ_1 = 1/2, μ_k = He_{k−2}(0)/√(2π k!) for
    k ≥ 2 (so μ_2 = 1/(2√π) and μ_odd≥3 = 0).
``"sympy-exact"``
    The same recurrences in SymPy (``exact=True``); ``exact[k]`` holds the
    closed form and the error bound is the float64 rounding of its value.
``"sympy-integrate"``
    ``exact=True`` for a SymPy expression that is not of the form above:
    ``sympy.integrate`` of σ He_k e^{−x²/2}/√(2π k!) runs in a separate
    process under a wall-clock budget (``symbolic_timeout``); the orders it
    did not finish in time fall back to the numeric path.  Never hangs.
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
``"sum-of-parts[...]"``
    A linear combination Σ c_j σ_j with a part lacking a closed form is
    computed as Σ c_j μ_k(σ_j) (bound Σ|c_j| bound_j); E[σ²] of the
    combination is integrated directly (cross terms).  Combinations of
    closed-form parts are merged into one closed form instead.

Caching: results live in memory and on disk (JSON, one file per activation
and option set) under ``$RFTHEORY_CACHE_DIR`` or ``$XDG_CACHE_HOME/rftheory``
or ``~/.cache/rftheory`` (sub-folder ``hermite``); set RFTHEORY_CACHE_DIR to
``off`` to disable the disk cache.  An unwritable folder silently falls back
to memory only.  Only built-in activations, their combinations, "step" and
SymPy expressions are cached on disk (a user's own Activation is cached in
memory only: its callables cannot be keyed).

Parity and sign ambiguity (:func:`parity_report`): μ_0 and μ_1 are the
coordinates of σ on span{1, z}; their contribution to the features lies in
col([1, V]).  What decides the sign symmetry is which *nonlinear* parities
are present: even k ≥ 2 and odd k ≥ 3.  See :class:`ParityReport`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..models.activations import LEAKY_SLOPE, Activation, get_activation
from ..backend import array_namespace
from ..validation import check_count

__all__ = [
    "HermiteExpansion",
    "ParityReport",
    "KernelLimit",
    "hermite_coefficients",
    "parity_report",
    "kernel_limit",
    "orthonormal_hermite",
    "cache_dir",
    "clear_cache",
    "SIGN_SYMMETRIC",
    "AMBIGUOUS_AFFINE",
    "IDENTIFIABLE",
    "DEGENERATE_AFFINE",
]

_CACHE_VERSION = 1
_EPS = float(np.finfo(np.float64).eps)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_QUAD_EPSABS = 1e-14
_QUAD_EPSREL = 1e-13
_MP_DPS_LO, _MP_DPS_HI = 40, 60

SIGN_SYMMETRIC = "exact per-sample sign symmetry"
AMBIGUOUS_AFFINE = "ambiguous modulo col([1, V])"
IDENTIFIABLE = "identifiable"
DEGENERATE_AFFINE = "degenerate (affine σ)"


# =============================================================================
# Result objects
# =============================================================================


def _readonly(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class HermiteExpansion:
    """Hermite coefficients μ_0..μ_K of an activation σ, with provenance.

    Attributes
    ----------
    activation : str
        Display name of σ.
    coefficients : ndarray, shape (K+1,)
        μ_k = E[σ(g) h_k(g)], h_k = He_k/√(k!), float64, read-only.
    methods : tuple of str
        How each μ_k was produced ("closed-form", "sympy-exact",
        "sympy-integrate", "quad", "mpmath", "sum-of-parts[...]"; see the
        module docstring).
    exact : tuple
        Per k a SymPy expression equal to μ_k, or None where no closed form
        was computed (always None with ``exact=False``).
    error_bounds : ndarray, shape (K+1,)
        Stated absolute error bound of each float μ_k (an estimate for the
        quadrature paths, see the module docstring).
    second_moment : float
        E[σ(g)²] = Σ_k μ_k² (all k), computed independently of the μ_k.
    second_moment_error : float
        Stated absolute error of ``second_moment``.
    second_moment_method : str
    second_moment_exact : sympy expression or None
    """

    activation: str
    coefficients: np.ndarray
    methods: tuple
    exact: tuple
    error_bounds: np.ndarray
    second_moment: float
    second_moment_error: float
    second_moment_method: str
    second_moment_exact: object = None

    @property
    def order(self) -> int:
        """K: the highest order held."""
        return len(self.coefficients) - 1

    @property
    def partial_sum(self) -> float:
        """Σ_{k≤K} μ_k²."""
        c = self.coefficients
        return float(np.dot(c, c))

    @property
    def truncation_error(self) -> float:
        """E[σ²] − Σ_{k≤K} μ_k² = Σ_{k>K} μ_k² (≥ 0 up to ``truncation_error_bound``).

        This bounds the entrywise error of the order-K kernel on the sphere.
        """
        return float(self.second_moment - self.partial_sum)

    @property
    def truncation_error_bound(self) -> float:
        """Error bound of :attr:`truncation_error` from the stated numeric errors.

        |Ê − E| + Σ_k (2|μ̂_k| b_k + b_k²), b_k = ``error_bounds[k]``.
        """
        c, b = np.abs(self.coefficients), self.error_bounds
        return float(self.second_moment_error + np.sum(2 * c * b + b * b) + 4 * _EPS * abs(self.second_moment))

    def truncate(self, order: int) -> "HermiteExpansion":
        """The same expansion restricted to μ_0..μ_order (order ≤ self.order)."""
        order = _check_order(order)
        if order > self.order:
            raise ValueError(f"expansion holds order {self.order} < requested {order}")
        if order == self.order:
            return self
        return HermiteExpansion(
            activation=self.activation,
            coefficients=self.coefficients[: order + 1],
            methods=self.methods[: order + 1],
            exact=self.exact[: order + 1],
            error_bounds=self.error_bounds[: order + 1],
            second_moment=self.second_moment,
            second_moment_error=self.second_moment_error,
            second_moment_method=self.second_moment_method,
            second_moment_exact=self.second_moment_exact,
        )

    def kernel_coefficients(self) -> np.ndarray:
        """μ_k², the weights of (XXᵀ/d)^{∘k} in the limiting kernel."""
        return self.coefficients**2


@dataclass(frozen=True)
class ParityReport:
    """Which nonlinear Hermite parities σ has, and the sign-ambiguity prediction.

    ``even_nonzero``: the even k ≥ 2 with |μ_k| > tol + error_bound_k;
    ``odd_nonzero``: the odd k ≥ 3 likewise (up to ``order``).  μ_0 and μ_1
    are reported separately: their part of σ, μ_0 + μ_1 z, puts the features'
    component in col([1, V]).  ``prediction`` is one of

    * ``SIGN_SYMMETRIC`` — "exact per-sample sign symmetry": σ is purely even
      (no odd k ≥ 1, e.g. abs) or purely odd (no even k, μ_0 = 0, e.g. tanh,
      erf): σ(−z) = ±σ(z), so φ(−x) = ±φ(x) and flipping any sample leaves
      span{φ(x_i)} unchanged.
    * ``AMBIGUOUS_AFFINE`` — "ambiguous modulo col([1, V])": only one
      nonlinear parity, but the other parity's affine coefficient (μ_1 for
      an even nonlinear part, μ_0 for an odd one) is non-zero, so
      σ(−z) = ±σ(z) + (a + b z) and φ(−x) = ±φ(x) + (a·1 + b·Vx) ∈
      ±φ(x) + col([1, V]).  E.g. relu (relu(z) − relu(−z) = z), leaky_relu
      (even part (1−a)/2·|z|), gelu, silu, softplus, and sigmoid / step
      (σ(−z) = 2μ_0 − σ(z): the constant lies in col([1, V]) too).  The
      sign is nearly invisible when p ≫ d.
    * ``IDENTIFIABLE`` — some even k ≥ 2 and some odd k ≥ 3 (relu + tanh).
    * ``DEGENERATE_AFFINE`` — no nonlinear coefficient at all: σ is affine
      and every feature lies in col([1, V]).

    All statements are about orders ≤ ``order`` and the tolerance ``tol``.
    """

    activation: str
    order: int
    tol: float
    even_nonzero: tuple
    odd_nonzero: tuple
    mu0_nonzero: bool
    mu1_nonzero: bool
    prediction: str
    explanation: str

    @property
    def has_even(self) -> bool:
        return len(self.even_nonzero) > 0

    @property
    def has_odd(self) -> bool:
        return len(self.odd_nonzero) > 0


class KernelLimit(NamedTuple):
    """``(kernel, error_bound)``: K∞ truncated at order K, and an entrywise bound
    on |K∞ − kernel| (truncation plus stated coefficient errors)."""

    kernel: object
    error_bound: float


# =============================================================================
# Number back-ends for the closed forms: mpmath (fast, high precision) or SymPy
# =============================================================================


class _MpOps:
    """Arithmetic on an isolated mpmath context (never touches mpmath.mp)."""

    exact = False

    def __init__(self, dps: int):
        from mpmath.ctx_mp import MPContext  # noqa: PLC0415

        self.ctx = MPContext()
        self.ctx.dps = dps
        self.zero = self.ctx.mpf(0)

    def int(self, n):
        return self.ctx.mpf(n)

    def frac(self, fr: Fraction):
        return self.ctx.mpf(fr.numerator) / fr.denominator

    def sqrt(self, v):
        return self.ctx.sqrt(v)

    @property
    def pi(self):
        return self.ctx.pi

    def asin(self, v):
        return self.ctx.asin(v)

    def from_sympy(self, e):
        return self.ctx.mpf(str(e.evalf(self.ctx.dps + 10)))

    def sqrt_factorial(self, k: int):
        return self.ctx.sqrt(self.ctx.factorial(k))

    def to_float(self, v) -> float:
        return float(v)


class _SymOps:
    """Exact arithmetic in SymPy."""

    exact = True

    def __init__(self):
        import sympy as sp  # noqa: PLC0415

        self.sp = sp
        self.zero = sp.Integer(0)

    def int(self, n):
        return self.sp.Integer(n)

    def frac(self, fr: Fraction):
        return self.sp.Rational(fr.numerator, fr.denominator)

    def sqrt(self, v):
        return self.sp.sqrt(v)

    @property
    def pi(self):
        return self.sp.pi

    def asin(self, v):
        return self.sp.asin(v)

    def from_sympy(self, e):
        return e

    def sqrt_factorial(self, k: int):
        return self.sp.sqrt(self.sp.factorial(k))

    def to_float(self, v) -> float:
        return float(self.sp.N(v, 30))


# Terms: dict {(n, base): coefficient}, meaning Σ coefficient · x^n · base(x),
# base ∈ ("one",), ("H",), ("erf", c), ("gauss", a).
_ONE, _H = ("one",), ("H",)


def _base_moments(base, N: int, ops) -> list:
    """m_k = E[B(g) He_k(g)] for k = 0..N (unnormalised), exact recurrences."""
    z = ops.zero
    m = [z] * (N + 1)
    kind = base[0]
    if kind == "one":
        m[0] = ops.int(1)
    elif kind == "H":
        m[0] = ops.frac(Fraction(1, 2))
        if N >= 1:
            m[1] = 1 / ops.sqrt(2 * ops.pi)
        for k in range(1, N - 1, 2):
            m[k + 2] = -k * m[k]
    elif kind == "erf":
        c = base[1]
        r = 2 * c * c / (1 + 2 * c * c)
        if N >= 1:
            m[1] = 2 * c / ops.sqrt(ops.pi * (1 + 2 * c * c))
        for k in range(1, N - 1, 2):
            m[k + 2] = -k * r * m[k]
    elif kind == "gauss":
        b = 2 * base[1]
        r = b / (1 + b)
        m[0] = 1 / ops.sqrt(1 + b)
        for k in range(0, N - 1, 2):
            m[k + 2] = -(k + 1) * r * m[k]
    else:  # pragma: no cover - internal
        raise AssertionError(base)
    return m


def _times_x(m: list) -> list:
    """Moments of x·f from those of f: m_k(x f) = m_{k+1}(f) + k m_{k−1}(f)."""
    return [m[1]] + [m[k + 1] + k * m[k - 1] for k in range(1, len(m) - 1)]


def _term_moments(n: int, base, K: int, ops, memo: dict) -> list:
    key = (n, base, K)
    if key not in memo:
        m = _base_moments(base, K + n, ops)
        for _ in range(n):
            m = _times_x(m)
        memo[key] = m
    return memo[key]


def _terms_moments(terms: dict, K: int, ops) -> list:
    """E[σ He_k], k = 0..K, for σ given as terms."""
    total = [ops.zero] * (K + 1)
    memo: dict = {}
    for (n, base), c in terms.items():
        m = _term_moments(n, base, K, ops, memo)
        total = [t + c * v for t, v in zip(total, m)]
    return total


def _moment(N: int, base, ops):
    """E[g^N B(g)]."""
    return _term_moments(N, base, 0, ops, {})[0]


def _pair_moment(N: int, b1, b2, ops):
    """E[g^N B1(g) B2(g)] in closed form, or None when not covered."""
    k1, k2 = b1[0], b2[0]
    if k1 == "one":
        return _moment(N, b2, ops)
    if k2 == "one":
        return _moment(N, b1, ops)
    kinds = {k1, k2}
    if k1 == k2 == "H":
        return _moment(N, _H, ops)
    if k1 == k2 == "gauss":
        return _moment(N, ("gauss", b1[1] + b2[1]), ops)
    half = ops.frac(Fraction(1, 2))
    if kinds == {"H", "gauss"}:
        # ∫_0^∞ x^N e^{−a x²} φ(x) dx = (1+2a)^{−(N+1)/2} E[g^N; g > 0]  (y = x√(1+2a))
        g = b1 if k1 == "gauss" else b2
        s = ops.sqrt(1 + 2 * g[1])
        return _moment(N, _H, ops) / s ** (N + 1)
    if kinds == {"H", "erf"}:
        e = b1 if k1 == "erf" else b2
        if N % 2 == 1:  # x^N erf(cx) is even
            return half * _moment(N, e, ops)
        if N == 0:  # E[erf(cg); g > 0] = asin(√2 c/√(1+2c²))/π (orthant probability)
            c = e[1]
            return ops.asin(ops.sqrt(ops.int(2)) * c / ops.sqrt(1 + 2 * c * c)) / ops.pi
        return None
    if kinds == {"erf", "gauss"}:
        return ops.zero if N % 2 == 0 else None  # odd integrand
    if k1 == k2 == "erf":
        if N % 2 == 1:
            return ops.zero
        a, c = b1[1], b2[1]
        two_over_pi = 2 / ops.pi
        if N == 0:  # E[erf(a g) erf(c g)] = (2/π) asin(2ac / √((1+2a²)(1+2c²)))
            return two_over_pi * ops.asin(2 * a * c / ops.sqrt((1 + 2 * a * a) * (1 + 2 * c * c)))
        if N == 2 and (a == c or a == -c):
            # E[g² erf(cg)²] = E[f] + E[f''] (Stein twice), f = erf(cg)²
            s = 1 if a == c else -1
            c2 = c * c
            val = two_over_pi * ops.asin(2 * c2 / (1 + 2 * c2)) + 8 * c2 / (
                ops.pi * (1 + 2 * c2) * ops.sqrt(1 + 4 * c2)
            )
            return s * val
        return None
    return None


def _terms_second_moment(terms: dict, ops):
    """E[σ(g)²] for σ given as terms, or None when a cross term is not covered."""
    items = list(terms.items())
    total = ops.zero
    for i, ((n1, b1), c1) in enumerate(items):
        for j in range(i, len(items)):
            (n2, b2), c2 = items[j]
            v = _pair_moment(n1 + n2, b1, b2, ops)
            if v is None:
                return None
            total = total + (1 if i == j else 2) * c1 * c2 * v
    return total


# --- built-in closed forms (no SymPy needed) ---------------------------------


def _builtin_terms(name: str) -> Callable | None:
    half = Fraction(1, 2)
    slope = Fraction(repr(LEAKY_SLOPE))
    table = {
        "relu": lambda o: {(1, _H): o.int(1)},
        "step": lambda o: {(0, _H): o.int(1)},
        "abs": lambda o: {(1, _H): o.int(2), (1, _ONE): o.int(-1)},
        "leaky_relu": lambda o: {(1, _ONE): o.frac(slope), (1, _H): o.frac(1 - slope)},
        "erf": lambda o: {(0, ("erf", o.int(1))): o.int(1)},
        "gelu": lambda o: {(1, _ONE): o.frac(half), (1, ("erf", 1 / o.sqrt(o.int(2)))): o.frac(half)},
    }
    return table.get(name)


# --- recognising SymPy expressions as terms ----------------------------------


def _terms_mul(t1: dict, t2: dict) -> dict | None:
    out: dict = {}
    for (n1, b1), c1 in t1.items():
        for (n2, b2), c2 in t2.items():
            if b1 == _ONE:
                b = b2
            elif b2 == _ONE:
                b = b1
            elif b1 == _H and b2 == _H:
                b = _H
            elif b1[0] == "gauss" and b2[0] == "gauss":
                b = ("gauss", b1[1] + b2[1])
            else:
                return None
            key = (n1 + n2, b)
            out[key] = out.get(key, 0) + c1 * c2
    return out


def _terms_add(t1: dict, t2: dict, scale=1) -> dict:
    out = dict(t1)
    for k, v in t2.items():
        out[k] = out.get(k, 0) + scale * v
    return out


def _recognize(expr, x) -> dict | None:
    """Write a SymPy expression in x as Σ c x^n B(x), B ∈ {1, H, erf(cx), e^{−ax²}}.

    Returns None when the expression is not of that form.
    """
    import sympy as sp  # noqa: PLC0415

    def const(v):
        return v.is_real is not False and not v.has(sp.I)

    def linear_coeff(arg):
        """c if arg == c·x with c a non-zero real constant, else None."""
        c = sp.cancel(sp.expand(arg) / x)
        if c.has(x) or not c.is_number or not const(c) or c == 0:
            return None
        return c

    def rec(e):
        if not e.has(x):
            return {(0, _ONE): e} if (e.is_number and const(e)) else None
        if e == x:
            return {(1, _ONE): sp.Integer(1)}
        if isinstance(e, sp.Add):
            acc: dict = {}
            for a in e.args:
                t = rec(a)
                if t is None:
                    return None
                acc = _terms_add(acc, t)
            return acc
        if isinstance(e, sp.Mul):
            acc = {(0, _ONE): sp.Integer(1)}
            for a in e.args:
                t = rec(a)
                if t is None:
                    return None
                acc = _terms_mul(acc, t)
                if acc is None:
                    return None
            return acc
        if isinstance(e, sp.Pow):
            base, ex = e.args
            if ex.is_Integer and ex >= 0:
                t = rec(base)
                acc = {(0, _ONE): sp.Integer(1)}
                for _ in range(int(ex)):
                    if t is None or acc is None:
                        return None
                    acc = _terms_mul(acc, t)
                return acc
            if base == sp.E:
                return rec(sp.exp(ex))
            return None
        if isinstance(e, sp.exp):
            arg = sp.expand(e.args[0])
            try:
                poly = sp.Poly(arg, x)
            except sp.PolynomialError:
                return None
            if poly.degree() != 2 or any(m not in ((2,), (0,)) for m in poly.monoms()):
                return None
            a = -poly.coeff_monomial(x**2)
            c0 = poly.coeff_monomial(1)
            if not (a.is_number and a.is_positive):
                return None
            return {(0, ("gauss", a)): sp.exp(c0)}
        if isinstance(e, sp.Heaviside):
            c = linear_coeff(e.args[0])
            if c is None:
                return None
            return {(0, _H): sp.Integer(1)} if c > 0 else {(0, _ONE): sp.Integer(1), (0, _H): sp.Integer(-1)}
        if isinstance(e, sp.sign):
            c = linear_coeff(e.args[0])
            if c is None:
                return None
            s = 1 if c > 0 else -1
            return {(0, _H): sp.Integer(2 * s), (0, _ONE): sp.Integer(-s)}
        if isinstance(e, sp.Abs):
            c = linear_coeff(e.args[0])
            if c is None:
                return None
            ac = sp.Abs(c)
            return {(1, _H): 2 * ac, (1, _ONE): -ac}
        if isinstance(e, sp.erf):
            c = linear_coeff(e.args[0])
            return None if c is None else {(0, ("erf", c)): sp.Integer(1)}
        if isinstance(e, sp.erfc):
            c = linear_coeff(e.args[0])
            return None if c is None else {(0, _ONE): sp.Integer(1), (0, ("erf", c)): sp.Integer(-1)}
        if isinstance(e, (sp.Max, sp.Min)) and len(e.args) == 2 and 0 in e.args:
            other = e.args[0] if e.args[1] == 0 else e.args[1]
            c = linear_coeff(other)
            if c is None:
                return None
            # Max(cx, 0) = c x H(cx); Min(cx, 0) = c x − Max(cx, 0)
            hpart = {(1, _H): c} if c > 0 else {(1, _ONE): c, (1, _H): -c}
            if isinstance(e, sp.Max):
                return hpart
            return _terms_add({(1, _ONE): c}, hpart, scale=-1)
        if isinstance(e, sp.Piecewise):
            pieces = e.args
            if len(pieces) != 2 or pieces[1].cond != sp.true:
                return None
            (a_expr, cond), (b_expr, _) = pieces
            if not isinstance(cond, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)):
                return None
            lhs, rhs = cond.lhs, cond.rhs
            if lhs == x and rhs == 0:
                neg_first = isinstance(cond, (sp.StrictLessThan, sp.LessThan))
            elif rhs == x and lhs == 0:
                neg_first = isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan))
            else:
                return None
            ta, tb = rec(a_expr), rec(b_expr)
            if ta is None or tb is None:
                return None
            neg, pos = (ta, tb) if neg_first else (tb, ta)
            # σ = neg + (pos − neg)·H
            diff = _terms_add(pos, neg, scale=-1)
            hd = _terms_mul(diff, {(0, _H): sp.Integer(1)})
            return None if hd is None else _terms_add(neg, hd)
        return None

    try:
        terms = rec(expr)
    except (TypeError, ValueError, AttributeError):  # e.g. comparisons of symbolic constants
        return None
    if terms is None:
        return None
    out = {}
    for k, v in terms.items():
        v = sp.nsimplify(v, rational=True) if isinstance(v, sp.Float) else sp.sympify(v)
        if v != 0:
            out[k] = v
    return out


def _sympy_terms_factory(terms: dict) -> Callable:
    """Turn SymPy-valued terms into a factory for either number back-end."""

    def factory(ops):
        out = {}
        for (n, base), c in terms.items():
            b = base if len(base) == 1 else (base[0], ops.from_sympy(base[1]))
            out[(n, b)] = ops.from_sympy(c)
        return out

    return factory


# =============================================================================
# Resolving an activation specification
# =============================================================================


@dataclass(frozen=True, eq=False)
class _Spec:
    name: str
    key: object  # hashable, disk-cacheable key, or None (memory only)
    mem_key: object  # hashable memory key, or None (no caching)
    kind: str  # "terms" | "numeric" | "combo"
    fn: Callable  # NumPy σ
    terms: Callable | None = None  # factory(ops) -> terms
    sym: Callable | None = None  # () -> (sympy expr, symbol), lazily
    try_integrate: bool = False
    parts: tuple = field(default=())


_BUILTIN_NAMES = {"relu", "tanh", "leaky_relu", "abs", "erf", "sigmoid", "softplus", "gelu", "silu", "relu+tanh"}
_TERM_RE = re.compile(r"^\s*(?:([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _step_fn(z):
    xp = array_namespace(z)
    return xp.where(z > 0, 1.0, xp.where(z < 0, 0.0, 0.5))


def _sym_step():
    import sympy as sp  # noqa: PLC0415

    x = sp.Symbol("x", real=True)
    return sp.Heaviside(x, sp.Rational(1, 2)), x


_STEP_SPEC = _Spec(
    name="step",
    key=("step",),
    mem_key=("step",),
    kind="terms",
    fn=_step_fn,
    terms=_builtin_terms("step"),
    sym=_sym_step,
)


def _sym_from_activation(act: Activation):
    if act.sympy_expr is None:
        return None

    def sym():
        import sympy as sp  # noqa: PLC0415

        x = sp.Symbol("x", real=True)
        return act.sympy_expr(x), x

    return sym


def _is_builtin(act: Activation) -> bool:
    name = act.name.lower()
    if name not in _BUILTIN_NAMES or getattr(act.fn, "__module__", None) != "rftheory.models.activations":
        return False
    try:
        return get_activation(name) is act
    except ValueError:
        return False


def _safe_hash(obj):
    try:
        hash(obj)
        return obj
    except TypeError:
        return None


def _from_activation(act: Activation) -> _Spec:
    if act.is_combination:
        parts = tuple((float(c), _from_activation(a)) for c, a in act.parts)
        return _combo_spec(act.name, parts, fn=act.fn)
    if _is_builtin(act):
        name = act.name.lower()
        key = ("act", name, repr(LEAKY_SLOPE)) if name == "leaky_relu" else ("act", name)
        factory = _builtin_terms(name)
        kind = "terms" if factory is not None else "numeric"
        return _Spec(name, key, key, kind, act.fn, terms=factory, sym=_sym_from_activation(act))
    mem_key = _safe_hash(("obj", act))
    sym = _sym_from_activation(act)
    if act.sympy_expr is not None and act.closed_form_hermite:
        expr, x = sym()
        terms = _recognize(expr, x)
        if terms is not None:
            return _Spec(act.name, None, mem_key, "terms", act.fn, terms=_sympy_terms_factory(terms), sym=sym)
        return _Spec(act.name, None, mem_key, "numeric", act.fn, sym=sym, try_integrate=True)
    return _Spec(act.name, None, mem_key, "numeric", act.fn, sym=sym)


def _combo_spec(name: str, parts: tuple, fn: Callable | None = None) -> _Spec:
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    if fn is None:
        fns = [(c, p.fn) for c, p in parts]

        def fn(z):
            return sum(c * f(z) for c, f in fns)

    keys = [p.key for _, p in parts]
    key = ("combo", tuple((repr(c), k) for (c, _), k in zip(parts, keys))) if None not in keys else None
    mkeys = [p.mem_key for _, p in parts]
    mem_key = ("combo", tuple((repr(c), k) for (c, _), k in zip(parts, mkeys))) if None not in mkeys else None
    if all(p.kind == "terms" for _, p in parts):
        factories = [(Fraction(repr(c)), p.terms) for c, p in parts]

        def merged(ops):
            acc: dict = {}
            for c, fac in factories:
                acc = _terms_add(acc, fac(ops), scale=ops.frac(c))
            return acc

        return _Spec(name, key, mem_key, "terms", fn, terms=merged)
    return _Spec(name, key, mem_key, "combo", fn, parts=parts)


def _parse_with_step(spec: str) -> tuple | None:
    parts = []
    for term in spec.split("+"):
        m = _TERM_RE.match(term)
        if m is None:
            return None
        coef = float(m.group(1)) if m.group(1) else 1.0
        name = m.group(2).lower()
        if name == "step":
            parts.append((coef, _STEP_SPEC))
            continue
        try:
            act = get_activation(name)
        except ValueError:
            return None
        if act.is_combination:
            return None
        parts.append((coef, _from_activation(act)))
    return tuple(parts)


def _is_sympy(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "sympy"


def _from_sympy(expr) -> _Spec:
    import sympy as sp  # noqa: PLC0415

    expr = sp.sympify(expr)
    syms = expr.free_symbols
    if len(syms) > 1:
        raise ValueError(f"activation expression {expr} must have at most one free symbol, has {sorted(map(str, syms))}")
    x = sp.Symbol("x", real=True)
    e = expr.xreplace({s: x for s in syms})
    if e.has(sp.I) or e.has(sp.zoo, sp.oo, sp.nan):
        raise ValueError(f"activation expression {expr} is not a finite real function")
    name = str(expr)
    key = ("sympy", sp.srepr(e))
    raw = sp.lambdify(x, e, modules=["numpy", "scipy"])

    def fn(z):
        z = np.asarray(z, dtype=np.float64)
        return np.broadcast_to(np.asarray(raw(z), dtype=np.float64), z.shape)

    def sym():
        return e, x

    terms = _recognize(e, x)
    if terms is not None:
        return _Spec(name, key, key, "terms", fn, terms=_sympy_terms_factory(terms), sym=sym)
    return _Spec(name, key, key, "numeric", fn, sym=sym, try_integrate=True)


def _resolve(activation) -> _Spec:
    if isinstance(activation, _Spec):
        return activation
    if isinstance(activation, str):
        s = activation.strip()
        if s.lower() == "step":
            return _STEP_SPEC
        try:
            act = get_activation(s)
        except ValueError as exc:
            parts = _parse_with_step(s)
            if parts is None:
                raise ValueError(f"{exc}; rftheory.theory.hermite also accepts 'step' (Heaviside) and SymPy expressions") from None
            return _combo_spec(s, parts)
        return _from_activation(act)
    if isinstance(activation, Activation):
        return _from_activation(activation)
    if _is_sympy(activation):
        return _from_sympy(activation)
    raise TypeError(
        "activation must be a name, a combination string, an rftheory.Activation or a SymPy "
        f"expression, got {type(activation).__name__}"
    )


# =============================================================================
# Computation paths
# =============================================================================


@dataclass(frozen=True)
class _Opts:
    exact: bool
    numeric: str
    dps: int | None
    force_numeric: bool
    symbolic_timeout: float | None

    def key(self):
        return (self.exact, self.numeric, self.dps, self.force_numeric, self.symbolic_timeout)


def _closed_form(spec: _Spec, K: int, opts: _Opts) -> HermiteExpansion:
    if opts.exact:
        ops = _SymOps()
        sp = ops.sp
        terms = spec.terms(ops)
        m = _terms_moments(terms, K, ops)
        exact = []
        for k in range(K + 1):
            exact.append(m[k] / ops.sqrt_factorial(k))
        vals = np.array([ops.to_float(v) for v in exact])
        bounds = np.spacing(np.abs(vals))
        methods = ("sympy-exact",) * (K + 1)
        e2 = _terms_second_moment(terms, ops)
        if e2 is not None:
            e2 = sp.simplify(e2)
            return _expansion(spec, vals, methods, tuple(exact), bounds, ops.to_float(e2), float(np.spacing(ops.to_float(e2))), "sympy-exact", e2)
        e2v, e2err = _quad_second_moment(spec.fn)
        return _expansion(spec, vals, methods, tuple(exact), bounds, e2v, e2err, "quad")
    lo, hi = _MpOps(_MP_DPS_LO), _MpOps(_MP_DPS_HI)
    res = []
    for ops in (lo, hi):
        terms = spec.terms(ops)
        m = _terms_moments(terms, K, ops)
        mu = [m[k] / ops.sqrt_factorial(k) for k in range(K + 1)]
        res.append((mu, _terms_second_moment(terms, ops)))
    (mu_lo, e2_lo), (mu_hi, e2_hi) = res
    vals = np.array([float(v) for v in mu_hi])
    bounds = np.array([float(abs(a - b)) for a, b in zip(mu_lo, mu_hi)]) + np.spacing(np.abs(vals))
    methods = ("closed-form",) * (K + 1)
    if e2_hi is not None:
        e2 = float(e2_hi)
        return _expansion(spec, vals, methods, (None,) * (K + 1), bounds, e2, float(abs(e2_lo - e2_hi)) + float(np.spacing(e2)), "closed-form")
    e2v, e2err = _quad_second_moment(spec.fn)
    return _expansion(spec, vals, methods, (None,) * (K + 1), bounds, e2v, e2err, "quad")


def _expansion(spec, vals, methods, exact, bounds, e2, e2err, e2method, e2exact=None) -> HermiteExpansion:
    vals = np.asarray(vals, dtype=np.float64)
    bounds = np.where(vals == 0, np.where(np.asarray(bounds) < 1e-300, 0.0, bounds), bounds)
    return HermiteExpansion(
        activation=spec.name,
        coefficients=_readonly(vals),
        methods=tuple(methods),
        exact=tuple(exact),
        error_bounds=_readonly(bounds),
        second_moment=float(e2),
        second_moment_error=float(e2err),
        second_moment_method=e2method,
        second_moment_exact=e2exact,
    )


def _eval_pair(fn, x: float) -> tuple[float, float]:
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
        ph = _INV_SQRT2PI * math.exp(-0.5 * x * x)
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
        f, 0.0, np.inf, epsabs=_QUAD_EPSABS, epsrel=_QUAD_EPSREL, limit=10000, norm="max", full_output=True
    )
    # status 2 ("rounding error") only means the 1e-14 target is below the
    # attainable accuracy; the returned error estimate still stands.
    if not np.all(np.isfinite(res)) or not math.isfinite(float(err)):
        raise ValueError("σ(g)·h_k(g) is not integrable (NaN/inf met): is E[σ(g)²] finite?")
    err = float(err)
    bounds = np.where(seen[: K + 1] > 0, err, 0.0) + 4 * _EPS * np.abs(res[: K + 1])
    e2err = err + 4 * _EPS * abs(res[K + 1])
    return res[: K + 1], bounds, float(res[K + 1]), float(e2err)


def _quad_second_moment(fn) -> tuple[float, float]:
    from scipy.integrate import quad  # noqa: PLC0415

    def g(x):
        a, b = _eval_pair(fn, x)
        return (a * a + b * b) * _INV_SQRT2PI * math.exp(-0.5 * x * x)

    with np.errstate(all="ignore"):
        val, err = quad(g, 0.0, np.inf, epsabs=_QUAD_EPSABS, epsrel=_QUAD_EPSREL, limit=2000)
    if not math.isfinite(val):
        raise ValueError("E[σ(g)²] is not finite")
    return float(val), float(err) + 4 * _EPS * abs(val)


def _mpmath_all(spec: _Spec, K: int, dps: int):
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

        pts = [0, 1, 4, mpmath.inf]
        for k in range(K + 1):
            s = 1 if k % 2 == 0 else -1
            v, e = mpmath.quad(lambda t: (f(t) + s * f(-t)) * he(k, t) * mpmath.npdf(t), pts, error=True)
            norm = mpmath.sqrt(mpmath.factorial(k))
            vals[k] = float(v / norm)
            bounds[k] = float(e / norm) + float(np.spacing(abs(vals[k])))
        v, e = mpmath.quad(lambda t: (f(t) ** 2 + f(-t) ** 2) * mpmath.npdf(t), pts, error=True)
    return vals, bounds, float(v), float(e) + float(np.spacing(float(v)))


def _numeric(spec: _Spec, K: int, opts: _Opts, exact_prefix: dict | None = None) -> HermiteExpansion:
    if opts.numeric == "mpmath":
        vals, bounds, e2, e2err = _mpmath_all(spec, K, opts.dps)
        method = "mpmath"
    else:
        vals, bounds, e2, e2err = _quad_all(spec.fn, K)
        method = "quad"
    methods = [method] * (K + 1)
    exact = [None] * (K + 1)
    if exact_prefix:
        for k, e in exact_prefix.items():
            if k <= K and e is not None:
                exact[k] = e
                v = _SymOps().to_float(e)
                vals[k] = v
                bounds[k] = float(np.spacing(abs(v)))
                methods[k] = "sympy-integrate"
    return _expansion(spec, vals, methods, exact, bounds, e2, e2err, method)


# --- budgeted sympy.integrate in a worker process ----------------------------


def _integrate_worker(conn, srepr_expr: str, K: int) -> None:  # pragma: no cover - runs in a child
    import sympy as sp  # noqa: PLC0415

    x = sp.Symbol("x", real=True)
    expr = sp.sympify(srepr_expr)
    for k in range(K + 1):
        try:
            integrand = sp.expand(expr * sp.hermite_prob(k, x)) * sp.exp(-(x**2) / 2)
            r = sp.integrate(integrand, (x, -sp.oo, sp.oo))
            if r.has(sp.Integral) or r.has(sp.nan, sp.oo, sp.zoo, -sp.oo):
                conn.send((k, None))
                continue
            r = sp.simplify(r.rewrite(sp.erf) / sp.sqrt(2 * sp.pi * sp.factorial(k)))
            conn.send((k, sp.srepr(r) if r.is_real is not False and r.is_number else None))
        except Exception:  # noqa: BLE001 - any failure means "no closed form"
            conn.send((k, None))
    conn.close()


def _symbolic_budget(spec: _Spec, K: int, timeout: float) -> dict:
    """{k: sympy expr} for the orders sympy.integrate finished within ``timeout`` s."""
    import multiprocessing as mp  # noqa: PLC0415

    import sympy as sp  # noqa: PLC0415

    if timeout <= 0 or spec.sym is None:
        return {}
    expr, x = spec.sym()
    expr = expr.xreplace({x: sp.Symbol("x", real=True)})
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_integrate_worker, args=(child, sp.srepr(expr), K), daemon=True)
    out: dict = {}
    deadline = time.monotonic() + timeout
    try:
        proc.start()
        child.close()
        while len(out) < K + 1:
            left = deadline - time.monotonic()
            if left <= 0 or not parent.poll(left):
                break
            try:
                k, s = parent.recv()
            except EOFError:
                break
            out[k] = sp.sympify(s) if s is not None else None
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
            if proc.is_alive():  # pragma: no cover
                proc.kill()
                proc.join(1.0)
        parent.close()
    return out


def _sum_of_parts(spec: _Spec, K: int, opts: _Opts) -> HermiteExpansion:
    exps = [(c, _get(p, K, opts)) for c, p in spec.parts]
    vals = sum(c * e.coefficients for c, e in exps)
    bounds = sum(abs(c) * e.error_bounds for c, e in exps) + np.spacing(np.abs(vals))
    methods, exact = [], []
    for k in range(K + 1):
        used = []
        for _, e in exps:
            if e.methods[k] not in used:
                used.append(e.methods[k])
        methods.append("sum-of-parts[" + "+".join(used) + "]")
        if all(e.exact[k] is not None for _, e in exps):
            import sympy as sp  # noqa: PLC0415

            exact.append(sp.Add(*[sp.Rational(str(Fraction(repr(c)))) * e.exact[k] for c, e in exps]))
        else:
            exact.append(None)
    if opts.numeric == "mpmath" and all(p.sym is not None for _, p in spec.parts):
        e2v, e2err = _mpmath_combo_second_moment(spec, opts.dps)
        e2m = "mpmath"
    else:
        e2v, e2err = _quad_second_moment(spec.fn)
        e2m = "quad"
    return _expansion(spec, vals, methods, exact, bounds, e2v, e2err, e2m)


def _mpmath_combo_second_moment(spec: _Spec, dps: int):
    import sympy as sp  # noqa: PLC0415

    x = sp.Symbol("x", real=True)
    expr = 0
    for c, p in spec.parts:
        e, xp_ = p.sym()
        expr = expr + sp.Rational(str(Fraction(repr(c)))) * e.xreplace({xp_: x})
    tmp = _Spec(spec.name, None, None, "numeric", spec.fn, sym=lambda: (expr, x))
    _, _, v, e = _mpmath_all(tmp, 0, dps)
    return v, e


def _compute(spec: _Spec, K: int, opts: _Opts) -> HermiteExpansion:
    if spec.kind == "combo":
        return _sum_of_parts(spec, K, opts)
    if spec.kind == "terms" and not opts.force_numeric:
        return _closed_form(spec, K, opts)
    prefix = None
    if opts.exact and spec.try_integrate and not opts.force_numeric and opts.symbolic_timeout:
        prefix = _symbolic_budget(spec, K, opts.symbolic_timeout)
    return _numeric(spec, K, opts, prefix)


# =============================================================================
# Caching
# =============================================================================

_MEMORY: dict = {}
_LOCK = threading.Lock()


def cache_dir() -> Path | None:
    """The disk-cache folder for Hermite expansions, or None if disabled.

    ``$RFTHEORY_CACHE_DIR`` (``off``/``none``/``0``/empty disables the disk
    cache), else ``$XDG_CACHE_HOME/rftheory``, else ``~/.cache/rftheory``; the
    expansions go to its ``hermite`` sub-folder.  Read at every call.
    """
    env = os.environ.get("RFTHEORY_CACHE_DIR")
    if env is not None:
        if env.strip().lower() in ("", "off", "none", "0", "false"):
            return None
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg).expanduser() / "rftheory" if xdg else Path.home() / ".cache" / "rftheory"
    return root / "hermite"


def clear_cache(disk: bool = False) -> None:
    """Forget the in-memory expansions; with ``disk=True`` also delete the JSON files."""
    with _LOCK:
        _MEMORY.clear()
    if disk:
        d = cache_dir()
        if d is not None and d.is_dir():
            for f in d.glob("*.json"):
                try:
                    f.unlink()
                except OSError:
                    pass


def _disk_path(key) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha256(repr((_CACHE_VERSION, key)).encode()).hexdigest()[:40]
    return d / f"{h}.json"


def _to_json(exp: HermiteExpansion, key) -> str:
    def sre(e):
        if e is None:
            return None
        import sympy as sp  # noqa: PLC0415

        return sp.srepr(e)

    return json.dumps(
        {
            "version": _CACHE_VERSION,
            "key": repr(key),
            "activation": exp.activation,
            "coefficients": [float(v) for v in exp.coefficients],
            "methods": list(exp.methods),
            "exact": [sre(e) for e in exp.exact],
            "error_bounds": [float(v) for v in exp.error_bounds],
            "second_moment": exp.second_moment,
            "second_moment_error": exp.second_moment_error,
            "second_moment_method": exp.second_moment_method,
            "second_moment_exact": sre(exp.second_moment_exact),
        }
    )


def _from_json(text: str, key) -> HermiteExpansion | None:
    d = json.loads(text)
    if d.get("version") != _CACHE_VERSION or d.get("key") != repr(key):
        return None
    exact_s = d["exact"]
    if any(s is not None for s in exact_s) or d["second_moment_exact"] is not None:
        import sympy as sp  # noqa: PLC0415

        def parse(s):
            return None if s is None else sp.sympify(s)

    else:

        def parse(s):
            return None

    return HermiteExpansion(
        activation=d["activation"],
        coefficients=_readonly(d["coefficients"]),
        methods=tuple(d["methods"]),
        exact=tuple(parse(s) for s in exact_s),
        error_bounds=_readonly(d["error_bounds"]),
        second_moment=float(d["second_moment"]),
        second_moment_error=float(d["second_moment_error"]),
        second_moment_method=d["second_moment_method"],
        second_moment_exact=parse(d["second_moment_exact"]),
    )


def _disk_load(key) -> HermiteExpansion | None:
    path = _disk_path(key)
    if path is None:
        return None
    try:
        return _from_json(path.read_text(), key)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, AttributeError):
        return None


def _disk_store(key, exp: HermiteExpansion) -> None:
    path = _disk_path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(_to_json(exp, key))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # not writable: memory-only


def _get(spec: _Spec, K: int, opts: _Opts, use_cache: bool = True) -> HermiteExpansion:
    mkey = None if spec.mem_key is None else (spec.mem_key, opts.key())
    if use_cache and mkey is not None:
        with _LOCK:
            hit = _MEMORY.get(mkey)
        if hit is not None and hit.order >= K:
            return hit.truncate(K)
    dkey = None if spec.key is None else (spec.key, opts.key())
    if use_cache and dkey is not None:
        hit = _disk_load(dkey)
        if hit is not None and hit.order >= K:
            if mkey is not None:
                with _LOCK:
                    _MEMORY[mkey] = hit
            return hit.truncate(K)
    exp = _compute(spec, K, opts)
    if use_cache:
        if mkey is not None:
            with _LOCK:
                old = _MEMORY.get(mkey)
                if old is None or old.order < K:
                    _MEMORY[mkey] = exp
        if dkey is not None:
            _disk_store(dkey, exp)
    return exp


# =============================================================================
# Public API
# =============================================================================


def _check_order(order) -> int:
    return check_count(order, "order", minimum=0)


def hermite_coefficients(
    activation,
    order: int = 20,
    exact: bool = False,
    *,
    numeric: str = "quad",
    dps: int = 30,
    symbolic_timeout: float = 5.0,
    force_numeric: bool = False,
    use_cache: bool = True,
) -> HermiteExpansion:
    """Hermite coefficients μ_k = E_{g~N(0,1)}[σ(g) h_k(g)], k = 0..order.

    h_k = He_k/√(k!) (probabilists' Hermite, orthonormal), so σ = Σ μ_k h_k
    and Σ_k μ_k² = E[σ(g)²] (Parseval).

    Parameters
    ----------
    activation : str, Activation or SymPy expression
        A registered name ("relu", "tanh", ...), "step" (Heaviside, H(0) =
        1/2), a combination such as "relu+tanh" or "0.5*relu+2*step", an
        :class:`rftheory.models.activations.Activation`, or a SymPy expression in
        one symbol (e.g. ``x**3 - x``, ``sp.Abs(x)``, ``sp.erf(2*x)``).
    order : int
        K ≥ 0: coefficients μ_0..μ_K are returned.
    exact : bool
        Also produce SymPy closed forms (``.exact``): through the exact
        recurrences for closed-form σ, and, for a SymPy expression outside
        those forms, ``sympy.integrate`` under the ``symbolic_timeout``
        budget.  Activations known to have no closed form (tanh, sigmoid,
        softplus, silu) stay numeric.
    numeric : "quad" or "mpmath"
        Numeric path for σ without closed form: scipy's adaptive
        Gauss–Kronrod (fast, error estimate ~1e-14) or mpmath.quad at
        ``dps`` digits (slow; needs a SymPy expression of σ).
    symbolic_timeout : float
        Wall-clock seconds allowed to ``sympy.integrate`` (exact=True only);
        orders not finished in time fall back to the numeric path.
    force_numeric : bool
        Ignore closed forms (used to cross-check the two paths).
    use_cache : bool
        Read and write the memory/disk caches (see :func:`cache_dir`).

    Returns
    -------
    HermiteExpansion
        ``coefficients``, per-k ``methods``, ``exact`` forms, ``error_bounds``,
        ``second_moment`` = E[σ²] and ``truncation_error`` = E[σ²] − Σ μ_k².

    Raises
    ------
    ValueError
        Unknown activation name, negative order, unknown ``numeric``, σ not
        square-integrable.
    TypeError
        For an activation of an unsupported type.
    """
    K = _check_order(order)
    if numeric not in ("quad", "mpmath"):
        raise ValueError(f"numeric must be 'quad' or 'mpmath', got {numeric!r}")
    if numeric == "mpmath" and (isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 15):
        raise ValueError(f"dps must be an integer >= 15, got {dps!r}")
    spec = _resolve(activation)
    exact = bool(exact)
    needs_budget = exact and spec.try_integrate and not force_numeric
    opts = _Opts(
        exact=exact,
        numeric=numeric,
        dps=int(dps) if numeric == "mpmath" else None,
        force_numeric=bool(force_numeric),
        symbolic_timeout=float(symbolic_timeout) if needs_budget else None,
    )
    return _get(spec, K, opts, use_cache)


def parity_report(activation, order: int = 20, tol: float = 1e-10, **kwargs) -> ParityReport:
    """Which nonlinear Hermite parities σ has, and the sign-ambiguity prediction.

    A coefficient counts as non-zero when |μ_k| > tol + error_bound_k.
    ``activation`` may also be a :class:`HermiteExpansion` (then ``order``
    is capped at its order and ``kwargs`` are ignored); other ``kwargs`` go to
    :func:`hermite_coefficients`.  See :class:`ParityReport` for the
    predictions and how μ_0, μ_1 (the part in col([1, V])) are treated.
    """
    if not (isinstance(tol, (int, float, np.floating)) and tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    if isinstance(activation, HermiteExpansion):
        exp = activation.truncate(min(_check_order(order), activation.order))
    else:
        exp = hermite_coefficients(activation, order, **kwargs)
    K = exp.order
    nz = np.abs(exp.coefficients) > tol + exp.error_bounds
    even = tuple(k for k in range(2, K + 1, 2) if nz[k])
    odd = tuple(k for k in range(3, K + 1, 2) if nz[k])
    mu0 = bool(nz[0]) if K >= 0 else False
    mu1 = bool(nz[1]) if K >= 1 else False
    upto = f"(coefficients up to order {K}, tol {tol:g})"
    if even and odd:
        pred = IDENTIFIABLE
        why = (
            f"non-zero even (k={even[0]}) and odd (k={odd[0]}) coefficients of order ≥ 2/3: "
            "σ(−z) is not ±σ(z) modulo affine functions, so sample signs are identifiable "
        )
    elif even:
        if mu1:
            pred = AMBIGUOUS_AFFINE
            why = (
                "odd part is linear (all odd μ_k with k ≥ 3 vanish, μ_1 ≠ 0): σ(z) − σ(−z) = 2μ_1 z, "
                "so φ(−x) = φ(x) − 2μ_1·Vx: a sign flip is invisible modulo col([1, V]) "
            )
        else:
            pred = SIGN_SYMMETRIC
            why = "σ is even (no odd coefficient): φ(−x) = φ(x), a per-sample sign flip is an exact symmetry "
    elif odd:
        if mu0:
            pred = AMBIGUOUS_AFFINE
            why = (
                "σ is odd plus a constant (even μ_k with k ≥ 2 vanish, μ_0 ≠ 0): σ(−z) = 2μ_0 − σ(z), "
                "so φ(−x) = 2μ_0·1 − φ(x): a sign flip is exact modulo the constant direction in col([1, V]) "
            )
        else:
            pred = SIGN_SYMMETRIC
            why = "σ is odd (no even coefficient): φ(−x) = −φ(x), a per-sample sign flip is an exact symmetry "
    else:
        pred = DEGENERATE_AFFINE
        why = "σ is affine (no coefficient of order ≥ 2): every feature lies in col([1, V]) "
    return ParityReport(
        activation=exp.activation,
        order=K,
        tol=float(tol),
        even_nonzero=even,
        odd_nonzero=odd,
        mu0_nonzero=mu0,
        mu1_nonzero=mu1,
        prediction=pred,
        explanation=why + upto,
    )


def kernel_limit(X, activation="relu+tanh", order: int = 20, *, Y=None, check_sphere: bool = True, sphere_rtol: float = 1e-5, **kwargs) -> KernelLimit:
    """Limiting random-features kernel K∞ = E_V[ΦΦᵀ]/p, truncated at ``order``.

        K∞ = Σ_k μ_k² (X Yᵀ/d)^{∘k}      (Y = X by default; ∘k entrywise power)

    **Rows must lie on the √d-sphere** (‖x_i‖ = √d, d = X.shape[1]): then
    for v ~ N(0, I/d) the pre-activations ⟨v, x_i⟩, ⟨v, y_j⟩ are standard
    normal with correlation ρ_ij = ⟨x_i, y_j⟩/d and Mehler's formula gives
    the series, exactly for every d.  The diagonal of K∞(X, X) is E[σ(g)²].
    Off the sphere the formula is wrong, so by default rows whose ‖x‖²/d
    differs from 1 by more than ``sphere_rtol`` raise ValueError
    (``check_sphere=False`` skips the check).

    Returns
    -------
    KernelLimit
        ``(kernel, error_bound)``: an n×m array of X's module (NumPy or
        CuPy) and dtype (float64 for integer input), and an entrywise bound
        on |K∞ − kernel|: the truncation error E[σ²] − Σ_{k≤K} μ_k² (since
        |ρ| ≤ 1) plus the stated numeric errors of the coefficients (twice
        :attr:`HermiteExpansion.truncation_error_bound`).  Extra ``kwargs``
        go to :func:`hermite_coefficients`.
    """
    from ..validation import check_matrix  # noqa: PLC0415

    X = check_matrix(X, "X")
    d = X.shape[1]
    Y = X if Y is None else check_matrix(Y, "Y", cols=d, cols_name="d (columns of X)")
    xp = array_namespace(X, Y)
    dtype = X.dtype if X.dtype.kind == "f" else np.float64
    X = xp.asarray(X, dtype=dtype)
    Y = xp.asarray(Y, dtype=dtype)
    if check_sphere:
        for name, A in (("X", X), ("Y", Y)):
            r = xp.sum(A * A, axis=1) / d
            dev = float(xp.max(xp.abs(r - 1)))
            if not dev <= sphere_rtol:
                raise ValueError(
                    f"rows of {name} must lie on the √d-sphere (‖x‖ = √d = {math.sqrt(d):.6g}) for the "
                    f"Hermite kernel formula; max |‖x‖²/d − 1| = {dev:.3g} > {sphere_rtol:g}. Rescale "
                    "rows by √d/‖x‖, or pass check_sphere=False"
                )
    exp = hermite_coefficients(activation, order, **kwargs)
    rho = xp.clip((X @ Y.T) / d, -1.0, 1.0)
    w = [float(v) for v in exp.kernel_coefficients()]
    K = xp.full(rho.shape, w[-1], dtype=dtype)
    for c in reversed(w[:-1]):  # Horner in the entrywise power
        K = K * rho + c
    bound = max(exp.truncation_error, 0.0) + 2.0 * exp.truncation_error_bound
    return KernelLimit(K, float(bound))


def orthonormal_hermite(x, order: int):
    """h_0(x)..h_K(x) (h_k = He_k/√k!) stacked on a new last axis.

    Stable three-term recurrence h_{k+1} = (x h_k − √k h_{k−1})/√(k+1).
    Works on NumPy and CuPy arrays.
    """
    K = _check_order(order)
    xp = array_namespace(x)
    x = xp.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    out = xp.empty(tuple(x.shape) + (K + 1,), dtype=x.dtype)
    out[..., 0] = 1.0
    if K >= 1:
        out[..., 1] = x
    for k in range(1, K):
        out[..., k + 1] = (x * out[..., k] - math.sqrt(k) * out[..., k - 1]) / math.sqrt(k + 1)
    return out
