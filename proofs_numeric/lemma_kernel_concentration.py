"""Kernel concentration: ‖ΦΦᵀ/p − K∞‖ shrinks like p^{-1/2}, below its matrix-Bernstein and union-bound ceilings.

K∞ = Σ_k μ_k² (XXᵀ/d)^{∘k} comes from rftheory.theory.hermite.kernel_limit (Hermite
series, order 60, with its truncation bound).  Entry (i, j) of ΦΦᵀ/p is a mean
of p i.i.d. products σ(⟨v_k, x_i⟩)σ(⟨v_k, x_j⟩), so E‖ΦΦᵀ/p − K∞‖_F² = Σ v_ij/p;
the ceilings are those of rftheory.theory.identifiability.kernel_concentration
(matrix Bernstein at level α = 0.01 with plug-in constants for the operator
norm, a Gaussian union bound at α = 0.01 for the max norm).  The decay exponent is the least-squares slope of
log(mean operator error) against log p.

Run: ``python -m proofs_numeric.lemma_kernel_concentration [--full]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from proofs_numeric._common import ClaimReport, configure, kernel_config, module_main, seeded_problems
from rftheory.theory.identifiability import Check, kernel_concentration

NAME = "Lemma: kernel concentration"
CLAIM = "ΦΦᵀ/p → K∞ = Σ_k μ_k² (XXᵀ/d)^{∘k} at rate p^{-1/2}, in operator and max norm"

SIZES = {
    "tiny": dict(n=6, d=8, ps=(64, 256, 1024), seeds=2, activations=("relu+tanh",)),
    "small": dict(n=8, d=10, ps=(64, 256, 1024, 4096), seeds=3, activations=("relu+tanh", "relu", "tanh")),
    "full": dict(n=20, d=20, ps=(64, 256, 1024, 4096, 16384, 65536), seeds=5,
                 activations=("relu+tanh", "relu", "tanh", "abs")),
}

SLOPE = -0.5
SLOPE_TOL = 0.15  # |fitted exponent + 1/2| ≤ 0.15


def run(size: str = "small", seeds=None) -> ClaimReport:
    cfg, seed_list = configure(SIZES, size, seeds)
    n, d = cfg["n"], cfg["d"]
    rows, checks = [], []
    for act in cfg["activations"]:
        op_over, max_over = 0.0, 0.0  # worst measured/ceiling ratios
        mean_op = []
        for p in cfg["ps"]:
            res = [kernel_concentration(X, model) for X, model in seeded_problems(n, d, p, act, seed_list)]
            op = np.array([r.op_error for r in res])
            mx = np.array([r.max_error for r in res])
            op_c = np.array([r.op_ceiling for r in res])
            mx_c = np.array([r.max_ceiling for r in res])
            op_over = max(op_over, float(np.max(op / op_c)))
            max_over = max(max_over, float(np.max(mx / mx_c)))
            mean_op.append(op.mean())
            rows.append([act, p, op.mean(), op.max(), op_c.min(), op.mean() * np.sqrt(p), mx.max(), mx_c.min(),
                         res[0].kernel_bound])
        slope = float(np.polyfit(np.log(cfg["ps"]), np.log(mean_op), 1)[0])
        checks.append(Check(f"{act}: max ‖E‖_op/ceiling", op_over, 1.0, "<=", "matrix Bernstein, α = 0.01"))
        checks.append(Check(f"{act}: max max|E_ij|/ceiling", max_over, 1.0, "<=", "Gaussian union bound α=0.01"))
        checks.append(Check(f"{act}: |fitted exponent + 1/2|", abs(slope - SLOPE), SLOPE_TOL, "<=",
                            f"fitted exponent {slope:.3f}"))
    headers = ["σ", "p", "‖E‖_op mean", "‖E‖_op max", "op ceiling (min)", "√p·‖E‖_op", "max|E_ij| max",
               "max ceiling (min)", "K∞ trunc. bound"]
    return ClaimReport(NAME, CLAIM, size, kernel_config(n, d, seed_list), headers, rows, checks)


main = module_main(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
