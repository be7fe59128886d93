"""Packed-panel kernels (rftheory._engine.panel): layouts, products and the IR steps, checked against
float64 NumPy."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rftheory._engine import kernels
from rftheory._engine.panel import (
    B_TILE_COORDS,
    B_TILE_ROWS,
    TILE_ROWS,
    PANEL_WIDTH,
    VECTOR,
    aligned_zeros,
    pack_forward,
    pack_tiles,
    panel_matmul_backward,
    panel_matmul_forward,
)
from _panel_ref import needs_numba


def test_pack_layouts_hold_the_entries():
    rng = np.random.default_rng(0)
    w = PANEL_WIDTH  # 16 or 32 features per panel (8- or 16-lane vectors, by the host)
    V = rng.standard_normal((2 * w + 5, 21)).astype(np.float32)
    P = pack_forward(V)
    d_pad = -(-21 // B_TILE_COORDS) * B_TILE_COORDS  # d padded to a multiple of the backward tile's coordinates
    assert P.shape == (3, d_pad, w)
    assert P.ctypes.data % 64 == 0  # starts on a cache line
    for j in (0, w - 1, w, 2 * w + 4):
        for k in (0, 7, 20):
            assert P[j // w, k, j % w] == V[j, k]
    assert not P[2, :, 5:].any() and not P[:, 21:, :].any()  # zero padding past p and d
    assert B_TILE_COORDS in (2, 4) and d_pad > 21
    rows = TILE_ROWS + 2  # 5 or 10 rows per forward tile, by the host
    X = rng.standard_normal((rows, 21)).astype(np.float32)
    Xt = pack_tiles(X)
    assert Xt.shape == (2, 21, TILE_ROWS) and Xt[1, 20, 1] == X[rows - 1, 20] and not Xt[1, :, 2:].any()
    assert TILE_ROWS % B_TILE_ROWS == 0  # W's rows, padded like X̂'s, split into whole backward tiles


@pytest.mark.parametrize("p", [1, PANEL_WIDTH, 7 * PANEL_WIDTH, 7 * PANEL_WIDTH + 3])
def test_pack_forward_in_steps_equals_one_transposed_copy(p, monkeypatch):
    from rftheory._engine import panel

    monkeypatch.setattr(panel, "PACK_PANELS", 3)  # several steps and a part-filled last panel
    V = np.random.default_rng(p).standard_normal((p, 9)).astype(np.float32)
    P = pack_forward(V)
    w = PANEL_WIDTH
    ref = np.zeros((P.shape[0] * w, P.shape[1]), np.float32)
    ref[:p, :9] = V
    np.testing.assert_array_equal(P, ref.reshape(P.shape[0], w, P.shape[1]).transpose(0, 2, 1))


@pytest.mark.parametrize("shape,dtype", [((3, 1001), np.float32), ((7,), np.float64), ((2, 5, 16), np.float32)])
def test_aligned_zeros_start_on_a_cache_line(shape, dtype):
    a = aligned_zeros(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % 64 == 0 and not a.any()


@needs_numba
def test_compiled_aligned_zeros_start_on_a_cache_line():
    from rftheory._engine.panel import aligned_zeros_1d

    for size in (1, 17, 5000):
        a, b = aligned_zeros_1d(size, np.float32), aligned_zeros_1d(size, np.float64)
        assert a.shape == b.shape == (size,) and a.dtype == np.float32 and b.dtype == np.float64
        assert a.ctypes.data % 64 == 0 and b.ctypes.data % 64 == 0 and not a.any() and not b.any()


@needs_numba
def test_eight_lane_layout_on_a_target_named_for_numba(tmp_path):
    """NUMBA_CPU_NAME (a portable target) selects the 8-lane kernels on any host: check they
    compile and agree with the BLAS path there too (this host may run the 16-lane ones)."""
    code = textwrap.dedent("""
        import numpy as np
        from rftheory._engine import kernels, panel
        from rftheory.attack.loss import projection_loss
        from rftheory._engine.panel_loss import panel_coefficients
        from rftheory.models.random_features import RandomFeatures
        from rftheory.attack.reconstruct import random_sphere
        assert panel.VECTOR == 8 and panel.PANEL_WIDTH == 16, panel.VECTOR
        model = RandomFeatures(1001, 33, "relu+tanh", seed=3, dtype=np.float32)
        model.theta = np.random.default_rng(3).standard_normal(1001)
        X = random_sphere(7, 33, np.random.default_rng(1), np, np.float32)
        assert panel_coefficients(model) == (1.0, 1.0)
        fast = projection_loss(X, model.theta, model)
        kernels.NUMBA_DEFAULT["panel"] = False
        ref = projection_loss(X, model.theta, model)
        np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-5)
        np.testing.assert_allclose(fast.grad, ref.grad, atol=1e-4 * np.abs(ref.grad).max())
        print("ok")
    """)
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path))  # compiled afresh
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


@needs_numba
def test_vector_width_follows_the_host():
    from llvmlite import binding as llvm
    from numba.core import config

    portable = bool(config.CPU_NAME or config.CPU_FEATURES)
    wide = llvm.get_host_cpu_features().get("avx512f", False) and not portable
    assert VECTOR == (16 if wide else 8) and PANEL_WIDTH == 2 * VECTOR


@needs_numba
@pytest.mark.parametrize("rows,p,d", [(20, 2000, 100), (7, 1001, 33), (1, 16, 1), (13, 50, 130)])
def test_panel_products_match_float64(rows, p, d):
    rng = np.random.default_rng(rows + p + d)
    X = rng.standard_normal((rows, d)).astype(np.float32)
    V = rng.standard_normal((p, d)).astype(np.float32)
    W = rng.standard_normal((rows, p)).astype(np.float32)
    Z = panel_matmul_forward(X, pack_forward(V), p)
    G = panel_matmul_backward(W, pack_forward(V), d)
    Z64 = X.astype(np.float64) @ V.T.astype(np.float64)
    G64 = W.astype(np.float64) @ V.astype(np.float64)
    assert Z.shape == (rows, p) and G.shape == (rows, d)
    # float32 sums of d (resp. p) terms: error ≲ √terms · ε₃₂ · ‖row‖‖col‖
    tol_Z = 8 * np.sqrt(d) * np.finfo(np.float32).eps * np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(V, axis=1))
    tol_G = 8 * np.sqrt(p) * np.finfo(np.float32).eps * np.outer(np.linalg.norm(W, axis=1), np.linalg.norm(V, axis=0))
    assert np.all(np.abs(Z - Z64) <= tol_Z)
    assert np.all(np.abs(G - G64) <= tol_G)


@needs_numba
@pytest.mark.parametrize("surrogate", [False, True])
def test_sigma_row_matches_the_scalar_activation(surrogate):
    """Pass 1's vector step (rational tanh with, on AVX-512, a refined reciprocal estimate) against
    the scalar kernel, and its float64 copy and θ-sum against NumPy."""
    from numba import njit

    from rftheory._engine import panel

    @njit
    def run(F, D, H, theta, vectors, a, b, surrogate):
        if surrogate:
            return panel.sigma_row_surrogate(F, D, 0, H, 0, theta, 0, vectors, a, b)
        return panel.sigma_row(F, D, 0, H, 0, theta, 0, vectors, a, b)

    rng = np.random.default_rng(5)
    size = VECTOR * 257
    z = (3 * rng.standard_normal(size)).astype(np.float32)
    z[:6] = [0.0, -0.0, 1e-30, -20.0, 20.0, 7.9]  # zero, tiny, clamped on both sides, near the clamp
    theta = rng.standard_normal(size)
    a, b = np.float32(0.7), np.float32(-1.3)
    F, D, H = z.copy(), np.full_like(z, np.nan), np.full(size, np.nan)
    total = run(F, D, H, theta, size // VECTOR, a, b, surrogate)
    F_ref, D_ref = np.empty_like(z), np.empty_like(z)
    kernels._relu_tanh_f32_kernel(z, F_ref, D_ref, a, b)
    if surrogate:
        D_ref = (z > 0).astype(np.float32)
    ulp = np.finfo(np.float32).eps
    assert np.all(np.abs(F - F_ref) <= 8 * ulp * np.maximum(np.abs(F_ref), 1))
    assert np.all(np.abs(D - D_ref) <= 8 * ulp * np.maximum(np.abs(D_ref), 1))
    assert np.array_equal(H, F.astype(np.float64))
    assert total == pytest.approx(H @ theta, rel=1e-12, abs=1e-12 * np.abs(H) @ np.abs(theta))
    exact = 0.7 * np.maximum(z.astype(np.float64), 0) - 1.3 * np.tanh(z.astype(np.float64))
    assert np.abs(F - exact).max() <= 2e-6 * max(1.0, np.abs(exact).max())


@needs_numba
def test_gram_tile_matches_numpy():
    from numba import njit

    from rftheory._engine import panel

    @njit
    def run(H, i, k, stride, vectors, out):
        panel.gram_tile(H, i, k, stride, vectors, out)

    rng = np.random.default_rng(8)
    lanes = VECTOR // 2
    H = rng.standard_normal((9, lanes * 13))
    out = np.full(panel.GRAM_TILE_ROWS * panel.GRAM_TILE_COLS, np.nan)
    run(H, 1 * H.shape[1], 3 * H.shape[1], H.shape[1], 13, out)
    expected = H[1:1 + panel.GRAM_TILE_ROWS] @ H[3:3 + panel.GRAM_TILE_COLS].T
    np.testing.assert_allclose(out.reshape(expected.shape), expected, rtol=1e-13, atol=1e-13 * np.abs(H).max() ** 2 * H.shape[1])


@needs_numba
@pytest.mark.parametrize("with_grad", [False, True])
def test_residual_step_matches_numpy(with_grad):
    from numba import njit

    from rftheory._engine import panel

    @njit
    def run(F, D, f, f_row, alpha, a, rows, theta, s, W, w, w_row, vectors, with_grad):
        if with_grad:
            return panel.residual_and_weights(F, D, f, f_row, alpha, a, rows, theta, s, W, w, w_row, vectors)
        return panel.residual_row_sums(F, D, f, f_row, alpha, a, rows, theta, s, W, w, w_row, vectors)

    rng = np.random.default_rng(11)
    lanes, rows, cols = VECTOR // 2, 7, VECTOR * 12
    F = rng.standard_normal((rows + 2, cols)).astype(np.float32)
    D = rng.random((rows + 2, cols)).astype(np.float32)
    alpha = rng.standard_normal(rows + 3)
    theta = rng.standard_normal(cols + 5)
    W = np.full((rows, 3 * lanes * 4), np.nan, dtype=np.float32)
    vectors = 3  # t < 3·lanes, from column lanes of F and θ entry 5 on; α from entry 2 on, F from row 1 on
    total = run(F, D, 1 * cols + lanes, cols, alpha, 2, rows, theta, 5, W, 0, W.shape[1], vectors, with_grad)
    t = 3 * lanes
    r = theta[5:5 + t] - alpha[2:2 + rows] @ F[1:1 + rows, lanes:lanes + t].astype(np.float64)
    assert total == pytest.approx(r @ r, rel=1e-12)
    if with_grad:
        np.testing.assert_allclose(W[:, :t], D[1:1 + rows, lanes:lanes + t] * r.astype(np.float32), rtol=1e-6)
        assert np.isnan(W[:, t:]).all()  # nothing written past the vectors asked for
    else:
        assert np.isnan(W).all()


@pytest.mark.parametrize("p, d", [(1, 1), (PANEL_WIDTH, 2 * PANEL_WIDTH), (3 * PANEL_WIDTH + 5, 2 * PANEL_WIDTH + 7)])
def test_pack_columns_holds_the_columns_in_panels(p, d, monkeypatch):
    from rftheory._engine import panel

    monkeypatch.setattr(panel, "PACK_PANELS", 1)  # several steps of features
    V = np.random.default_rng(p + d).standard_normal((p, d)).astype(np.float32)
    Q = panel.pack_columns(V)
    w = PANEL_WIDTH
    assert Q.shape == (-(-d // w), -(-p // w) * w, w) and Q.ctypes.data % 64 == 0
    ref = np.zeros((Q.shape[1], Q.shape[0] * w), np.float32)
    ref[:p, :d] = V
    np.testing.assert_array_equal(Q, ref.reshape(Q.shape[1], Q.shape[0], w).transpose(1, 0, 2))


@needs_numba
@pytest.mark.parametrize("rows, p, d", [(10, 40, 64), (20, 37, 1030), (5, 3, 21), (40, 700, 100)])
def test_column_backward_matches_float64(rows, p, d):
    """pass 2's product on the column panels: G += W V[j0 : j0 + count] (one chunk), and W V over
    several chunks (column_matmul_backward), against float64 NumPy."""
    from rftheory._engine.panel import COLUMN_W_COLS, _column_blocks, column_matmul_backward, pack_columns

    rng = np.random.default_rng(rows + p + d)
    V = rng.standard_normal((p + PANEL_WIDTH, d)).astype(np.float32)
    Q = pack_columns(V)
    rows_pad = -(-rows // TILE_ROWS) * TILE_ROWS
    count = min(p, COLUMN_W_COLS - PANEL_WIDTH)
    W = aligned_zeros((rows_pad, COLUMN_W_COLS))
    W[:rows, :count] = rng.standard_normal((rows, count))
    G = np.ones((rows_pad, Q.shape[0] * PANEL_WIDTH + 3), np.float32)
    j0 = PANEL_WIDTH  # a whole-panel offset, as the loss's chunks start
    _column_blocks(W, Q, G, j0, -(-count // PANEL_WIDTH) * PANEL_WIDTH)
    expected = 1.0 + W[:, :count].astype(np.float64) @ V[j0:j0 + count].astype(np.float64)
    np.testing.assert_allclose(G[:, :d], expected, rtol=1e-4, atol=1e-4 * np.sqrt(count))
    assert np.all(G[:, d:] == 1.0)  # past d: zero columns of Q add nothing
    W2 = rng.standard_normal((rows, p)).astype(np.float32)
    got = column_matmul_backward(W2, Q, d)
    expected = W2.astype(np.float64) @ V[:p].astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.sqrt(p))
