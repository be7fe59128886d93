"""Tests for rftheory.theory.hermite's coefficients: closed forms, certified numerics,
Parseval, linearity and parity of the μ_k, the input forms, and the CLI.

References are independent of the implementation: textbook closed forms and
mpmath.quad at 30 digits on (−∞, 0] ∪ [0, ∞) with its own Hermite recurrence.
"""
from __future__ import annotations

import math
import time

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rftheory.cli import main
from rftheory.models.activations import Activation, known_activations
from rftheory.theory.hermite import (
    DEGENERATE_AFFINE,
    SIGN_SYMMETRIC,
    HermiteExpansion,
    hermite_coefficients,
    orthonormal_hermite,
    parity_report,
)
from rftheory.theory.hermite.spec import resolve


pytestmark = pytest.mark.usefixtures("private_hermite_cache")


ALL = sorted(set(known_activations()) | {"step"})
BASES = ["relu", "tanh", "leaky_relu", "abs", "erf", "sigmoid", "softplus", "gelu", "silu", "step"]


# --- independent high-precision reference -------------------------------------

MP_FUNCS = {
    "relu": lambda t: max(t, 0),
    "abs": lambda t: abs(t),
    "leaky_relu": lambda t: t if t > 0 else t / 100,
    "step": lambda t: mpmath.mpf(1) if t > 0 else (mpmath.mpf(0) if t < 0 else mpmath.mpf(0.5)),
    "erf": mpmath.erf,
    "gelu": lambda t: t * (1 + mpmath.erf(t / mpmath.sqrt(2))) / 2,
    "tanh": mpmath.tanh,
    "sigmoid": lambda t: 1 / (1 + mpmath.exp(-t)),
    "softplus": lambda t: mpmath.log(1 + mpmath.exp(t)),
    "silu": lambda t: t / (1 + mpmath.exp(-t)),
}


def mp_mu(f, k: int, dps: int = 30) -> float:
    """μ_k = ∫ σ(t) He_k(t) φ(t) dt / √k! by mpmath.quad at ``dps`` digits."""
    with mpmath.workdps(dps):

        def he(t):  # He_k(t) = 2^{-k/2} H_k(t/√2), from mpmath's own (physicists') Hermite
            return mpmath.hermite(k, t / mpmath.sqrt(2)) / mpmath.sqrt(2) ** k

        v = mpmath.quad(lambda t: f(t) * he(t) * mpmath.npdf(t), [-mpmath.inf, 0, mpmath.inf])
        return float(v / mpmath.sqrt(mpmath.factorial(k)))


def mp_second_moment(f, dps: int = 30) -> float:
    with mpmath.workdps(dps):
        return float(mpmath.quad(lambda t: f(t) ** 2 * mpmath.npdf(t), [-mpmath.inf, 0, mpmath.inf]))


# --- closed forms -------------------------------------------------------------


def test_relu_textbook_values():
    e = hermite_coefficients("relu", 20)
    mu = e.coefficients
    assert mu[0] == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-15)
    assert mu[1] == pytest.approx(0.5, abs=1e-15)
    assert mu[2] == pytest.approx(1 / (2 * math.sqrt(math.pi)), abs=1e-15)
    assert np.all(mu[3::2] == 0.0)
    # μ_k = He_{k−2}(0)/√(2π k!) for k ≥ 2, He_{2m}(0) = (−1)^m (2m−1)!!
    for k in range(2, 21, 2):
        m = (k - 2) // 2
        dfact = math.prod(range(1, 2 * m, 2)) if m > 0 else 1
        assert mu[k] == pytest.approx((-1) ** m * dfact / math.sqrt(2 * math.pi * math.factorial(k)), rel=1e-14)
    assert e.second_moment == pytest.approx(0.5, abs=1e-15)
    assert set(e.methods) == {"closed-form"}
    assert np.all(e.error_bounds < 1e-15)


def test_relu_exact_sympy_forms():
    e = hermite_coefficients("relu", 6, exact=True)
    ref = [1 / sp.sqrt(2 * sp.pi), sp.Rational(1, 2), 1 / (2 * sp.sqrt(sp.pi)), 0, -sp.sqrt(3) / (12 * sp.sqrt(sp.pi)), 0]
    for k, r in enumerate(ref):
        assert sp.simplify(e.exact[k] - r) == 0
    assert e.methods[0] == "sympy-exact"
    assert e.second_moment_exact == sp.Rational(1, 2)


