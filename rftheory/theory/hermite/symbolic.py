r"""``sympy.integrate`` of μ_k under a wall-clock budget, in a separate process.

``"sympy-integrate"``: for ``exact=True`` and a SymPy expression that is not
of the closed-form kind, μ_k = ∫ σ He_k e^{−x²/2}/√(2π k!) is integrated
symbolically order by order in a child process; whatever has not arrived
when ``symbolic_timeout`` seconds have passed is abandoned (the child is
terminated) and those orders fall back to the numeric path.  Never hangs.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only
    from .spec import Spec

__all__ = ["symbolic_budget"]


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


def symbolic_budget(spec: Spec, K: int, timeout: float) -> dict:
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
