r"""Image quality (PSNR, SSIM) and a PNG grid of originals vs reconstructions.

Images are the rows of a data matrix X ∈ R^{n×d} reshaped with
``Dataset.image_shape``: ``(H, W)`` for grey-scale (e.g. digits, (8, 8)) or
``(H, W, C)`` with the channel last (e.g. CIFAR-10, (32, 32, 3)).

Matching (:func:`compare_images`)
---------------------------------
Reconstructed rows are matched to the true rows by
:func:`rftheory.attack.metrics.reconstruction_errors` (Hungarian algorithm on the
sign-aware cost), and each matched row gets the sign that fits best,

    s_i = argmin_{s=±1} ‖x_i − s·x̂_π(i)‖,      x̃_i = s_i · x̂_π(i),

so the "sign-corrected match" x̃_i is what is compared with x_i and what the
grid shows.  The error annotated above each reconstruction is the sign-aware
relative error e_i = ‖x_i − x̃_i‖/‖x_i‖ of :mod:`rftheory.attack.metrics`.

Quality measures, computed in the data space
--------------------------------------------
PSNR and SSIM are computed on the images as they are fed to the model (e.g.
standardised pixels on the √d-sphere), never on the display scaling, with the
dynamic range of the *original* image, R_i = max(x_i) − min(x_i):

* PSNR_i = 10·log10(R_i² / MSE_i),  MSE_i = mean((x_i − x̃_i)²)  (dB; +inf
  for an exact match), by ``skimage.metrics.peak_signal_noise_ratio``.
* SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) by
  ``skimage.metrics.structural_similarity`` with its defaults: a uniform w×w
  window (w = 7, or the largest odd size ≤ the smaller image side, so that
  8×8 digits and 6×6 crops have at least one full window), sample
  (co)variances (normalised by N−1, N = w²), C1 = (0.01·R)², C2 = (0.03·R)²,

      SSIM(a, b) = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)),

  averaged over every window position that lies fully inside the image; for
  colour images, SSIM is computed per channel and averaged over channels.

scikit-image is imported inside :func:`psnr` and :func:`ssim` only, so that
``import rftheory`` does not pay for it.

Display
-------
:func:`save_image_grid` draws originals above and their matched,
sign-corrected reconstructions below, each picture min-max scaled to [0, 1]
on its own (z ↦ (z − min z)/(max z − min z); a constant image is shown as
mid-grey), grey-scale with the ``gray`` colour map, colour as RGB.  The
scaling is stated in the figure.  matplotlib is imported only when a grid is
written (install the ``plot`` extra).
"""
from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy
from ..attack.metrics import DEFAULT_THRESHOLD, ReconstructionErrors, reconstruction_errors
from ..validation import check_matrix

__all__ = [
    "psnr",
    "ssim",
    "minmax_scale",
    "as_images",
    "ImageComparison",
    "compare_images",
    "save_image_grid",
    "DEFAULT_SSIM_WINDOW",
]

DEFAULT_SSIM_WINDOW = 7  # Wang et al.'s and scikit-image's default window side


def _pair(reference, estimate):
    a = np.asarray(to_numpy(reference), dtype=np.float64)
    b = np.asarray(to_numpy(estimate), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"reference has shape {a.shape} but estimate has shape {b.shape}")
    if a.size == 0:
        raise ValueError("images are empty")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("images contain non-finite values (NaN or inf)")
    return a, b


def _data_range(a, data_range):
    if data_range is None:
        data_range = float(a.max() - a.min())
        if not data_range > 0:
            raise ValueError("the reference image is constant: pass data_range explicitly")
    data_range = float(data_range)
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"data_range must be positive and finite, got {data_range}")
    return data_range


