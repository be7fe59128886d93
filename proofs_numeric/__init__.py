"""Numerical checks of the theorems and lemmas behind the law of data reconstruction.

One module per claim; each prints its claim in one line, the measured figures
over a grid of sizes and seeds, and PASS/FAIL verdicts that compare measured
numbers with stated thresholds (rftheory.theory.identifiability.Check):

* theorem1_spurious_gap      — Theorem 1, the spurious gap vs p/(dn)
* theorem2_distinctness      — Theorem 2 (n = 2), distinct candidates near one sample
* lemma_kernel_concentration — ‖ΦΦᵀ/p − K∞‖ vs p
* lemma_lambda_min           — λ_min(ΦΦᵀ)/p vs λ_min(K∞), rank of Φ
* lemma_feature_norm         — ‖φ(x)‖²/p vs E[σ²]
* sign_lemma_relu            — φ(x) − φ(−x) = Vx for ReLU, parity predictions

Run one with ``python -m proofs_numeric.<module> [--full]`` and all of them
with ``python -m proofs_numeric.run_all [--full] [--markdown]``.
"""
