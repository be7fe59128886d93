r"""Resolve an activation specification into what the computation paths need.

Accepted: a registered name ("relu", "tanh", ...), "step" (Heaviside,
H(0) = 1/2, known here only), a combination string ("relu+tanh",
"0.5*relu+2*step"), an :class:`rftheory.models.activations.Activation`, or a
SymPy expression in one symbol.  :func:`resolve` returns a :class:`Spec`:
its ``kind`` says which path computes μ_k ("terms": closed form,
"numeric": quadrature, "combo": sum of the parts), its keys say how it is
cached (``key`` on disk, ``mem_key`` in memory; None when the object cannot
be keyed).  :class:`Options` are the caller's settings that change the
numbers (part of both cache keys).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from ...backend import array_namespace
from ...models.activations import LEAKY_SLOPE, Activation, get_activation
from .closed_form import builtin_terms, terms_add
from .sympy_terms import recognize, sympy_terms_factory

__all__ = ["Spec", "Options", "resolve"]


@dataclass(frozen=True, eq=False)
class Spec:
    """An activation ready for the computation paths (see the module docstring)."""

    name: str
    key: object  # hashable, disk-cacheable key, or None (memory only)
    mem_key: object  # hashable memory key, or None (no caching)
    kind: str  # "terms" | "numeric" | "combo"
    fn: Callable  # NumPy σ
    terms: Callable | None = None  # factory(ops) -> terms
    sym: Callable | None = None  # () -> (sympy expr, symbol), lazily
    try_integrate: bool = False
    parts: tuple = field(default=())


# The registry's own activations: keyed by name, so their expansions can be cached on disk.
_BUILTIN_NAMES = {"relu", "tanh", "leaky_relu", "abs", "erf", "sigmoid", "softplus", "gelu", "silu", "relu+tanh"}
# One term of a combination string: an optional coefficient, "*", a name ("0.5*relu", "step").
_TERM_RE = re.compile(r"^\s*(?:([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _step_fn(z):
    xp = array_namespace(z)
    return xp.where(z > 0, 1.0, xp.where(z < 0, 0.0, 0.5))


def _sym_step():
    import sympy as sp  # noqa: PLC0415

    x = sp.Symbol("x", real=True)
    return sp.Heaviside(x, sp.Rational(1, 2)), x


_STEP_SPEC = Spec(
    name="step",
    key=("step",),
    mem_key=("step",),
    kind="terms",
    fn=_step_fn,
    terms=builtin_terms("step"),
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


def _from_activation(act: Activation) -> Spec:
    if act.is_combination:
        parts = tuple((float(c), _from_activation(a)) for c, a in act.parts)
        return _combo_spec(act.name, parts, fn=act.fn)
    if _is_builtin(act):
        name = act.name.lower()
        key = ("act", name, repr(LEAKY_SLOPE)) if name == "leaky_relu" else ("act", name)
        factory = builtin_terms(name)
        kind = "terms" if factory is not None else "numeric"
        return Spec(name, key, key, kind, act.fn, terms=factory, sym=_sym_from_activation(act))
    mem_key = _safe_hash(("obj", act))
    sym = _sym_from_activation(act)
    if act.sympy_expr is not None and act.closed_form_hermite:
        expr, x = sym()
        terms = recognize(expr, x)
        if terms is not None:
            return Spec(act.name, None, mem_key, "terms", act.fn, terms=sympy_terms_factory(terms), sym=sym)
        return Spec(act.name, None, mem_key, "numeric", act.fn, sym=sym, try_integrate=True)
    return Spec(act.name, None, mem_key, "numeric", act.fn, sym=sym)


def _combo_spec(name: str, parts: tuple, fn: Callable | None = None) -> Spec:
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
                acc = terms_add(acc, fac(ops), scale=ops.frac(c))
            return acc

        return Spec(name, key, mem_key, "terms", fn, terms=merged)
    return Spec(name, key, mem_key, "combo", fn, parts=parts)


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


def _from_sympy(expr) -> Spec:
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

    terms = recognize(e, x)
    if terms is not None:
        return Spec(name, key, key, "terms", fn, terms=sympy_terms_factory(terms), sym=sym)
    return Spec(name, key, key, "numeric", fn, sym=sym, try_integrate=True)


def resolve(activation) -> Spec:
    """The :class:`Spec` of a name, combination string, Activation or SymPy expression (see the module docstring)."""
    if isinstance(activation, Spec):
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


@dataclass(frozen=True)
class Options:
    """The settings of :func:`rftheory.theory.hermite.hermite_coefficients` that change the numbers."""

    exact: bool
    numeric: str
    dps: int | None
    force_numeric: bool
    symbolic_timeout: float | None

    def key(self):
        return (self.exact, self.numeric, self.dps, self.force_numeric, self.symbolic_timeout)
