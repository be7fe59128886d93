r"""Closed-form Hermite moments of σ = Σ c·x^n·B(x), B ∈ {1, H, erf(c x), exp(−a x²)}.

relu = x H, step = H, abs = x(2H − 1), leaky_relu = a x + (1 − a) x H,
erf, gelu = x/2 + x erf(x/√2)/2, polynomials, and any SymPy expression
reducing to such terms (:mod:`.sympy_terms`).  The unnormalised moments
m_k = E[σ He_k] follow from exact recurrences

    H:           m_0 = 1/2,  m_1 = 1/√(2π),  m_{k+2} = −k m_k (k odd), m_even≥2 = 0
    erf(c x):    m_1 = 2c/√(π(1+2c²)),  m_{k+2} = −k r m_k (k odd), r = 2c²/(1+2c²)
    exp(−a x²):  m_0 = 1/√(1+2a),  m_{k+2} = −(k+1) r m_k (k even), r = 2a/(1+2a)
    x·f:         m_k(x f) = m_{k+1}(f) + k m_{k−1}(f)     (x He_k = He_{k+1} + k He_{k−1})

(the first three are Gaussian integration by parts, E[f He_k] =
E[f' He_{k−1}], with H' = δ and erf' a Gaussian), and μ_k = m_k/√(k!).
E[σ²] is a sum of pair moments E[g^N B1(g) B2(g)], known in closed form for
the pairs listed in :func:`_pair_moment` (otherwise it is integrated).

The same recurrences run on two number back-ends: :class:`MpOps` (an
isolated mpmath context; ``"closed-form"``, evaluated at 40 and 60
significant digits, the stated error bound being the difference of the two
plus the float64 rounding) and :class:`SymOps` (SymPy, exact;
``"sympy-exact"``, the bound being the float64 rounding of the exact value).
E.g. ReLU: μ_0 = 1/√(2π), μ_1 = 1/2, μ_k = He_{k−2}(0)/√(2π k!) for k ≥ 2
(so μ_2 = 1/(2√π) and μ_odd≥3 = 0).

Terms are a dict {(n, base): coefficient}, meaning Σ coefficient · x^n ·
base(x), base ∈ ("one",), ("H",), ("erf", c), ("gauss", a).
"""
from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Callable

import numpy as np

from ...models.activations import LEAKY_SLOPE
from .expansion import HermiteExpansion, make_expansion
from .quadrature import quad_second_moment

if TYPE_CHECKING:  # for annotations only
    from .spec import Options, Spec

__all__ = [
    "MpOps",
    "SymOps",
    "ONE",
    "HEAVISIDE",
    "terms_add",
    "terms_mul",
    "builtin_terms",
    "closed_form_expansion",
]

# Two working precisions whose difference is the stated error of the float64 result:
# 40 digits is far beyond float64, 60 confirms it.
_MP_DPS_LO, _MP_DPS_HI = 40, 60

ONE, HEAVISIDE = ("one",), ("H",)


class MpOps:
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


class SymOps:
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
        return _moment(N, HEAVISIDE, ops)
    if k1 == k2 == "gauss":
        return _moment(N, ("gauss", b1[1] + b2[1]), ops)
    half = ops.frac(Fraction(1, 2))
    if kinds == {"H", "gauss"}:
        # ∫_0^∞ x^N e^{−a x²} φ(x) dx = (1+2a)^{−(N+1)/2} E[g^N; g > 0]  (y = x√(1+2a))
        g = b1 if k1 == "gauss" else b2
        s = ops.sqrt(1 + 2 * g[1])
        return _moment(N, HEAVISIDE, ops) / s ** (N + 1)
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


def builtin_terms(name: str) -> Callable | None:
    """factory(ops) → terms for a built-in σ with a closed form, else None."""
    half = Fraction(1, 2)
    slope = Fraction(repr(LEAKY_SLOPE))
    table = {
        "relu": lambda o: {(1, HEAVISIDE): o.int(1)},
        "step": lambda o: {(0, HEAVISIDE): o.int(1)},
        "abs": lambda o: {(1, HEAVISIDE): o.int(2), (1, ONE): o.int(-1)},
        "leaky_relu": lambda o: {(1, ONE): o.frac(slope), (1, HEAVISIDE): o.frac(1 - slope)},
        "erf": lambda o: {(0, ("erf", o.int(1))): o.int(1)},
        "gelu": lambda o: {(1, ONE): o.frac(half), (1, ("erf", 1 / o.sqrt(o.int(2)))): o.frac(half)},
    }
    return table.get(name)


# --- term algebra -------------------------------------------------------------


def terms_mul(t1: dict, t2: dict) -> dict | None:
    """t1·t2, or None when a product of bases is not a base (e.g. H·erf)."""
    out: dict = {}
    for (n1, b1), c1 in t1.items():
        for (n2, b2), c2 in t2.items():
            if b1 == ONE:
                b = b2
            elif b2 == ONE:
                b = b1
            elif b1 == HEAVISIDE and b2 == HEAVISIDE:
                b = HEAVISIDE
            elif b1[0] == "gauss" and b2[0] == "gauss":
                b = ("gauss", b1[1] + b2[1])
            else:
                return None
            key = (n1 + n2, b)
            out[key] = out.get(key, 0) + c1 * c2
    return out


def terms_add(t1: dict, t2: dict, scale=1) -> dict:
    """t1 + scale·t2."""
    out = dict(t1)
    for k, v in t2.items():
        out[k] = out.get(k, 0) + scale * v
    return out


# --- the expansion ------------------------------------------------------------


def closed_form_expansion(spec: Spec, K: int, opts: Options) -> HermiteExpansion:
    """μ_0..μ_K and E[σ²] of ``spec.terms`` in SymPy (``opts.exact``) or in mpmath at two precisions."""
    if opts.exact:
        ops = SymOps()
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
            return make_expansion(spec, vals, methods, tuple(exact), bounds, ops.to_float(e2), float(np.spacing(ops.to_float(e2))), "sympy-exact", e2)
        e2v, e2err = quad_second_moment(spec.fn)
        return make_expansion(spec, vals, methods, tuple(exact), bounds, e2v, e2err, "quad")
    lo, hi = MpOps(_MP_DPS_LO), MpOps(_MP_DPS_HI)
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
        return make_expansion(spec, vals, methods, (None,) * (K + 1), bounds, e2, float(abs(e2_lo - e2_hi)) + float(np.spacing(e2)), "closed-form")
    e2v, e2err = quad_second_moment(spec.fn)
    return make_expansion(spec, vals, methods, (None,) * (K + 1), bounds, e2v, e2err, "quad")
