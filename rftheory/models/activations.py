"""Activation functions σ with their derivatives σ', on NumPy or CuPy arrays.

The registry holds the activations the package knows by name:

    relu, tanh, leaky_relu, abs, erf, sigmoid, softplus, gelu, silu

plus any linear combination written with ``+`` and optional coefficients,
e.g. ``"relu+tanh"`` or ``"0.5*relu+2*tanh"``: σ = Σ_j c_j σ_j and
σ' = Σ_j c_j σ_j'.  ``relu+tanh`` is registered as a name of its own because
it is the package's default mixed-parity activation (docs/design.md, sign
ambiguity).

Users may pass their own :class:`Activation` built from two callables
``fn(z)`` and ``deriv(z)`` that accept and return arrays of the module of
``z`` (NumPy or CuPy).  Each registered activation also carries a SymPy
expression in one symbol (used by :mod:`rftheory.theory.hermite` for closed-form
Hermite coefficients) when one exists.

Conventions: gelu is the exact x·Φ(x) (Φ the standard normal CDF), not the
tanh approximation; leaky_relu has slope 0.01 on the negative side; the
derivative of relu at 0 is taken as 0 and of abs at 0 as 0.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..backend import array_namespace

__all__ = [
    "Activation",
    "get_activation",
    "known_activations",
    "register_activation",
]

LEAKY_SLOPE = 0.01
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erf(z):
    """Error function on NumPy (scipy.special) or CuPy (cupyx.scipy.special)."""
    xp = array_namespace(z)
    if xp is np:
        from scipy.special import erf  # noqa: PLC0415

        return erf(z)
    from cupyx.scipy.special import erf  # noqa: PLC0415

    return erf(z)


def _sigmoid(z):
    xp = array_namespace(z)
    # 1/(1+e^{-z}) for z ≥ 0 and e^{z}/(1+e^{z}) for z < 0: no overflow, full
    # relative precision in both tails.
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0, e) / (1.0 + e)


# --- elementwise definitions (z is an array of NumPy or CuPy) ------------------


def _relu(z):
    return array_namespace(z).maximum(z, 0)


def _relu_d(z):
    return (z > 0).astype(z.dtype)


def _tanh(z):
    return array_namespace(z).tanh(z)


def _tanh_d(z):
    t = array_namespace(z).tanh(z)
    return 1 - t * t


def _leaky(z):
    return array_namespace(z).where(z > 0, z, LEAKY_SLOPE * z)


def _leaky_d(z):
    return array_namespace(z).where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype)


def _abs(z):
    return array_namespace(z).abs(z)


def _abs_d(z):
    return array_namespace(z).sign(z)


def _erf_d(z):
    return (2.0 / math.sqrt(math.pi)) * array_namespace(z).exp(-z * z)


def _sigmoid_d(z):
    s = _sigmoid(z)
    return s * (1 - s)


def _softplus(z):
    return array_namespace(z).logaddexp(0, z)


def _normal_cdf(z):
    return 0.5 * (1.0 + _erf(z / _SQRT2))


def _gelu(z):
    return z * _normal_cdf(z)


def _gelu_d(z):
    xp = array_namespace(z)
    return _normal_cdf(z) + z * _INV_SQRT2PI * xp.exp(-0.5 * z * z)


def _silu(z):
    return z * _sigmoid(z)


def _silu_d(z):
    s = _sigmoid(z)
    return s * (1 + z * (1 - s))


# --- fused (σ, σ') pairs: share the expensive transcendental --------------------


def _relu_vd(z):
    pos = z > 0
    return array_namespace(z).where(pos, z, 0).astype(z.dtype, copy=False), pos.astype(z.dtype)


def _tanh_vd(z):
    t = array_namespace(z).tanh(z)
    return t, 1 - t * t


def _sigmoid_vd(z):
    s = _sigmoid(z)
    return s, s * (1 - s)


def _silu_vd(z):
    s = _sigmoid(z)
    return z * s, s * (1 + z * (1 - s))


def _softplus_vd(z):
    return _softplus(z), _sigmoid(z)


def _gelu_vd(z):
    c = _normal_cdf(z)
    return z * c, c + z * _INV_SQRT2PI * array_namespace(z).exp(-0.5 * z * z)


# --- SymPy expressions (imported lazily: sympy is slow to import) -------------


def _sym_relu(x):
    import sympy as sp  # noqa: PLC0415

    return sp.Piecewise((0, x < 0), (x, True))


def _sym_leaky(x):
    import sympy as sp  # noqa: PLC0415

    return sp.Piecewise((sp.Rational(1, 100) * x, x < 0), (x, True))


def _sym_abs(x):
    import sympy as sp  # noqa: PLC0415

    return sp.Abs(x)


def _sym_erf(x):
    import sympy as sp  # noqa: PLC0415

    return sp.erf(x)


def _sym_gelu(x):
    import sympy as sp  # noqa: PLC0415

    return x * (1 + sp.erf(x / sp.sqrt(2))) / 2


def _sym_tanh(x):
    import sympy as sp  # noqa: PLC0415

    return sp.tanh(x)


def _sym_sigmoid(x):
    import sympy as sp  # noqa: PLC0415

    return 1 / (1 + sp.exp(-x))


def _sym_softplus(x):
    import sympy as sp  # noqa: PLC0415

    return sp.log(1 + sp.exp(x))


def _sym_silu(x):
    import sympy as sp  # noqa: PLC0415

    return x / (1 + sp.exp(-x))


@dataclass(frozen=True)
class Activation:
    """An activation σ with derivative σ'.

    Parameters
    ----------
    name : str
        Display name.
    fn, deriv : callable
        Elementwise σ(z) and σ'(z); both must accept NumPy and (if used on a
        GPU) CuPy arrays and return an array of the same module and shape.
    sympy_expr : callable, optional
        ``sympy_expr(x)`` returns σ as a SymPy expression in the symbol ``x``;
        used for closed-form Hermite coefficients.  None if no closed form is
        wanted.
    closed_form_hermite : bool
        Whether the Hermite coefficients of σ are known to have closed forms
        (so the symbolic path is worth trying).
    parts : tuple of (float, Activation)
        For a linear combination σ = Σ c_j σ_j, its parts; empty otherwise.
    fused : callable, optional
        ``fused(z) -> (σ(z), σ'(z))`` computed together (e.g. tanh once for
        both); by default fn and deriv are called separately.
    relu_tanh : (float, float), optional
        (a, b) when σ = a·relu + b·tanh exactly, with relu'(0) = 0; None
        otherwise (the default for a user's own σ).  The compiled kernels
        serve exactly this family and ask only this attribute, so any σ
        without it runs on the NumPy/BLAS path, unchanged.
    """

    name: str
    fn: Callable
    deriv: Callable
    sympy_expr: Callable | None = None
    closed_form_hermite: bool = False
    parts: tuple = field(default=())
    fused: Callable | None = None
    relu_tanh: tuple | None = None

    def __call__(self, z):
        return self.fn(z)

    def value_and_derivative(self, z):
        """Return (σ(z), σ'(z)), sharing work between the two when possible."""
        if self.fused is not None:
            return self.fused(z)
        return self.fn(z), self.deriv(z)

    @property
    def is_combination(self) -> bool:
        return len(self.parts) > 0


def _combine(name: str, parts: tuple) -> Activation:
    """σ = Σ c_j σ_j as an Activation whose parts are kept for Hermite sums."""

    def weighted_sum(part_fn, z):
        """Σ c_j part_fn(σ_j)(z), skipping the product when c_j = 1."""
        out = None
        for c, act in parts:
            term = part_fn(act)(z) if c == 1 else c * part_fn(act)(z)
            out = term if out is None else out + term
        return out

    def fn(z):
        return weighted_sum(lambda act: act.fn, z)

    def deriv(z):
        return weighted_sum(lambda act: act.deriv, z)

    def fused(z):
        F = D = None
        for c, act in parts:
            f, g = act.value_and_derivative(z)
            if c != 1:
                f, g = c * f, c * g
            F = f if F is None else F + f
            D = g if D is None else D + g
        return F, D

    def combined_sympy(x):
        return sum(c * act.sympy_expr(x) for c, act in parts)

    sym = combined_sympy if all(act.sympy_expr is not None for _, act in parts) else None
    relu_tanh = None  # Σ c_j (a_j, b_j) when every part is of the form a·relu + b·tanh
    if all(act.relu_tanh is not None for _, act in parts):
        relu_tanh = (sum(float(c) * act.relu_tanh[0] for c, act in parts),
                     sum(float(c) * act.relu_tanh[1] for c, act in parts))

    return Activation(
        name=name,
        fn=fn,
        deriv=deriv,
        sympy_expr=sym,
        closed_form_hermite=all(act.closed_form_hermite for _, act in parts),
        parts=parts,
        fused=fused,
        relu_tanh=relu_tanh,
    )


_REGISTRY: dict[str, Activation] = {}


def register_activation(act: Activation, *, overwrite: bool = False) -> Activation:
    """Add ``act`` to the registry under ``act.name`` (lower-case)."""
    key = act.name.lower()
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"activation {act.name!r} is already registered")
    _REGISTRY[key] = act
    return act


for _act in (
    Activation("relu", _relu, _relu_d, _sym_relu, True, fused=_relu_vd, relu_tanh=(1.0, 0.0)),
    Activation("tanh", _tanh, _tanh_d, _sym_tanh, False, fused=_tanh_vd, relu_tanh=(0.0, 1.0)),
    Activation("leaky_relu", _leaky, _leaky_d, _sym_leaky, True),
    Activation("abs", _abs, _abs_d, _sym_abs, True),
    Activation("erf", _erf, _erf_d, _sym_erf, True),
    Activation("sigmoid", _sigmoid, _sigmoid_d, _sym_sigmoid, False, fused=_sigmoid_vd),
    Activation("softplus", _softplus, _sigmoid, _sym_softplus, False, fused=_softplus_vd),
    Activation("gelu", _gelu, _gelu_d, _sym_gelu, True, fused=_gelu_vd),
    Activation("silu", _silu, _silu_d, _sym_silu, False, fused=_silu_vd),
):
    register_activation(_act)
register_activation(_combine("relu+tanh", ((1.0, _REGISTRY["relu"]), (1.0, _REGISTRY["tanh"]))))


def known_activations() -> list[str]:
    """Names accepted by :func:`get_activation` (combinations with + also work)."""
    return sorted(_REGISTRY)


# Largest |c| in a spec 'c*name': features scale by c and their Gram by c², which must stay far below the
# float64 overflow at ~1e308 (1e100 leaves room for p·n sums of squares).
MAX_COEFFICIENT = 1e100

_TERM = re.compile(r"^\s*(?:([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


def get_activation(spec) -> Activation:
    """Resolve a name, a ``"a*name+b*name"`` combination, or an Activation.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    TypeError
        For anything that is neither a string nor an Activation.
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"activation must be a name or an rftheory.Activation, got {type(spec).__name__}"
        )
    key = spec.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    terms = key.split("+")
    parts = []
    for term in terms:
        m = _TERM.match(term)
        if m is None or m.group(2) not in _REGISTRY or _REGISTRY[m.group(2)].is_combination:
            raise ValueError(
                f"unknown activation {spec!r}; known: {', '.join(known_activations())} "
                "(or sums of them such as '0.5*relu+tanh')"
            )
        coef = float(m.group(1)) if m.group(1) else 1.0
        if not math.isfinite(coef) or abs(coef) > MAX_COEFFICIENT:
            raise ValueError(
                f"activation {spec!r}: coefficient {m.group(1)} of {m.group(2)} must be finite with magnitude "
                f"at most {MAX_COEFFICIENT:g} (the feature Gram scales as its square)"
            )
        parts.append((coef, _REGISTRY[m.group(2)]))
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    return _combine(spec.strip(), tuple(parts))
