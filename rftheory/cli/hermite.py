"""``rftheory hermite ACTIVATION``: Hermite coefficients and the parity verdict.

Prints a table of k, μ_k = E[σ(g) h_k(g)] (h_k = He_k/√k!), the exact form
where one was computed (``--exact``), the method and the stated error bound,
then E[σ²], Σ_{k≤K} μ_k², the truncation error and the sign-ambiguity
prediction of :func:`rftheory.theory.hermite.parity_report`.
"""
from __future__ import annotations

import argparse

from ._types import bounded_float, bounded_int, check_coefficients, nonneg_float

__all__ = ["add_parser", "run", "MAX_ORDER", "MAX_DPS"]

# Highest order k: each order adds one quadrature (and a SymPy integral with --exact); the kernels of this
# package use a few hundred orders at most, and 1000 orders of relu take about two seconds.
MAX_ORDER = 1000
# mpmath precision: the cost of its quadrature grows steeply with the digits (100 digits take seconds
# per table, 300 more than minutes), and no verdict needs more than double precision's 16.
MAX_DPS = 100
MAX_TIMEOUT = 3600.0  # seconds for one SymPy integral


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "hermite",
        help="Hermite coefficients μ_k of an activation and its parity verdict",
        description=(
            "Hermite coefficients μ_k = E[σ(g) He_k(g)]/√k!, g ~ N(0,1), of an activation "
            "(exact closed forms where they exist, adaptive quadrature with error bounds "
            "elsewhere), E[σ²] = Σ μ_k², and the sign-ambiguity prediction from which even "
            "(k ≥ 2) and odd (k ≥ 3) coefficients are non-zero."
        ),
    )
    p.add_argument(
        "activation",
        help="registered name (relu, tanh, ...), 'step', or a combination such as 'relu+tanh' or '0.5*relu+2*tanh'",
    )
    p.add_argument("--order", type=bounded_int(0, MAX_ORDER, "one quadrature per order"), default=10, metavar="K",
                   help=f"highest order k (default 10, at most {MAX_ORDER})")
    p.add_argument("--exact", action="store_true", help="also compute SymPy closed forms (slower)")
    p.add_argument(
        "--tol", type=nonneg_float, default=1e-10, help="|μ_k| above tol + error bound counts as non-zero (default 1e-10)"
    )
    p.add_argument(
        "--numeric",
        choices=("quad", "mpmath"),
        default="quad",
        help="numeric path for activations without closed form (default quad)",
    )
    p.add_argument("--dps", type=bounded_int(1, MAX_DPS, "mpmath's quadrature slows steeply with the digits"),
                   default=30, help=f"mpmath digits with --numeric mpmath (default 30, at most {MAX_DPS})")
    p.add_argument(
        "--timeout", type=bounded_float(0.0, MAX_TIMEOUT, "seconds"), default=5.0, help="seconds allowed to sympy.integrate with --exact (default 5)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the coefficient cache")
    p.set_defaults(func=run)
    return p


def _fmt_exact(e, width: int = 40) -> str:
    if e is None:
        return "-"
    s = str(e)
    return s if len(s) <= width else s[: width - 3] + "..."


def run(args) -> int:
    from ..theory.hermite import hermite_coefficients, parity_report  # noqa: PLC0415

    if not args.activation.strip():
        raise ValueError("ACTIVATION: expected an activation name, got an empty string")
    check_coefficients(args.activation, "ACTIVATION")
    if args.dps != 30 and args.numeric != "mpmath":
        raise ValueError(f"--dps {args.dps} applies to --numeric mpmath only")
    if args.timeout != 5.0 and not args.exact:
        raise ValueError(f"--timeout {args.timeout:g} applies to --exact only")
    exp = hermite_coefficients(
        args.activation,
        args.order,
        exact=args.exact,
        numeric=args.numeric,
        dps=args.dps,
        symbolic_timeout=args.timeout,
        use_cache=not args.no_cache,
    )
    rep = parity_report(exp, args.order, tol=args.tol)
    exact_strs = [_fmt_exact(e) for e in exp.exact]
    w_exact = max(len("exact form"), *(len(s) for s in exact_strs))
    w_method = max(len("method"), *(len(m) for m in exp.methods))
    print(f"Hermite coefficients of {exp.activation}: mu_k = E[sigma(g) He_k(g)]/sqrt(k!), g ~ N(0,1)")
    header = f"{'k':>3}  {'mu_k':>24}  {'exact form':<{w_exact}}  {'method':<{w_method}}  {'error bound':>11}"
    print(header)
    print("-" * len(header))
    for k in range(exp.order + 1):
        print(
            f"{k:>3}  {exp.coefficients[k]:>24.16e}  {exact_strs[k]:<{w_exact}}  "
            f"{exp.methods[k]:<{w_method}}  {exp.error_bounds[k]:>11.1e}"
        )
    print()
    e2 = f"{exp.second_moment:.16g}"
    if exp.second_moment_exact is not None:
        e2 += f"  (= {exp.second_moment_exact})"
    labels = ("E[sigma^2]", f"sum_(k<={exp.order}) mu_k^2", "truncation error")
    w = max(map(len, labels))
    print(f"{labels[0]:<{w}} = {e2}   [{exp.second_moment_method}, ± {exp.second_moment_error:.1e}]")
    print(f"{labels[1]:<{w}} = {exp.partial_sum:.16g}")
    print(f"{labels[2]:<{w}} = {exp.truncation_error:.3e}   (± {exp.truncation_error_bound:.1e}; bounds the")
    print(f"{'':<{w}}   entrywise error of the order-{exp.order} kernel on the sphere)")
    print()
    ev = ", ".join(map(str, rep.even_nonzero)) or "none"
    od = ", ".join(map(str, rep.odd_nonzero)) or "none"
    print(f"non-zero even k >= 2:  {ev}")
    print(f"non-zero odd  k >= 3:  {od}")
    print(f"mu_0 != 0: {rep.mu0_nonzero}   mu_1 != 0: {rep.mu1_nonzero}")
    print(f"parity verdict: {rep.prediction}")
    print(f"  {rep.explanation}")
    return 0