def test_exact_second_moments_known_values():
    erf = hermite_coefficients("erf", 4, exact=True)
    assert sp.simplify(erf.second_moment_exact - 2 * sp.asin(sp.Rational(2, 3)) / sp.pi) == 0
    assert sp.simplify(erf.exact[1] - 2 / sp.sqrt(3 * sp.pi)) == 0
    gelu = hermite_coefficients("gelu", 4, exact=True)
    # E[g²Φ(g)²] = 1/3 + 1/(2π√3)
    assert sp.simplify(gelu.second_moment_exact - (sp.Rational(1, 3) + 1 / (2 * sp.pi * sp.sqrt(3)))) == 0
    leaky = hermite_coefficients("leaky_relu", 3, exact=True)
    assert leaky.exact[1] == sp.Rational(101, 200)
    assert leaky.second_moment_exact == sp.Rational(10001, 20000)


@pytest.mark.parametrize(
    "name,ks",
    [
        ("erf", (0, 1, 3, 5, 8, 11)),
        ("gelu", (0, 1, 2, 4, 6, 9)),
        ("tanh", (1, 2, 3, 5, 9, 20)),
        ("sigmoid", (0, 1, 2, 3, 7, 12)),
        ("softplus", (0, 1, 2, 6)),
        ("silu", (0, 2, 3, 6)),
        ("abs", (0, 2, 5, 8)),
        ("leaky_relu", (1, 2, 6)),
        ("step", (0, 1, 2, 7)),
    ],
)
def test_against_mpmath_reference(name, ks):
    e = hermite_coefficients(name, 20)
    for k in ks:
        ref = mp_mu(MP_FUNCS[name], k)
        assert abs(e.coefficients[k] - ref) < 1e-10, (name, k, e.coefficients[k], ref)
        # and the stated bound is honest (with a little slack for the reference itself)
        assert abs(e.coefficients[k] - ref) <= 10 * e.error_bounds[k] + 1e-13


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "gelu", "erf"])
def test_second_moment_against_mpmath(name):
    e = hermite_coefficients(name, 4)
    assert abs(e.second_moment - mp_second_moment(MP_FUNCS[name])) < 1e-12


@pytest.mark.parametrize("name", ["relu", "abs", "erf", "gelu", "step", "leaky_relu"])
def test_numeric_path_agrees_with_closed_form(name):
    closed = hermite_coefficients(name, 16)
    num = hermite_coefficients(name, 16, force_numeric=True)
    assert set(num.methods) == {"quad"}
    np.testing.assert_allclose(num.coefficients, closed.coefficients, atol=1e-11, rtol=0)
    assert abs(num.second_moment - closed.second_moment) < 1e-11


def test_polynomials_and_sympy_expressions():
    x = sp.Symbol("z")
    e = hermite_coefficients(x**3 - x, 6)
    # x³ − x = He_3 + 2 He_1 → μ_1 = 2, μ_3 = √3! = √6
    np.testing.assert_allclose(e.coefficients, [0, 2, 0, math.sqrt(6), 0, 0, 0], atol=1e-14)
    assert e.second_moment == pytest.approx(10.0, abs=1e-13)
    assert e.truncation_error == pytest.approx(0.0, abs=1e-12)
    ex = hermite_coefficients(x**3 - x, 4, exact=True)
    assert ex.exact[3] == sp.sqrt(6) and ex.exact[1] == 2
    # Max(x, 0) and a user Piecewise are recognised as relu
    m = hermite_coefficients(sp.Max(x, 0), 10)
    np.testing.assert_allclose(m.coefficients, hermite_coefficients("relu", 10).coefficients, atol=1e-15)
    # a Gaussian bump mixed with |x|, checked against mpmath
    g = sp.Abs(x) + sp.exp(-(x**2)) + 0.5 * sp.erf(2 * x)
    ge = hermite_coefficients(g, 8)
    assert set(ge.methods) == {"closed-form"}
    f = sp.lambdify(x, g, "mpmath")
    for k in (0, 1, 2, 4, 7):
        assert abs(ge.coefficients[k] - mp_mu(f, k)) < 1e-10
    assert abs(ge.second_moment - mp_second_moment(f)) < 1e-10


