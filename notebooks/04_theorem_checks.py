# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Theorem checks: what the identifiability results claim, measured
#
# The package does not reproduce the paper's statements; it checks their
# content numerically (DESIGN.md, "Identifiability"):
#
# * **Theorem 1** (one sample): for p ≫ dn, any x̂ on the √d-sphere whose
#   feature lies in span{φ(x_1..n)} is close to some ±x_i. Measured by the
#   single-sample residual R(x̂) = ‖P⊥_Φ φ(x̂)‖/‖φ(x̂)‖ and the *spurious gap*
#   min{R(x̂) : dist(x̂, ±X) ≥ δ}, which should grow with p/(dn) towards its
#   kernel (p → ∞) limit.
# * **Theorem 2** (n = 2): two candidates cannot both sit near x_1 and still
#   reproduce span{φ(x_1), φ(x_2)}.
# * **Lemmas**: ‖ΦΦᵀ/p − K∞‖ shrinks like p^{−1/2}; λ_min(ΦΦᵀ)/p → λ_min(K∞);
#   ‖φ(x)‖²/p → E[σ²]; the ReLU sign identity φ(x) − φ(−x) = Vx.
#
# Each check in `proofs_numeric/` prints its claim, a table and verdicts
# (a measured number against a stated threshold). This notebook runs them all
# and draws three of the quantities.
#
# `python notebooks/04_theorem_checks.py` runs the checks at their "tiny"
# size; `--full` (or `RFTHEORY_NOTEBOOK_SIZE=full`) at "full" size.
# Figures go to `--out DIR` (or `RFTHEORY_NOTEBOOK_OUT`), else a temporary folder.

# %%
import sys
from pathlib import Path

# the notebook's folder holds _notebook_setup.py (in Jupyter __file__ is undefined: the working directory)
sys.path.insert(0, str(Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()))
from _notebook_setup import figure_saver, notebook_settings, repository_root  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

SIZE, OUT = notebook_settings("04")
FULL = SIZE == "full"
save = figure_saver(OUT)
sys.path.insert(0, str(repository_root()))  # proofs_numeric/ is not part of the installed package

# %% [markdown]
# ## All checks

# %%
from proofs_numeric._common import render
from proofs_numeric.run_all import run_all, summary_rows

CHECK_SIZE = "full" if FULL else "tiny"
reports = run_all(CHECK_SIZE)
for rep in reports:
    print(render(rep))
    print()
print(f"{'check':>42}  {'module':>28}  {'passed':>7}  {'result':>6}  {'s':>6}")
for row in summary_rows(reports):
    print(f"{row[0]:>42}  {row[1]:>28}  {row[2]:>7}  {row[3]:>6}  {row[4]:>6}")
print(f"{sum(r.passed for r in reports)}/{len(reports)} checks pass at size {CHECK_SIZE}")

# %% [markdown]
# ## Theorem 1: the spurious gap against p/(dn)
#
# From the Theorem 1 report above: the median over seeds of the smallest
# residual R found farther than δ from every ±x_i, and the fraction of
# unconstrained descents that end on a true ±x_i.

# %%
import textwrap

import numpy as np

t1 = next(r for r in reports if r.module == "theorem1_spurious_gap")
col = {h: j for j, h in enumerate(t1.headers)}
ratios = np.array([row[col["p/(dn)"]] for row in t1.rows], dtype=float)
gap = np.array([row[col["gap (median)"]] for row in t1.rows], dtype=float)
landed = np.array([row[col["descents → ±x_i"]] for row in t1.rows], dtype=float)
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(ratios, gap, marker="o", label="spurious gap (median)")
ax.plot(ratios, landed, marker="s", label="descents ending at ±x_i")
ax.set_xscale("log")
ax.axvline(1.0, color="black", ls="--", lw=0.8)
ax.set_xlabel("p/(dn)")
ax.set_title("\n".join(textwrap.wrap(f"Theorem 1 ({t1.config})", 70)), fontsize=7)
ax.legend(fontsize=8)
save(fig, "theorem1_gap.png")

# %% [markdown]
# ## Kernel concentration: ‖ΦΦᵀ/p − K∞‖_op against p
#
# K∞ = Σ_k μ_k² (XXᵀ/d)^{∘k} from the Hermite coefficients; the operator-norm
# error should fall like p^{−1/2} and stay below the stated ceiling.

# %%
from rftheory.data.synthetic import synthetic_sphere
from rftheory.theory.identifiability import kernel_concentration, path_profile
from rftheory.models.random_features import RandomFeatures

n, d = (10, 20) if FULL else (4, 6)
ps = [2**k for k in range(6, 17 if FULL else 13, 2)]
X = synthetic_sphere(n, d, seed=0).X
conc = [kernel_concentration(X, RandomFeatures(p, d, "relu+tanh", seed=1000)) for p in ps]
op = np.array([c.op_error for c in conc])
ceiling = np.array([c.op_ceiling for c in conc])
slope = np.polyfit(np.log(ps), np.log(op), 1)[0]
print(f"fitted exponent of ‖ΦΦᵀ/p − K∞‖_op in p: {slope:.2f} (prediction −0.5)")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(ps, op, marker="o", label="measured")
ax.loglog(ps, ceiling, ls=":", label="stated ceiling")
ax.loglog(ps, op[0] * (np.array(ps) / ps[0]) ** -0.5, ls="--", color="grey", label="p^(−1/2)")
ax.set_xlabel("p")
ax.set_ylabel("‖ΦΦᵀ/p − K∞‖_op")
ax.set_title(f"relu+tanh, n={n}, d={d}")
ax.legend(fontsize=8)
save(fig, "kernel_concentration.png")

# %% [markdown]
# ## The residual along great circles
#
# R(x̂) along three arcs from x_0: to x_1, to a random point, and to −x_0.
# R vanishes only at the samples (and at −x_0 when σ has a sign symmetry;
# relu+tanh has none), and follows its kernel limit R∞ when p ≫ dn.

# %%
ratio = 16.0
model = RandomFeatures(int(ratio * d * n), d, "relu+tanh", seed=1000)
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for kind, colour in (("pair", "tab:blue"), ("random", "tab:orange"), ("antipodal", "tab:green")):
    prof = path_profile(X, model, kind, points=41 if FULL else 21, seed=0)
    ax.plot(prof.t, prof.residual, color=colour, label=f"{kind}: R")
    ax.plot(prof.t, prof.kernel_residual, color=colour, ls="--", label=f"{kind}: R∞ (kernel)")
ax.set_xlabel("t along the arc from x_0")
ax.set_ylabel("R(x̂) = ‖P⊥φ(x̂)‖/‖φ(x̂)‖")
ax.set_title(f"relu+tanh, n={n}, d={d}, p/(dn)={ratio:g}")
ax.legend(fontsize=7)
save(fig, "residual_paths.png")
