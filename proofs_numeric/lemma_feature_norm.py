"""Feature norms: ‖φ(x)‖²/p concentrates at E[σ(g)²] with s.d. ((E σ⁴ − (E σ²)²)/p)^{1/2}.

For ‖x‖ = √d and v_k ~ N(0, I/d), ⟨v_k, x⟩ ~ N(0, 1) exactly, so ‖φ(x)‖²/p is a
mean of p i.i.d. σ(g)².  E[σ²] and E[σ⁴] come from adaptive quadrature
(rftheory.theory.identifiability.activation_moments), independently of V; E[σ²] is
cross-checked against the Hermite module's Parseval second moment.  Verdict:
the largest standardised deviation over all samples, p and seeds stays below
z = (2 ln(2N/α))^{1/2}, N the number of values tested, α = 0.01 (a Gaussian
tail: the grid starts at p = 400, where the skewness of the mean of σ(g)², about
γ/√p, is small enough for it).

Run: ``python -m proofs_numeric.lemma_feature_norm [--full]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from proofs_numeric._common import ClaimReport, configure, module_main, seed_note, seeded_problems
from rftheory.backend import to_numpy
from rftheory.theory.hermite import hermite_coefficients
from rftheory.theory.identifiability import Check, activation_moments, feature_norms, gaussian_union_z

NAME = "Lemma: feature norm"
CLAIM = "for ‖x‖ = √d, ‖φ(x)‖²/p = E[σ(g)²] ± O(p^{-1/2}) with the exact CLT scale ((Eσ⁴ − (Eσ²)²)/p)^{1/2}"

SIZES = {
    "tiny": dict(n=8, d=8, ps=(400, 1600), seeds=2, activations=("relu+tanh", "relu")),
    "small": dict(n=16, d=10, ps=(400, 1600, 4096), seeds=3,
                  activations=("relu+tanh", "relu", "tanh", "abs", "gelu")),
    "full": dict(n=64, d=20, ps=(400, 1600, 6400, 25600), seeds=5,
                 activations=("relu+tanh", "relu", "tanh", "abs", "gelu", "sigmoid", "softplus")),
}

ALPHA = 0.01
MOMENT_AGREEMENT = 1e-8  # quadrature vs Hermite (Parseval) E[σ²], relative


def run(size: str = "small", seeds=None) -> ClaimReport:
    cfg, seed_list = configure(SIZES, size, seeds)
    n, d = cfg["n"], cfg["d"]
    count = n * len(cfg["ps"]) * len(seed_list)
    z = gaussian_union_z(count, ALPHA)
    rows, checks = [], []
    for act in cfg["activations"]:
        m2, m4 = activation_moments(act)
        herm = hermite_coefficients(act, 20).second_moment
        worst = 0.0
        for p in cfg["ps"]:
            vals, zs, sd = [], [], None
            for X, model in seeded_problems(n, d, p, act, seed_list):
                fn = feature_norms(X, model, moments=(m2, m4))
                vals.append(to_numpy(fn.norms_sq))
                zs.append(fn.max_z)
                sd = fn.sd
            vals = np.concatenate(vals)
            worst = max(worst, max(zs))
            rows.append([act, p, m2, float(vals.mean()), float(vals.std(ddof=1)), sd, max(zs)])
        checks.append(Check(f"{act}: max |‖φ‖²/p − Eσ²|/sd", worst, z, "<=", f"union bound over {count} values, α={ALPHA}"))
        checks.append(Check(f"{act}: |Eσ² quad − Hermite|/Eσ²", abs(m2 - herm) / m2, MOMENT_AGREEMENT, "<=",
                            "two independent computations"))
    headers = ["σ", "p", "E[σ²]", "mean ‖φ‖²/p", "s.d. measured", "s.d. predicted", "max |z|"]
    config = f"n={n} samples per seed, d={d}, {seed_note(seed_list)}"
    return ClaimReport(NAME, CLAIM, size, config, headers, rows, checks)


main = module_main(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