def psnr(reference, estimate, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio 10·log10(R²/MSE) in dB.

    ``R`` is ``data_range`` (default: max − min of ``reference``), MSE the
    mean squared difference over all entries.  Returns +inf when the images
    are identical.  Computed by ``skimage.metrics.peak_signal_noise_ratio``.
    """
    from skimage.metrics import peak_signal_noise_ratio  # noqa: PLC0415  (lazy: keeps `import rftheory` light)

    a, b = _pair(reference, estimate)
    R = _data_range(a, data_range)
    if np.array_equal(a, b):
        return math.inf  # MSE = 0; skimage would divide by zero and warn
    return float(peak_signal_noise_ratio(a, b, data_range=R))


def ssim(reference, estimate, data_range: float | None = None, win_size: int | None = None) -> float:
    """Mean structural similarity of two images (see the module docstring),
    computed by ``skimage.metrics.structural_similarity``.

    Parameters
    ----------
    reference, estimate : arrays (H, W) or (H, W, C)
        Grey-scale, or colour with the channel last (SSIM averaged over C).
    data_range : float, optional
        R in C1 = (0.01 R)², C2 = (0.03 R)²; default max − min of
        ``reference`` (over all channels).
    win_size : int, optional
        Odd side w ≥ 3 of the uniform window; default 7, or the largest odd
        size that fits when a side is shorter than 7.
    """
    from skimage.metrics import structural_similarity  # noqa: PLC0415  (lazy: keeps `import rftheory` light)

    a, b = _pair(reference, estimate)
    if a.ndim not in (2, 3):
        raise ValueError(f"SSIM needs (H, W) or (H, W, C) images, got shape {a.shape}")
    R = _data_range(a, data_range)
    side = min(a.shape[0], a.shape[1])
    if win_size is None:
        win_size = min(DEFAULT_SSIM_WINDOW, side if side % 2 == 1 else side - 1)
    if not isinstance(win_size, (int, np.integer)) or isinstance(win_size, bool):
        raise TypeError(f"win_size must be an integer, got {win_size!r}")
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and at least 3, got {win_size}")
    if win_size > side:
        raise ValueError(f"win_size={win_size} exceeds the smaller image side {side}")
    return float(structural_similarity(a, b, data_range=R, win_size=int(win_size),
                                       channel_axis=-1 if a.ndim == 3 else None))


def minmax_scale(image) -> np.ndarray:
    """(z − min z)/(max z − min z) over the whole image (all channels); a
    constant image maps to 0.5 everywhere."""
    z = np.asarray(to_numpy(image), dtype=np.float64)
    lo, hi = float(z.min()), float(z.max())
    if not hi > lo:
        return np.full_like(z, 0.5)
    return (z - lo) / (hi - lo)


def _check_shape(image_shape, d):
    if image_shape is None:
        raise ValueError("these rows are not images (the data set has no image_shape); use image data, e.g. --data digits")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {image_shape!r}")
    if len(shape) == 3 and shape[2] not in (1, 3):
        raise ValueError(f"colour images need 1 or 3 channels last, got image_shape {shape}")
    if math.prod(shape) != d:
        raise ValueError(f"image_shape {shape} has {math.prod(shape)} pixels but the rows have d={d}")
    return shape


def as_images(X, image_shape) -> np.ndarray:
    """Rows of X (n×d) reshaped to (n, *image_shape), on the host."""
    X = check_matrix(to_numpy(X), "X")
    shape = _check_shape(image_shape, X.shape[1])
    return np.asarray(X, dtype=np.float64).reshape((X.shape[0],) + shape)


@dataclass
class ImageComparison:
    """Originals, their matched sign-corrected reconstructions and quality.

    Attributes
    ----------
    originals, reconstructions : arrays (n, *image_shape)
        x_i and x̃_i = s_i x̂_π(i), in the data space.
    signs : array (n,)
        s_i ∈ {+1, −1}.
    errors : ReconstructionErrors
        Matching and per-sample errors (:func:`rftheory.attack.metrics.reconstruction_errors`).
    psnr, ssim : arrays (n,)
        Per-image PSNR (dB) and SSIM with R_i = max(x_i) − min(x_i).
    """

    originals: np.ndarray
    reconstructions: np.ndarray
    signs: np.ndarray
    errors: ReconstructionErrors
    psnr: np.ndarray
    ssim: np.ndarray

    @property
    def image_shape(self) -> tuple:
        return tuple(self.originals.shape[1:])

    def summary(self) -> dict:
        return {
            "psnr_mean": float(np.mean(self.psnr)),
            "psnr_min": float(np.min(self.psnr)),
            "ssim_mean": float(np.mean(self.ssim)),
            "ssim_min": float(np.min(self.ssim)),
            "sign_aware_mean": float(self.errors.sign_aware.mean()),
            "recovered_fraction": self.errors.recovered_fraction,
        }


def compare_images(X, X_hat, image_shape, threshold: float = DEFAULT_THRESHOLD) -> ImageComparison:
    """Match X̂ to X (Hungarian, sign-aware), sign-correct, and measure
    per-image PSNR and SSIM in the data space (see the module docstring)."""
    errs = reconstruction_errors(X, X_hat, threshold)
    X = np.asarray(to_numpy(X), dtype=np.float64)
    X_hat = np.asarray(to_numpy(X_hat), dtype=np.float64)
    shape = _check_shape(image_shape, X.shape[1])
    matched = X_hat[errs.permutation]
    signs = np.where(errs.sign_aware < errs.signed, -1.0, 1.0)
    corrected = signs[:, None] * matched
    orig = X.reshape((X.shape[0],) + shape)
    rec = corrected.reshape((X.shape[0],) + shape)
    p = np.array([psnr(o, r) if o.max() > o.min() else math.nan for o, r in zip(orig, rec)])
    s = np.array([ssim(o, r) if o.max() > o.min() else math.nan for o, r in zip(orig, rec)])
    return ImageComparison(orig, rec, signs, errs, p, s)


def _display(img):
    z = minmax_scale(img)
    if z.ndim == 3 and z.shape[2] == 1:
        z = z[..., 0]
    return z


def save_image_grid(path, comparison: ImageComparison, columns: int = 10, title: str | None = None,
                    dpi: int = 100, max_images: int | None = None) -> str:
    """Write a PNG: originals above, matched sign-corrected reconstructions
    below, the sign-aware relative error e_i (and '−x̂' when s_i = −1) above
    each reconstruction (red when not recovered), every picture min-max scaled to [0, 1] on its own.

    With more than ``columns`` images the pairs of rows wrap.  Only the first
    ``max_images`` samples are drawn when it is given.  Parent folders are
    created.  Returns the path written.

    Raises RuntimeError when matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("writing PNG images needs matplotlib: pip install 'rftheory[plot]'") from exc
    if not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    n = comparison.originals.shape[0]
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images must be positive, got {max_images}")
        n = min(n, int(max_images))
    cols = min(n, int(columns))
    blocks = math.ceil(n / cols)
    h, w = comparison.image_shape[:2]
    errs = comparison.errors
    psnr_mean = float(np.mean(comparison.psnr[:n]))
    ssim_mean = float(np.mean(comparison.ssim[:n]))
    note = (f"top: originals; bottom: Hungarian-matched, sign-corrected reconstructions; each picture min-max "
            f"scaled to [0,1] on its own. e = ‖x−x̃‖/‖x‖ (red: not recovered); recovered "
            f"{int(errs.recovered[:n].sum())}/{n} (e ≤ {errs.threshold:g}); mean PSNR {psnr_mean:.1f} dB, "
            f"mean SSIM {ssim_mean:.3f} (data space)")
    # layout in inches: cells of 0.95 in (wider side), 0.2 in for each caption
    cw = 0.95
    ch = cw * h / w
    grid_w = cols * cw * 1.08
    width = max(grid_w + 0.6, 5.0)
    chars = int(width * 17)  # characters per line at 6-8 pt
    note_lines = textwrap.wrap(note, chars)
    title_lines = textwrap.wrap(title, int(width * 13)) if title else []
    top_in = 0.15 + 0.16 * len(title_lines) + 0.2
    bottom_in = 0.1 + 0.12 * len(note_lines)
    grid_h = blocks * 2 * (ch + 0.22)
    height = top_in + grid_h + bottom_in
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    left = (width - grid_w) / 2 / width
    grid = fig.add_gridspec(2 * blocks, cols, hspace=0.22 / ch, wspace=0.08, left=left, right=1 - left,
                            top=1 - top_in / height, bottom=bottom_in / height)
    cmap = "gray"
    for i in range(n):
        b, c = divmod(i, cols)
        for row, img in ((0, comparison.originals[i]), (1, comparison.reconstructions[i])):
            ax = fig.add_subplot(grid[2 * b + row, c])
            ax.imshow(_display(img), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"x{i + 1}", fontsize=7, pad=2)
            else:
                flip = " −x̂" if comparison.signs[i] < 0 else ""
                ax.set_title(f"e={errs.sign_aware[i]:.3g}{flip}", fontsize=7, pad=2,
                             color="black" if errs.recovered[i] else "firebrick")
            if c == 0:
                ax.set_ylabel("original" if row == 0 else "reconstr.", fontsize=7)
    fig.text(0.5, 0.08 / height, "\n".join(note_lines), ha="center", va="bottom", fontsize=6)
    if title_lines:
        fig.text(0.5, 1 - 0.1 / height, "\n".join(title_lines), ha="center", va="top", fontsize=8)
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    return path
