"""PSNR/SSIM (computed by scikit-image) against closed forms and an independent
filter-based reference, and the wrappers' rules (default data range, window for
small images, colour); matching + sign correction; the PNG grid; the CLI option."""
import importlib.util
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.ndimage import uniform_filter

from rftheory.data import digits, synthetic_sphere
from rftheory.data.images import as_images, compare_images, minmax_scale, psnr, save_image_grid, ssim
from rftheory.attack.metrics import reconstruction_errors

HAS_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed (pip install 'rftheory[plot]')")


def ssim_filter_reference(a, b, R, w=7):
    """SSIM the way Wang et al. / scikit-image compute it: uniform filters for the
    local moments (scipy.ndimage), sample normalisation, crop the border."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    N = w * w
    cov_norm = N / (N - 1)
    ux, uy = uniform_filter(a, w), uniform_filter(b, w)
    vx = cov_norm * (uniform_filter(a * a, w) - ux * ux)
    vy = cov_norm * (uniform_filter(b * b, w) - uy * uy)
    vxy = cov_norm * (uniform_filter(a * b, w) - ux * uy)
    C1, C2 = (0.01 * R) ** 2, (0.03 * R) ** 2
    S = (2 * ux * uy + C1) * (2 * vxy + C2) / ((ux**2 + uy**2 + C1) * (vx + vy + C2))
    p = (w - 1) // 2
    return S[p:-p, p:-p].mean()


image_pairs = st.tuples(
    st.integers(7, 16), st.integers(7, 16), st.integers(0, 2**32 - 1), st.floats(0.01, 2.0)
)


def noisy_pair(h, w, seed, noise, channels=()):
    """(a, b, R): a ~ N(0, 1) of shape (h, w, *channels), b = a + noise·N(0, 1), R = max a − min a."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((h, w, *channels))
    b = a + noise * rng.standard_normal((h, w, *channels))
    return a, b, a.max() - a.min()


# ---------------------------------------------------------------- PSNR


def test_psnr_closed_form_constant_offset():
    rng = np.random.default_rng(1)
    a = rng.uniform(-2, 3, size=(8, 8))
    c = 0.125
    R = a.max() - a.min()
    assert psnr(a, a + c) == pytest.approx(20 * math.log10(R / c), rel=1e-12)
    assert psnr(a, a + c, data_range=4.0) == pytest.approx(20 * math.log10(4.0 / c), rel=1e-12)
    assert psnr(a, a) == math.inf


@given(image_pairs)
def test_psnr_default_range_is_the_reference_range(args):
    from skimage.metrics import peak_signal_noise_ratio

    a, b, R = noisy_pair(*args)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=R), rel=1e-12)


def test_psnr_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="constant"):
        psnr(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        psnr(np.array([[0.0, np.nan]]), np.zeros((1, 2)))


# ---------------------------------------------------------------- SSIM


def test_ssim_single_window_closed_form():
    # a 7×7 image has one window: SSIM is the formula on the whole image
    rng = np.random.default_rng(2)
    a = rng.standard_normal((7, 7))
    b = 0.6 * a + 0.5 * rng.standard_normal((7, 7)) + 0.3
    R = 2.5
    mu_a, mu_b = a.mean(), b.mean()
    C = np.cov(a.ravel(), b.ravel(), ddof=1)
    C1, C2 = (0.01 * R) ** 2, (0.03 * R) ** 2
    expected = (2 * mu_a * mu_b + C1) * (2 * C[0, 1] + C2) / ((mu_a**2 + mu_b**2 + C1) * (C[0, 0] + C[1, 1] + C2))
    assert ssim(a, b, data_range=R) == pytest.approx(expected, rel=1e-12)


@given(image_pairs)
def test_ssim_matches_filter_reference(args):
    a, b, R = noisy_pair(*args)
    assert ssim(a, b) == pytest.approx(ssim_filter_reference(a, b, R), rel=1e-10, abs=1e-12)


@given(image_pairs, st.sampled_from([3, 5, 7]))
def test_ssim_passes_range_and_window_gray(args, win):
    from skimage.metrics import structural_similarity

    a, b, R = noisy_pair(*args)
    ref = structural_similarity(a, b, data_range=R, win_size=win)
    assert ssim(a, b, data_range=R, win_size=win) == pytest.approx(ref, rel=1e-10, abs=1e-12)


@given(image_pairs)
def test_ssim_colour_is_the_channel_mean(args):
    a, b, R = noisy_pair(*args, channels=(3,))  # R over all channels
    ref = np.mean([ssim_filter_reference(a[..., c], b[..., c], R) for c in range(3)])
    assert ssim(a, b) == pytest.approx(ref, rel=1e-10, abs=1e-12)


@given(image_pairs)
def test_ssim_invariants(args):
    a, b, R = noisy_pair(*args)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b, data_range=R) == pytest.approx(ssim(b, a, data_range=R), rel=1e-12)
    assert ssim(a, b) < 1.0


