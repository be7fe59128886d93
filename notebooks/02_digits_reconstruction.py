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
# # Reconstructing real images from the parameters of a random-features model
#
# We train the random-features model f(x) = σ(Vx)ᵀθ (V ∈ R^{p×d} with N(0, 1/d)
# entries, θ the minimum-norm interpolator) on a few 8×8 digits from
# scikit-learn (d = 64, no download), then run the reconstruction attack of
# `rftheory.attack.reconstruct`: it sees only θ, the seed of V, σ and n, and minimises
# the projection loss L(X̂) = ‖θ − P_{rowspan σ(X̂Vᵀ)} θ‖²/‖θ‖² over X̂ on the
# √d-sphere.
#
# The law of data reconstruction says this works once p ≳ d·n. We show it on
# both sides of the threshold: above it the digits come back pixel for pixel;
# below it the loss still reaches ≈ 0 but the images are wrong.
#
# **Pictures.** Originals are drawn above, their Hungarian-matched,
# sign-corrected reconstructions below (`rftheory.data.images.save_image_grid`),
# each picture min-max scaled to [0, 1] on its own. PSNR and SSIM are computed in
# the data space (standardised pixels on the √d-sphere) with the dynamic range
# of each original.
#
# **Running.** `python notebooks/02_digits_reconstruction.py` runs the small
# size; `--full` (or `RFTHEORY_NOTEBOOK_SIZE=full`) the paper-size
# example, which is exactly `rftheory reconstruct --data digits`. Figures go to
# `--out DIR` (or `RFTHEORY_NOTEBOOK_OUT`), by default a fresh temporary folder.
# With `--cifar DIR` (or `RFTHEORY_CIFAR_DIR`) pointing at the extracted
# `cifar-10-batches-py` folder, a CIFAR-10 example runs as well.

# %%
import sys
from pathlib import Path

# the notebook's folder holds _notebook_setup.py (in Jupyter __file__ is undefined: the working directory)
sys.path.insert(0, str(Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()))
from _notebook_setup import IN_JUPYTER, notebook_settings  # noqa: E402

SIZE, OUT, CIFAR_DIR = notebook_settings("02", cifar="RFTHEORY_CIFAR_DIR")
FULL = SIZE == "full"

# %%
import numpy as np

from rftheory.data import digits
from rftheory.data.images import compare_images, save_image_grid
from rftheory.attack.metrics import chance_levels
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import reconstruct

# full = the default command `rftheory reconstruct --data digits`
CONFIG = dict(n=10, ratio=20.0, restarts=3, max_iter=3000) if FULL else dict(n=6, ratio=6.0, restarts=1, max_iter=1500)
SEED = 0
ACTIVATION = "relu+tanh"


def attack(ds, ratio, restarts, max_iter, seed=SEED, activation=ACTIVATION, dtype=np.float64):
    """Train the RF model on ds and reconstruct; return (model, result, comparison)."""
    n, d = ds.X.shape
    p = max(1, int(round(ratio * d * n)))
    model = RandomFeatures(p, d, activation, seed=seed + 1000, dtype=dtype).fit(ds.X, ds.y)
    result = reconstruct(model.theta, model, n, restarts=restarts, max_iter=max_iter, seed=seed)
    cmp = compare_images(ds.X, result.X_hat, ds.image_shape)
    return model, result, cmp


def report(label, model, result, cmp, ds):
    n, d = ds.X.shape
    s = cmp.summary()
    chance = chance_levels(ds.X, seed=SEED)
    print(f"{label}: p={model.p}, p/(dn)={model.p / (d * n):.3g}, loss {result.loss:.2e} "
          f"({result.iterations} iterations, {result.wall_time:.1f} s)")
    print(f"  recovered {cmp.errors.recovered.sum()}/{n}; sign-aware error mean {s['sign_aware_mean']:.2e} "
          f"(chance {chance['sign_aware']:.3f})")
    print(f"  PSNR mean {s['psnr_mean']:.1f} dB (min {s['psnr_min']:.1f}); SSIM mean {s['ssim_mean']:.4f} "
          f"(min {s['ssim_min']:.4f})")


def show(path):
    if IN_JUPYTER:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    print(f"  wrote {path}")


# %% [markdown]
# ## Above the threshold: p = ratio · d · n with ratio > 1

# %%
ds = digits(CONFIG["n"], seed=SEED)
model, result, above = attack(ds, CONFIG["ratio"], CONFIG["restarts"], CONFIG["max_iter"])
report("above the threshold", model, result, above, ds)
show(save_image_grid(OUT / "digits_above_threshold.png", above,
                     title=f"{ds.description}; p/(dn)={CONFIG['ratio']:g}, σ={ACTIVATION}, L={result.loss:.1e}"))

# %% [markdown]
# ## Below the threshold: p = d·n/2
#
# The attack still drives the loss to ≈ 0 — many wrong X̂ reproduce the span of
# θ when p < d·n — but the images it finds are not the training digits. Loss
# alone is never the verdict: the errors are measured against the truth.

# %%
model_b, result_b, below = attack(ds, 0.5, CONFIG["restarts"], CONFIG["max_iter"])
report("below the threshold", model_b, result_b, below, ds)
show(save_image_grid(OUT / "digits_below_threshold.png", below,
                     title=f"{ds.description}; p/(dn)=0.5, σ={ACTIVATION}, L={result_b.loss:.1e}"))

# %% [markdown]
# ## The two sides in numbers

# %%
rows = [("p/(dn)", "loss", "recovered", "PSNR mean (dB)", "SSIM mean")]
for ratio, res, cmp in ((CONFIG["ratio"], result, above), (0.5, result_b, below)):
    s = cmp.summary()
    rows.append((f"{ratio:g}", f"{res.loss:.1e}", f"{cmp.errors.recovered.sum()}/{ds.X.shape[0]}",
                 f"{s['psnr_mean']:.1f}", f"{s['ssim_mean']:.3f}"))
for r in rows:
    print("  ".join(f"{c:>15}" for c in r))
assert above.errors.recovered_fraction > below.errors.recovered_fraction, "above the threshold should recover more"

# %% [markdown]
# ## CIFAR-10 (optional)
#
# Runs when a CIFAR-10 folder is given (`--cifar DIR` or `RFTHEORY_CIFAR_DIR`):
# a binary cat-vs-dog task, per-image standardisation (each image minus its
# mean over its standard deviation, which puts it on the √d-sphere, d = 3072).
# The features are float32 here to keep V (p × 3072) in memory.

# %%
if CIFAR_DIR:
    from rftheory.data.cifar import cifar10

    cn, cratio = (4, 2.0) if FULL else (2, 1.5)
    cds = cifar10(CIFAR_DIR, cn, classes=("cat", "dog"), standardize="per-image", seed=SEED)
    cmodel, cres, ccmp = attack(cds, cratio, 1, CONFIG["max_iter"], dtype=np.float32)
    report("CIFAR-10", cmodel, cres, ccmp, cds)
    show(save_image_grid(OUT / "cifar_reconstruction.png", ccmp,
                         title=f"{cds.description}; p/(dn)={cratio:g}, L={cres.loss:.1e}"))
else:
    print("CIFAR-10 skipped: pass --cifar DIR or set RFTHEORY_CIFAR_DIR to the cifar-10-batches-py folder")
