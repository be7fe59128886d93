"""Theorem 2 (n = 2, distinctness): two candidates near the same x_1 cannot reproduce span{φ(x_1), φ(x_2)}.

For X = (x_1, x_2) on the √d-sphere the span mismatch of a candidate pair is
M(x̂_1, x̂_2) = ‖P⊥_Φ̂ Φᵀ‖_F/‖Φ‖_F (relative residual of the true features on the
candidates' span).  It is minimised over pairs with both ‖x̂_k − x_1‖/√d ≤ ε
(rftheory.theory.identifiability.distinctness_check) for each p/d on the grid and each
seed (data seed s, V seed 1000+s).

Run: ``python -m proofs_numeric.theorem2_distinctness [--full]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from proofs_numeric._common import ClaimReport, configure, module_main, seed_note, seeded_data, seeded_model
from rftheory.theory.identifiability import MISMATCH_FLOOR, Check, distinctness_check

NAME = "Theorem 2: distinctness (n = 2)"
CLAIM = (
    "two candidates that both sit within ε of x_1 cannot reproduce span{φ(x_1), φ(x_2)}: the smallest span "
    "mismatch they reach stays away from 0 as p/d grows (for p ≤ d + 1 each candidate's d − 1 degrees of freedom "
    "cover the p − 2 conditions φ(x̂_k) ∈ span Φ, so the mismatch can vanish there)"
)

SIZES = {
    "tiny": dict(d=5, ratios=(2, 8), seeds=1, starts=4, max_iter=150, eps=0.3),
    "small": dict(d=5, ratios=(1, 2, 4, 8, 16, 32, 64), seeds=3, starts=6, max_iter=200, eps=0.3),
    "full": dict(d=10, ratios=(1, 2, 4, 8, 16, 32, 64, 128), seeds=5, starts=16, max_iter=400, eps=0.3),
}

ACTIVATION = "relu+tanh"
LARGE_RATIO = 4  # p/d from which the mismatch must stay ≥ MISMATCH_FLOOR
CONTROL_ZERO = 1e-4  # at p = d/2 + 1 the pair has spare freedom: the optimiser must reach ≈ 0


def run(size: str = "small", seeds=None) -> ClaimReport:
    cfg, seed_list = configure(SIZES, size, seeds)
    d, eps = cfg["d"], cfg["eps"]
    p_control = d // 2 + 1  # ≤ d + 1: the pair has d + 1 − p ≥ d/2 spare degrees of freedom each
    ps = [p_control] + [int(r * d) for r in cfg["ratios"]]
    ratios = [p / d for p in ps]
    M = np.full((len(ps), len(seed_list)), np.nan)
    ang = np.full_like(M, np.nan)
    truth = 0.0
    for si, s in enumerate(seed_list):
        X = seeded_data(2, d, s)
        for ri, p in enumerate(ps):
            model = seeded_model(p, d, ACTIVATION, s)
            r = distinctness_check(X, model, eps=eps, starts=cfg["starts"], max_iter=cfg["max_iter"], seed=s)
            M[ri, si] = r.mismatch
            ang[ri, si] = r.angle
            truth = max(truth, r.truth_mismatch)
    rows = [
        [ratio, ps[ri], float(M[ri].min()), float(np.median(M[ri])), float(np.median(ang[ri]))]
        for ri, ratio in enumerate(ratios)
    ]
    headers = ["p/d", "p", "min mismatch (min over seeds)", "median", "largest principal angle (rad, median)"]
    checks = []
    big = [ri for ri, r in enumerate(ratios) if r >= LARGE_RATIO]
    if big:
        checks.append(Check(f"min mismatch over p/d ≥ {LARGE_RATIO}", float(M[big].min()), MISMATCH_FLOOR, ">=",
                            "stays away from 0"))
    checks.append(Check(f"control: max mismatch at p = d/2 + 1 = {p_control}", float(M[0].max()), CONTROL_ZERO, "<=",
                        "p ≤ d + 1: a pair near x_1 can reach span Φ; the search must find it"))
    config = (f"d={d}, n=2, σ={ACTIVATION}, ε={eps:g}, {seed_note(seed_list)}, "
              f"{cfg['starts']} starting pairs per minimisation")
    notes = [f"mismatch of the true pair (0 by construction, the projection's round-off): {truth:.2e}"]
    return ClaimReport(NAME, CLAIM, size, config, headers, rows, checks, notes)


main = module_main(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