def test_ssim_rejects_bad_windows():
    a = np.zeros((8, 8))
    a[0, 0] = 1
    with pytest.raises(ValueError, match="odd"):
        ssim(a, a, win_size=4)
    with pytest.raises(ValueError, match="exceeds"):
        ssim(a, a, win_size=9)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        ssim(np.arange(10.0), np.arange(10.0))
    # an even side uses the largest odd window that fits
    b = np.random.default_rng(0).standard_normal((6, 6))
    assert ssim(b, b + 0.1) == pytest.approx(ssim_filter_reference(b, b + 0.1, b.max() - b.min(), w=5), rel=1e-10)


# ---------------------------------------------------------------- matching and display scaling


def test_minmax_scale():
    z = np.array([[2.0, 4.0], [3.0, 6.0]])
    np.testing.assert_allclose(minmax_scale(z), (z - 2) / 4)
    np.testing.assert_array_equal(minmax_scale(np.full((2, 2), 3.0)), np.full((2, 2), 0.5))


def test_compare_images_matches_and_sign_corrects():
    ds = digits(6, seed=3)
    rng = np.random.default_rng(4)
    perm = rng.permutation(6)
    noise = 0.02 * rng.standard_normal(ds.X.shape)
    X_hat = (ds.X + noise)[perm]
    flip = np.zeros(6, bool)
    flip[[1, 4]] = True  # rows of X_hat that come back as −x̂
    X_hat[flip] *= -1
    cmp = compare_images(ds.X, X_hat, ds.image_shape)
    errs = reconstruction_errors(ds.X, X_hat)
    np.testing.assert_array_equal(cmp.errors.permutation, errs.permutation)
    np.testing.assert_array_equal(errs.permutation, np.argsort(perm))
    np.testing.assert_array_equal(cmp.signs, np.where(flip[errs.permutation], -1.0, 1.0))
    np.testing.assert_allclose(cmp.reconstructions.reshape(6, 64), ds.X + noise, atol=1e-12)
    np.testing.assert_array_equal(cmp.originals.reshape(6, 64), ds.X)
    for i in range(6):
        o, r = ds.X[i].reshape(8, 8), (ds.X[i] + noise[i]).reshape(8, 8)
        assert cmp.psnr[i] == pytest.approx(psnr(o, r))
        assert cmp.ssim[i] == pytest.approx(ssim(o, r))
    # PSNR from the relative error: MSE = e²‖x‖²/d and ‖x‖² = d on the sphere
    R = ds.X.max(axis=1) - ds.X.min(axis=1)
    np.testing.assert_allclose(cmp.psnr, 10 * np.log10(R**2 / cmp.errors.sign_aware**2), rtol=1e-10)


def test_as_images_errors():
    ds = synthetic_sphere(3, 10)
    with pytest.raises(ValueError, match="--data digits"):
        as_images(ds.X, ds.image_shape)
    with pytest.raises(ValueError, match="pixels"):
        as_images(ds.X, (3, 4))
    assert as_images(ds.X, (2, 5)).shape == (3, 2, 5)


# ---------------------------------------------------------------- PNG grid


def _png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@needs_mpl
@pytest.mark.parametrize("n, shape", [(3, (8, 8)), (12, (8, 8)), (2, (6, 6, 3))])
def test_save_image_grid_writes_png(tmp_path, n, shape):
    import matplotlib.image as mpimg

    d = math.prod(shape)
    X = synthetic_sphere(n, d, seed=5).X
    X_hat = -X[::-1] + 0.01
    cmp = compare_images(X, X_hat, shape)
    out = save_image_grid(tmp_path / "sub" / "grid.png", cmp, columns=5, title="a test title", dpi=50)
    assert os.path.isfile(out)
    width, height = _png_size(out)
    pixels = mpimg.imread(out)
    assert pixels.shape[:2] == (height, width)
    blocks = math.ceil(n / 5)
    assert height > blocks * 2 * 0.9 * 50  # at least the image rows at 50 dpi
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


# ---------------------------------------------------------------- CLI


def _cli(capsys, *args):
    from rftheory.cli import main

    code = main(["reconstruct", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@needs_mpl
def test_cli_save_images_digits(tmp_path, capsys):
    out = tmp_path / "imgs"
    code, stdout, stderr = _cli(capsys, "--data", "digits", "--n", "3", "--ratio", "3", "--restarts", "1",
                                "--max-iter", "60", "--save-images", str(out))
    assert code == 0, stderr
    assert (out / "digits_reconstruction.png").is_file()
    assert "PSNR mean" in stdout and "SSIM mean" in stdout
    _png_size(out / "digits_reconstruction.png")


def test_cli_save_images_needs_image_data(tmp_path, capsys):
    code, _, stderr = _cli(capsys, "--data", "synthetic", "--n", "2", "--save-images", str(tmp_path / "x"))
    assert code == 2
    assert "needs image data" in stderr and "--data digits" in stderr
    assert not (tmp_path / "x").exists()