def test_sympy_integrate_path_and_budget_fallback():
    x = sp.Symbol("x")
    e = hermite_coefficients(sp.sin(x), 1, exact=True, symbolic_timeout=60)
    assert e.methods == ("sympy-integrate", "sympy-integrate")
    assert e.exact[0] == 0
    assert sp.simplify(e.exact[1] - sp.exp(-sp.Rational(1, 2))) == 0
    # an unfinishable budget falls back to quadrature, and says so
    t0 = time.perf_counter()
    f = hermite_coefficients(sp.cos(x), 6, exact=True, symbolic_timeout=0.01)
    assert time.perf_counter() - t0 < 10
    assert set(f.methods) == {"quad"} and all(v is None for v in f.exact)
    # μ_k(cos) = (−1)^{k/2} e^{−1/2}/√k! for even k
    for k in (0, 2, 4, 6):
        assert f.coefficients[k] == pytest.approx((-1) ** (k // 2) * math.exp(-0.5) / math.sqrt(math.factorial(k)), abs=1e-12)


def test_numeric_mpmath_engine():
    e = hermite_coefficients("tanh", 3, numeric="mpmath", dps=20)
    q = hermite_coefficients("tanh", 3)
    assert set(e.methods) == {"mpmath"}
    np.testing.assert_allclose(e.coefficients, q.coefficients, atol=1e-12)


# --- Parseval -----------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_parseval(name):
    """Σ_k μ_k² → E[σ²]: the tail is non-negative, small at high order, and decays."""
    smooth = name in {"tanh", "sigmoid", "softplus", "silu", "erf", "gelu"}
    K = 60 if smooth else (200 if name == "relu+tanh" else 2000)
    e = hermite_coefficients(name, K)
    tail = e.truncation_error
    assert tail >= -e.truncation_error_bound - 1e-14
    if smooth:
        assert tail < 1e-9
    elif name == "step":
        # μ_k² ~ k^{-3/2}: tail ~ K^{-1/2}; check the rate (a missing mass would stall it)
        t2 = hermite_coefficients(name, 4 * K).truncation_error
        assert 0 < tail < 0.01 and 0.4 < t2 / tail < 0.6
    elif name == "relu+tanh":
        assert 0 < tail < 1e-4
    else:
        # kinks: μ_k² ~ k^{-5/2}, tail ~ K^{-3/2}
        assert 0 < tail < 1e-5
        t2 = hermite_coefficients(name, K // 4).truncation_error
        assert 5 < t2 / tail < 11
    # the partial sums increase towards E[σ²]
    partial = np.cumsum(e.coefficients**2)
    assert np.all(np.diff(partial) >= 0) and partial[-1] <= e.second_moment + e.truncation_error_bound


# --- linearity and parity (hypothesis) -----------------------------------------

coef = st.floats(min_value=-3, max_value=3, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=coef, b=coef, s=st.sampled_from(BASES), t=st.sampled_from(BASES))
def test_linearity_of_combinations(a, b, s, t):
    K = 8
    combo = hermite_coefficients(f"{a!r}*{s}+{b!r}*{t}", K)
    ms, mt = hermite_coefficients(s, K), hermite_coefficients(t, K)
    expect = a * ms.coefficients + b * mt.coefficients
    np.testing.assert_allclose(combo.coefficients, expect, atol=1e-12, rtol=0)
    # and an independent quadrature of the combined function (no parts known)
    fs, ft = resolve(s).fn, resolve(t).fn
    opaque = Activation(f"opaque({a},{s},{b},{t})", lambda z: a * fs(z) + b * ft(z), lambda z: 0 * z)
    num = hermite_coefficients(opaque, K)
    np.testing.assert_allclose(num.coefficients, expect, atol=1e-10, rtol=0)
    assert abs(num.second_moment - combo.second_moment) < 1e-10


pos = st.floats(min_value=0.2, max_value=3, allow_nan=False)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=st.lists(coef, min_size=4, max_size=4), w=pos)
def test_even_sigma_has_no_odd_coefficients(c, w):
    x = sp.Symbol("x")
    expr = c[0] * x**2 + c[1] * sp.Abs(x) + c[2] * sp.exp(-w * x**2) + c[3] * x * sp.erf(w * x)
    e = hermite_coefficients(expr, 10)
    assert np.all(np.abs(e.coefficients[1::2]) <= 1e-13)

    def fn(z):
        return c[0] * np.tanh(z) ** 2 + c[1] * np.abs(z) + c[2] * np.cos(w * z) + c[3] * np.abs(z) ** 1.5

    n = hermite_coefficients(Activation("even", fn, lambda z: 0 * z), 10)
    assert np.all(np.abs(n.coefficients[1::2]) <= 1e-13)
    if c[1] or c[3]:
        assert parity_report(n, tol=1e-8).prediction in (SIGN_SYMMETRIC, DEGENERATE_AFFINE)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=st.lists(coef, min_size=4, max_size=4), w=pos)
def test_odd_sigma_has_no_even_coefficients(c, w):
    x = sp.Symbol("x")
    expr = c[0] * x**3 + c[1] * sp.erf(w * x) + c[2] * x * sp.exp(-w * x**2) + c[3] * x * sp.Abs(x)
    e = hermite_coefficients(expr, 10)
    assert np.all(np.abs(e.coefficients[0::2]) <= 1e-13)

    def fn(z):
        return c[0] * np.tanh(w * z) + c[1] * np.sin(z) + c[2] * z * np.exp(-w * z * z) + c[3] * np.sign(z) * z * z

    n = hermite_coefficients(Activation("odd", fn, lambda z: 0 * z), 10)
    assert np.all(np.abs(n.coefficients[0::2]) <= 1e-13)
    assert parity_report(n, tol=1e-8).prediction in (SIGN_SYMMETRIC, DEGENERATE_AFFINE)


# --- Hermite polynomials and the result record -------------------------------------


def test_orthonormal_hermite():
    g = np.random.default_rng(0).standard_normal(200000)
    h = orthonormal_hermite(g, 5)
    gram = h.T @ h / len(g)
    np.testing.assert_allclose(gram, np.eye(6), atol=0.05)
    np.testing.assert_allclose(orthonormal_hermite(np.array([2.0]), 3)[0], [1, 2, 3 / math.sqrt(2), 2 / math.sqrt(6)])


def test_expansion_is_readonly_and_truncates():
    e = hermite_coefficients("tanh", 10)
    assert isinstance(e, HermiteExpansion)
    with pytest.raises(ValueError):
        e.coefficients[0] = 1.0
    t = e.truncate(4)
    assert t.order == 4 and t.truncation_error > e.truncation_error
    with pytest.raises(ValueError):
        e.truncate(11)


# --- inputs and errors ----------------------------------------------------------------


def test_input_forms_and_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        hermite_coefficients("swish2", 4)
    with pytest.raises(ValueError):
        hermite_coefficients("relu", -1)
    with pytest.raises(ValueError):
        hermite_coefficients("relu", 2.5)
    with pytest.raises(ValueError):
        hermite_coefficients("relu", 3, numeric="gauss-hermite")
    with pytest.raises(TypeError):
        hermite_coefficients(3.5, 4)
    a, b = sp.symbols("a b")
    with pytest.raises(ValueError, match="one free symbol"):
        hermite_coefficients(a * b, 3)
    # step and step combinations (hermite-only builtin)
    st_ = hermite_coefficients("step", 5)
    assert st_.coefficients[0] == 0.5 and st_.coefficients[1] == pytest.approx(1 / math.sqrt(2 * math.pi))
    rs = hermite_coefficients("relu+step", 5)
    np.testing.assert_allclose(rs.coefficients, hermite_coefficients("relu", 5).coefficients + st_.coefficients, atol=1e-15)
    # the registry object, a spaced string and parts agree
    from rftheory.models.activations import get_activation

    np.testing.assert_array_equal(
        hermite_coefficients(get_activation("relu+tanh"), 6).coefficients,
        hermite_coefficients(" relu + tanh ", 6).coefficients,
    )
    assert hermite_coefficients("relu+tanh", 6).methods[1] == "sum-of-parts[closed-form+quad]"


# --- CLI --------------------------------------------------------------------------------


def test_cli_table_and_verdict(capsys):
    assert main(["hermite", "relu+tanh", "--order", "6"]) == 0
    out = capsys.readouterr().out
    assert "parity verdict: identifiable" in out
    assert "sum-of-parts[closed-form+quad]" in out
    assert "truncation error" in out and "E[sigma^2]" in out
    assert main(["hermite", "relu", "--order", "4", "--exact"]) == 0
    out = capsys.readouterr().out
    assert "1/(2*sqrt(pi))" in out and "sympy-exact" in out
    assert "ambiguous modulo col([1, V])" in out


def test_cli_bad_activation(capsys):
    assert main(["hermite", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rftheory: error:") and "unknown activation" in err
