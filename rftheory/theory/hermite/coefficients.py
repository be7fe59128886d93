r"""μ_k(σ) = E[σ(g) h_k(g)]: :func:`hermite_coefficients`, and which path produces each number.

How the numbers are produced (``HermiteExpansion.methods``)
-----------------------------------------------------------
``"closed-form"`` / ``"sympy-exact"``
    σ is a finite combination of x^n·B(x), B ∈ {1, H, erf(c x), exp(−a x²)}:
    exact recurrences (:mod:`.closed_form`), evaluated in mpmath at two
    precisions, or in SymPy with ``exact=True``.
``"sympy-integrate"``
    ``exact=True`` for a SymPy expression not of that form:
    ``sympy.integrate`` under a wall-clock budget (:mod:`.symbolic`); the
    orders it did not finish fall back to the numeric path.
``"quad"`` / ``"mpmath"``
    Adaptive quadrature or mpmath.quad (:mod:`.quadrature`).
``"sum-of-parts[...]"``
    A linear combination Σ c_j σ_j with a part lacking a closed form is
    computed as Σ c_j μ_k(σ_j) (bound Σ|c_j| bound_j); E[σ²] of the
    combination is integrated directly (cross terms).  Combinations of
    closed-form parts are merged into one closed form instead.

Results are cached (:mod:`.cache`).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .cache import disk_load, disk_store, memory_get, remember
from .closed_form import closed_form_expansion
from .expansion import HermiteExpansion, make_expansion
from .polynomials import check_order
from .quadrature import mpmath_all, numeric_expansion, quad_second_moment
from .spec import Options, Spec, resolve
from .symbolic import symbolic_budget

__all__ = ["hermite_coefficients"]


def _sum_of_parts(spec: Spec, K: int, opts: Options) -> HermiteExpansion:
    """μ_k(Σ c_j σ_j) = Σ c_j μ_k(σ_j), bound Σ|c_j| bound_j; E[σ²] of the sum integrated directly."""
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
        e2v, e2err = quad_second_moment(spec.fn)
        e2m = "quad"
    return make_expansion(spec, vals, methods, exact, bounds, e2v, e2err, e2m)


def _mpmath_combo_second_moment(spec: Spec, dps: int):
    import sympy as sp  # noqa: PLC0415

    x = sp.Symbol("x", real=True)
    expr = 0
    for c, p in spec.parts:
        e, xp_ = p.sym()
        expr = expr + sp.Rational(str(Fraction(repr(c)))) * e.xreplace({xp_: x})
    tmp = Spec(spec.name, None, None, "numeric", spec.fn, sym=lambda: (expr, x))
    _, _, v, e = mpmath_all(tmp, 0, dps)
    return v, e


def _compute(spec: Spec, K: int, opts: Options) -> HermiteExpansion:
    """μ_0..μ_K by the path ``spec.kind`` and ``opts`` select (see the module docstring)."""
    if spec.kind == "combo":
        return _sum_of_parts(spec, K, opts)
    if spec.kind == "terms" and not opts.force_numeric:
        return closed_form_expansion(spec, K, opts)
    prefix = None
    if opts.exact and spec.try_integrate and not opts.force_numeric and opts.symbolic_timeout:
        prefix = symbolic_budget(spec, K, opts.symbolic_timeout)
    return numeric_expansion(spec, K, opts, prefix)


def _get(spec: Spec, K: int, opts: Options, use_cache: bool = True) -> HermiteExpansion:
    """The memory cache, else the disk cache, else :func:`_compute` (then remembered in both)."""
    mkey = None if spec.mem_key is None else (spec.mem_key, opts.key())
    if use_cache and mkey is not None:
        hit = memory_get(mkey)
        if hit is not None and hit.order >= K:
            return hit.truncate(K)
    dkey = None if spec.key is None else (spec.key, opts.key())
    if use_cache and dkey is not None:
        hit = disk_load(dkey, spec.fn)
        if hit is not None and hit.order >= K:
            if mkey is not None:
                remember(mkey, hit)
            return hit.truncate(K)
    exp = _compute(spec, K, opts)
    if use_cache:
        if mkey is not None:
            remember(mkey, exp)
        if dkey is not None:
            disk_store(dkey, exp)
    return exp


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
    K = check_order(order)
    if numeric not in ("quad", "mpmath"):
        raise ValueError(f"numeric must be 'quad' or 'mpmath', got {numeric!r}")
    if numeric == "mpmath" and (isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 15):
        raise ValueError(f"dps must be an integer >= 15, got {dps!r}")
    spec = resolve(activation)
    exact = bool(exact)
    needs_budget = exact and spec.try_integrate and not force_numeric
    opts = Options(
        exact=exact,
        numeric=numeric,
        dps=int(dps) if numeric == "mpmath" else None,
        force_numeric=bool(force_numeric),
        symbolic_timeout=float(symbolic_timeout) if needs_budget else None,
    )
    return _get(spec, K, opts, use_cache)
