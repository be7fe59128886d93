"""Smallest eigenvalue: λ_min(ΦΦᵀ)/p → λ_min(K∞) > 0, and Φ has full rank n.

By Weyl's inequality |λ_min(ΦΦᵀ)/p − λ_min(K∞)| ≤ ‖ΦΦᵀ/p − K∞‖_op, so the
deviation must stay below the operator-norm ceiling of the kernel lemma
(rftheory.theory.identifiability.kernel_concentration: the matrix Bernstein deviation
t(α) = Lℓ/3 + ((Lℓ/3)² + 2s²ℓ)^{1/2}, ℓ = ln(2n/α), α = 0.01, plus n·trunc).  λ_min(K∞) > 0 is certified from the Hermite kernel minus
its truncation bound n·b (a perturbation of at most n·b in operator norm).
The numerical rank uses rftheory.theory.span's rule σ_i > max(n, p)·ε·σ_1.

Run: ``python -m proofs_numeric.lemma_lambda_min [--full]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from proofs_numeric._common import ClaimReport, configure, kernel_config, module_main, seeded_problems
from rftheory.theory.identifiability import Check, feature_rank, kernel_concentration

NAME = "Lemma: λ_min and rank"
CLAIM = ("λ_min(ΦΦᵀ)/p concentrates at λ_min(K∞) > 0 (Weyl + kernel concentration), so for p ≥ n the "
         "feature matrix has full rank n and ΦΦᵀ is well conditioned")

SIZES = {
    "tiny": dict(n=6, d=8, ps=(48, 192, 768), seeds=2, activations=("relu+tanh",)),
    "small": dict(n=8, d=10, ps=(64, 256, 1024, 4096), seeds=3, activations=("relu+tanh", "relu", "tanh")),
    "full": dict(n=20, d=20, ps=(160, 640, 2560, 10240, 40960), seeds=5, activations=("relu+tanh", "relu", "tanh")),
}

HALF = 0.5  # λ_min(ΦΦᵀ)/p ≥ ½ λ_min(K∞) on the whole grid (p ≥ 8n)


def run(size: str = "small", seeds=None) -> ClaimReport:
    cfg, seed_list = configure(SIZES, size, seeds)
    n, d = cfg["n"], cfg["d"]
    rows, checks = [], []
    for act in cfg["activations"]:
        worst_weyl, worst_ratio, min_cert, rank_def = 0.0, np.inf, np.inf, 0
        for p in cfg["ps"]:
            lam_e, lam_i, dev, ceil, ranks = [], [], [], [], []
            for X, model in seeded_problems(n, d, p, act, seed_list):
                kc = kernel_concentration(X, model)
                lam_e.append(kc.lambda_min_emp)
                lam_i.append(kc.lambda_min_inf)
                dev.append(abs(kc.lambda_min_emp - kc.lambda_min_inf))
                ceil.append(kc.op_ceiling)
                min_cert = min(min_cert, kc.lambda_min_inf - n * kc.kernel_bound)
                r, pred = feature_rank(X, model)
                ranks.append(r)
                rank_def = max(rank_def, pred - r)
            lam_e, lam_i, dev, ceil = map(np.asarray, (lam_e, lam_i, dev, ceil))
            worst_weyl = max(worst_weyl, float(np.max(dev / ceil)))
            worst_ratio = min(worst_ratio, float(np.min(lam_e / lam_i)))
            rows.append([act, p, float(np.median(lam_i)), float(np.median(lam_e)), float(np.min(lam_e / lam_i)),
                         float(np.max(dev)), float(np.min(ceil)), min(ranks)])
        checks.append(Check(f"{act}: max |Δλ_min|/ceiling", worst_weyl, 1.0, "<=", "Weyl + matrix Bernstein, α = 0.01"))
        checks.append(Check(f"{act}: min λ_min(ΦΦᵀ)/(p·λ_min(K∞))", worst_ratio, HALF, ">=",
                            f"p ≥ {min(cfg['ps'])} = {min(cfg['ps']) // n}n"))
        checks.append(Check(f"{act}: λ_min(K∞) − n·trunc (certified, min)", min_cert, 0.0, ">=", "K∞ positive definite"))
        checks.append(Check(f"{act}: max (n − numerical rank Φ)", rank_def, 0, "==", "full rank"))
    headers = ["σ", "p", "λ_min(K∞) (median)", "λ_min(ΦΦᵀ)/p (median)", "ratio (min)", "|Δ| (max)",
               "ceiling (min)", "rank Φ (min)"]
    return ClaimReport(NAME, CLAIM, size, kernel_config(n, d, seed_list), headers, rows, checks)


main = module_main(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
