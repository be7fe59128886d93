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
# # The law of data reconstruction: a phase diagram on synthetic data
#
# Random-features model f(x) = σ(Vx)ᵀθ, V ∈ R^{p×d} with N(0, 1/d) entries,
# θ = Φᵀ(ΦΦᵀ)⁻¹y the minimum-norm interpolator of n samples on the √d-sphere.
# The law (Iurada, Bombari, Tommasi, Mondelli, ICLR 2026): once p exceeds
# d·n, θ identifies the whole training set. In the ratio r = p/(dn):
#
# | regime | ratio | what happens |
# |---|---|---|
# | p < n | r < 1/d | θ cannot interpolate the labels |
# | n ≤ p ≲ dn | 1/d ≤ r ≲ 1 | interpolation, but many wrong X̂ reach loss 0 |
# | p ≳ dn | r ≳ 1 | loss 0 pins X̂ to ±X: reconstruction |
#
# `rftheory.experiments.law.sweep` runs one complete experiment per cell (data → fit →
# attack → metrics) over a grid of (σ, n, d, r, seed). A cell succeeds when
# *every* sample is recovered (sign-aware relative error ≤ 0.05); success is
# never judged by the loss. `critical_ratio` fits the transition with a
# cluster bootstrap over seeds.
#
# `python notebooks/01_law.py` runs a small grid; `--full`
# (or `RFTHEORY_NOTEBOOK_SIZE=full`) the module's default grid with three
# activations on all cores (a long run). Figures and the sweep table go to
# `--out DIR` (or `RFTHEORY_NOTEBOOK_OUT`), by default a temporary folder.

# %%
import os
import sys
from pathlib import Path

# the notebook's folder holds _notebook_setup.py (in Jupyter __file__ is undefined: the working directory)
sys.path.insert(0, str(Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()))
from _notebook_setup import IN_JUPYTER, figure_saver, notebook_settings  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

SIZE, OUT = notebook_settings("01")
FULL = SIZE == "full"
save = figure_saver(OUT)


# %% [markdown]
# ## The sweep

# %%
import numpy as np

from rftheory.experiments import law

if FULL:
    GRID = dict(activations=("relu+tanh", "relu", "tanh"), sizes=law.DEFAULT_SIZES, ratios=law.DEFAULT_RATIOS,
                seeds=law.DEFAULT_SEEDS, restarts=3, max_iter=1000, workers=os.cpu_count())
    N_BOOT = 1000
else:
    GRID = dict(activations=("relu+tanh",), sizes=((2, 6), (3, 6)), ratios=(0.25, 0.5, 1.0, 2.0, 4.0),
                seeds=(0, 1), restarts=1, max_iter=300, workers=None)
    N_BOOT = 200
result = law.sweep(**GRID, out=OUT / "law_sweep.csv", parquet=False)
print(f"{len(result.rows)} cells ({result.computed} computed, {result.resumed} resumed) in {result.wall_time:.1f} s; "
      f"table {result.out}")

# %%
summary = law.summarize(result.rows)
header = ("σ", "n", "d", "p/(dn)", "p", "regime", "success", "recovered", "sign-aware err", "median loss")
print("  ".join(f"{h:>14}" for h in header))
for g in summary:
    print("  ".join(f"{c:>14}" for c in (
        g["activation"], g["n"], g["d"], f"{g['ratio']:g}", g["p"], g["regime"], f"{g['success_rate']:.2f}",
        f"{g['recovered_fraction']:.2f}", f"{g['sign_aware_mean']:.3g}", f"{g['loss_median']:.1e}")))

# %% [markdown]
# ## Critical ratio
#
# Maximum-likelihood logistic fit of P(success | r) in ln r, with a 95 %
# percentile interval from resampling the seeds. The law predicts r_c of
# order 1, for every activation that makes samples identifiable (up to sign).

# %%
critical = law.critical_ratio(result.rows, n_boot=N_BOOT)
for c in critical:
    print(f"{c.activation:>10}: r_c ≈ {c.estimate:.3g}  [{c.low:.3g}, {c.high:.3g}] ({c.level:.0%}, {c.n_boot_valid}/"
          f"{c.n_boot} bootstrap resamples, {c.cells} cells, {c.seeds} seeds) {c.note}")

# %% [markdown]
# ## Phase diagram
#
# `rftheory.experiments.plots.plot_phase_diagram`: the success probability (top) and
# the mean sign-aware and signed errors (bottom) against p/(dn), with the
# regimes of the law shaded and the fitted r_c with its interval.

# %%
from rftheory.experiments.plots import plot_phase_diagram

fig = plot_phase_diagram(result.rows, OUT / "law_phase_diagram.png", critical=critical)
print(f"  wrote {OUT / 'law_phase_diagram.png'}")
if IN_JUPYTER:
    from IPython.display import display

    display(fig)

# %% [markdown]
# ## The loss does not show the threshold
#
# The median final loss against p/(dn): it is ≈ 0 on *both* sides of the
# threshold (below it many wrong X̂ fit θ exactly), and may stall above 0 near
# r ≈ 1 where the attack is hardest. This is why the loss alone never decides
# success.

# %%
fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
all_ratios = sorted({g["ratio"] for g in summary})
for act, n, d in sorted({(g["activation"], g["n"], g["d"]) for g in summary}):
    rows = [g for g in summary if (g["activation"], g["n"], g["d"]) == (act, n, d)]
    ax.plot([g["ratio"] for g in rows], [max(g["loss_median"], 1e-16) for g in rows], marker="o",
            label=f"{act}, n={n}, d={d}")
ax.set_xscale("log")
ax.set_yscale("log")
ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
ax.set_xticks(all_ratios, [f"{r:g}" for r in all_ratios], fontsize=7)
ax.axvline(1.0, color="black", ls="--", lw=0.8)
ax.set_xlabel("p/(dn)")
ax.set_ylabel("median final loss L")
ax.legend(fontsize=7)
save(fig, "law_loss.png")

# %% [markdown]
# ## Success per cell
#
# Success rate per (size, ratio) cell; the columns left of the dashed line
# have p < dn.

# %%
ratios = sorted({g["ratio"] for g in summary})
fig, axes = plt.subplots(1, len(GRID["activations"]), figsize=(4.5 * len(GRID["activations"]), 2.8), squeeze=False,
                         layout="constrained")
for ax, act in zip(axes[0], GRID["activations"]):
    sizes = sorted({(g["n"], g["d"]) for g in summary if g["activation"] == act})
    M = np.full((len(sizes), len(ratios)), np.nan)
    for g in summary:
        if g["activation"] == act:
            M[sizes.index((g["n"], g["d"])), ratios.index(g["ratio"])] = g["success_rate"]
    im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios], rotation=60, fontsize=7)
    ax.set_yticks(range(len(sizes)), [f"n={n}, d={d}" for n, d in sizes], fontsize=7)
    k = np.searchsorted(ratios, 1.0)
    ax.axvline(k - 0.5, color="white", ls="--")
    ax.set_xlabel("p/(dn)")
    ax.set_title(f"σ = {act}")
fig.colorbar(im, ax=axes[0].tolist(), label="success rate")
save(fig, "law_success_grid.png")
