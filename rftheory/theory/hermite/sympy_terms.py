r"""Recognise a SymPy expression as closed-form terms Σ c x^n B(x).

B ∈ {1, H, erf(c x), e^{−a x²}}: sums, products, non-negative integer
powers, exp of an even quadratic, Heaviside, sign, Abs, erf, erfc,
Max/Min(c x, 0) and two-piece Piecewise at 0 are rewritten into those terms
(:func:`recognize`); anything else returns None and the numeric paths are
used.  SymPy is imported only when an expression is recognised.
"""
from __future__ import annotations

from typing import Callable

from .closed_form import HEAVISIDE, ONE, terms_add, terms_mul

__all__ = ["recognize", "sympy_terms_factory"]


def recognize(expr, x) -> dict | None:
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
            return {(0, ONE): e} if (e.is_number and const(e)) else None
        if e == x:
            return {(1, ONE): sp.Integer(1)}
        if isinstance(e, sp.Add):
            acc: dict = {}
            for a in e.args:
                t = rec(a)
                if t is None:
                    return None
                acc = terms_add(acc, t)
            return acc
        if isinstance(e, sp.Mul):
            acc = {(0, ONE): sp.Integer(1)}
            for a in e.args:
                t = rec(a)
                if t is None:
                    return None
                acc = terms_mul(acc, t)
                if acc is None:
                    return None
            return acc
        if isinstance(e, sp.Pow):
            base, ex = e.args
            if ex.is_Integer and ex >= 0:
                t = rec(base)
                acc = {(0, ONE): sp.Integer(1)}
                for _ in range(int(ex)):
                    if t is None or acc is None:
                        return None
                    acc = terms_mul(acc, t)
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
            return {(0, HEAVISIDE): sp.Integer(1)} if c > 0 else {(0, ONE): sp.Integer(1), (0, HEAVISIDE): sp.Integer(-1)}
        if isinstance(e, sp.sign):
            c = linear_coeff(e.args[0])
            if c is None:
                return None
            s = 1 if c > 0 else -1
            return {(0, HEAVISIDE): sp.Integer(2 * s), (0, ONE): sp.Integer(-s)}
        if isinstance(e, sp.Abs):
            c = linear_coeff(e.args[0])
            if c is None:
                return None
            ac = sp.Abs(c)
            return {(1, HEAVISIDE): 2 * ac, (1, ONE): -ac}
        if isinstance(e, sp.erf):
            c = linear_coeff(e.args[0])
            return None if c is None else {(0, ("erf", c)): sp.Integer(1)}
        if isinstance(e, sp.erfc):
            c = linear_coeff(e.args[0])
            return None if c is None else {(0, ONE): sp.Integer(1), (0, ("erf", c)): sp.Integer(-1)}
        if isinstance(e, (sp.Max, sp.Min)) and len(e.args) == 2 and 0 in e.args:
            other = e.args[0] if e.args[1] == 0 else e.args[1]
            c = linear_coeff(other)
            if c is None:
                return None
            # Max(cx, 0) = c x H(cx); Min(cx, 0) = c x − Max(cx, 0)
            hpart = {(1, HEAVISIDE): c} if c > 0 else {(1, ONE): c, (1, HEAVISIDE): -c}
            if isinstance(e, sp.Max):
                return hpart
            return terms_add({(1, ONE): c}, hpart, scale=-1)
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
            diff = terms_add(pos, neg, scale=-1)
            hd = terms_mul(diff, {(0, HEAVISIDE): sp.Integer(1)})
            return None if hd is None else terms_add(neg, hd)
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


def sympy_terms_factory(terms: dict) -> Callable:
    """Turn SymPy-valued terms into a factory for either number back-end."""

    def factory(ops):
        out = {}
        for (n, base), c in terms.items():
            b = base if len(base) == 1 else (base[0], ops.from_sympy(base[1]))
            out[(n, b)] = ops.from_sympy(c)
        return out

    return factory
