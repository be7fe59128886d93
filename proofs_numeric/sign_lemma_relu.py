"""Sign lemma: φ(x) − φ(−x) = Vx exactly for ReLU, so ReLU features are even modulo col([1, V]).

relu(z) − relu(−z) = z holds exactly in floating point (one side is 0), hence
φ(x) − φ(−x) = Vx.  More generally the Hermite parity report
(rftheory.theory.hermite.parity_report) predicts, from the coefficients alone, whether
a per-sample sign flip is invisible modulo col([1, V]) (purely odd/even σ, or
one nonlinear parity plus an affine part: relu, sigmoid, gelu, ...) or visible
(both nonlinear parities: relu + tanh).  Measured: the relative residual of
φ(−x_i) on span{φ(x_i), 1, columns of V} (dimension ≤ d + 2 < p), and of φ(−x_i)
on span Φ of all samples (exactly 0 for purely odd/even σ).

Verdicts: the measured residuals against the parity prediction.  Predicted
identifiable: the flip residual modulo col([1, V]) is ≥ SIGN_VISIBLE = 1e-3.
Predicted ambiguous or exactly symmetric: it is ≤ ROUNDOFF_RESIDUAL = 1e-10,
and for an exact symmetry so is the residual on span Φ — both round-off,
since then φ(−x) = ±φ(x) (+ a·1 + b·Vx) identically.  These rows therefore
test the prediction, which reads the Hermite coefficients μ_k for k ≤ 20 and
counts |μ_k| > 1e-10 + its error bound as non-zero: they fail for a σ whose
parity-breaking part lies below that tolerance or above that order (e.g.
|z| + 0.1·h_21(z), read as even; tests/theory/test_sign_verdicts.py).

Run: ``python -m proofs_numeric.sign_lemma_relu [--full]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from proofs_numeric._common import ClaimReport, configure, module_main, seed_note, seeded_problems
from rftheory.theory.hermite import IDENTIFIABLE, SIGN_SYMMETRIC
from rftheory.theory.identifiability import ROUNDOFF_RESIDUAL, SIGN_VISIBLE, Check, sign_lemma

NAME = "Sign lemma (ReLU) and parity predictions"
CLAIM = ("ReLU: φ(x) − φ(−x) = Vx exactly, so a sample's sign is invisible modulo col([1, V]); the Hermite "
         "parities predict which σ share this (odd/even ± affine) and which do not (relu + tanh)")

SIZES = {
    "tiny": dict(n=3, d=6, mults=(4, 32), seeds=1, activations=("relu", "tanh", "relu+tanh")),
    "small": dict(n=4, d=8, mults=(4, 16, 64), seeds=2,
                  activations=("relu", "leaky_relu", "tanh", "abs", "sigmoid", "gelu", "relu+tanh")),
    "full": dict(n=8, d=16, mults=(4, 16, 64, 256), seeds=5,
                 activations=("relu", "leaky_relu", "tanh", "abs", "erf", "sigmoid", "softplus", "gelu", "silu",
                              "relu+tanh", "0.5*relu+tanh")),
}

EXACT = 4 * np.finfo(np.float64).eps  # relu(z) − relu(−z) − z in floating point


def run(size: str = "small", seeds=None) -> ClaimReport:
    cfg, seed_list = configure(SIZES, size, seeds)
    n, d = cfg["n"], cfg["d"]
    rows, checks, notes = [], [], []
    for act in cfg["activations"]:
        name = act if isinstance(act, str) else act.name  # a name, a sum of names, or an Activation
        aff_all, flip_all, ident_all, pred = [], [], [], None
        for mult in cfg["mults"]:
            p = mult * d
            aff, flip, ident = [], [], []
            for X, model in seeded_problems(n, d, p, act, seed_list):
                sl = sign_lemma(X, model)
                aff.append(sl.affine_residual)
                flip.append(sl.span_flip_residual)
                ident.append(sl.identity_error)
                pred = sl.prediction
            rows.append([name, pred, p, max(ident), min(aff), max(aff), max(flip)])
            aff_all += aff
            flip_all += flip
            ident_all += ident
        if name == "relu":  # an identity of floating point (one side is 0): reported, not a verdict
            notes.append(f"relu: max|φ(x) − φ(−x) − Vx|/max|Vx| = {max(ident_all):.2e} (exact identity, ≤ 4ε)")
        if pred == IDENTIFIABLE:
            checks.append(Check(f"{name}: min flip residual mod col([1,V])", min(aff_all), SIGN_VISIBLE, ">=", pred))
        else:
            checks.append(Check(f"{name}: max flip residual mod col([1,V])", max(aff_all), ROUNDOFF_RESIDUAL, "<=",
                                pred))
        if pred == SIGN_SYMMETRIC:
            checks.append(Check(f"{name}: max residual of φ(−x_i) on span Φ", max(flip_all), ROUNDOFF_RESIDUAL, "<=",
                                "exact symmetry: the span ignores signs"))
    headers = ["σ", "parity prediction", "p", "|φ(x)−φ(−x)−Vx| rel.", "mod col([1,V]) min", "mod col([1,V]) max",
               "on span Φ max"]
    config = (f"n={n}, d={d}, p = d·{list(cfg['mults'])}, {seed_note(seed_list)}; "
              "residuals are relative, max over samples")
    return ClaimReport(NAME, CLAIM, size, config, headers, rows, checks, notes)


main = module_main(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
