"""Packed-panel kernels (rftheory._engine.panel) and the fused float32 loss built on them
(rftheory._engine.panel_loss), checked against float64 NumPy products and the BLAS path."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from rftheory._engine import kernels
from rftheory.attack.loss import projection_loss
from rftheory._engine.panel import (
    B_TILE_COORDS,
    B_TILE_ROWS,
    TILE_ROWS,
    PANEL_WIDTH,
    VECTOR,
    aligned_zeros,
    pack_forward,
    pack_tiles,
    panel_kernels_available,
    panel_matmul_backward,
    panel_matmul_forward,
)
from rftheory._engine import make_loss, sum_of_squares
from rftheory._engine.panel_loss import panel_coefficients
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import random_sphere

needs_numba = pytest.mark.skipif(not panel_kernels_available(), reason="needs Numba")


def panel_loss_applicable(model, X) -> bool:
    """Whether projection_loss takes the engine's panel path for this model and X̂."""
    return isinstance(X, np.ndarray) and panel_coefficients(model) is not None


def engine_loss(model, X, *, threads, with_grad=True, derivative="true", tangent=False):
    """projection_loss's result through the engine's door with a given thread count (any problem size)."""
    theta = np.asarray(model.theta, dtype=np.float64)
    evaluate = make_loss(model, theta, sum_of_squares(theta), derivative=derivative, tangent=tangent,
                         threads=threads)
    loss, grad, alpha = evaluate(X if X.ndim == 3 else X[None], with_grad)
    return (loss, grad, alpha) if X.ndim == 3 else (loss[0], None if grad is None else grad[0], alpha[0])


@pytest.fixture
def blas_path(monkeypatch):
    """Context in which the loss takes the BLAS path (panel kernel switched off)."""
    def off():
        monkeypatch.setitem(kernels.NUMBA_DEFAULT, "panel", False)
    return off


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


def _model(p, d, activation="relu+tanh", dtype=np.float32, seed=3):
    model = RandomFeatures(p, d, activation, seed=seed, dtype=dtype)
    model.theta = np.random.default_rng(seed).standard_normal(p)
    return model


@needs_numba
@pytest.mark.parametrize("activation", ["relu+tanh", "relu", "tanh", "0.5*relu+2*tanh"])
@pytest.mark.parametrize("n,p,d,R", [(20, 4000, 100, 1), (7, 1001, 33, 1), (6, 3000, 40, 3), (20, 2000, 50, 3), (1, 500, 10, 1)])
@pytest.mark.parametrize("derivative", ["true", "relu"])
def test_panel_loss_matches_blas_path(activation, n, p, d, R, derivative, blas_path):
    model = _model(p, d, activation)
    shape = (R, n, d) if R > 1 else (n, d)
    X = random_sphere(R * n, d, np.random.default_rng(1), np, np.float32).reshape(shape)
    assert panel_loss_applicable(model, X)
    fast = projection_loss(X, model.theta, model, derivative=derivative)
    blas_path()
    assert not panel_loss_applicable(model, X)
    ref = projection_loss(X, model.theta, model, derivative=derivative)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-5)
    np.testing.assert_allclose(fast.alpha, ref.alpha, rtol=1e-4, atol=1e-6 * np.abs(ref.alpha).max())
    scale = np.abs(ref.grad).max()
    np.testing.assert_allclose(fast.grad, ref.grad, atol=1e-4 * scale)
    assert fast.grad.dtype == np.float32 and fast.grad.shape == X.shape


@needs_numba
def test_panel_loss_gradient_agrees_with_float64_finite_differences():
    """Independent of both code paths' products: the float32 panel gradient along a
    tangent direction vs central differences of the float64 loss."""
    n, d, p = 5, 30, 2000
    model64 = _model(p, d, dtype=np.float64)
    model32 = model64.astype(np.float32)
    X = random_sphere(n, d, np.random.default_rng(2))
    grad = projection_loss(X.astype(np.float32), model64.theta, model32).grad.astype(np.float64)
    E = np.random.default_rng(3).standard_normal((n, d))
    h = 1e-5
    fd = (projection_loss(X + h * E, model64.theta, model64, with_grad=False).loss
          - projection_loss(X - h * E, model64.theta, model64, with_grad=False).loss) / (2 * h)
    assert abs(np.sum(grad * E) - fd) <= 2e-4 * abs(fd) + 1e-7


@needs_numba
def test_panel_loss_without_gradient_and_thread_counts_agree():
    model = _model(9000, 50)
    X = random_sphere(10, 50, np.random.default_rng(4), np, np.float32)
    one = engine_loss(model, X, threads=1)
    no_grad = engine_loss(model, X, threads=1, with_grad=False)
    two = engine_loss(model, X, threads=2)
    ref = projection_loss(X, model.theta, model)
    assert no_grad[1] is None and no_grad[0] == one[0]
    # fixed pieces summed in a fixed order: bitwise the same for any thread count
    assert two[0] == one[0] == ref.loss
    assert np.array_equal(two[1], one[1]) and np.array_equal(two[2], one[2]) and np.array_equal(one[1], ref.grad)


@needs_numba
def test_reused_buffers_never_leak_into_returned_results():
    """Evaluations of a thread reuse one plan of buffers per shape; what they return is their own."""
    model = _model(6000, 40)
    rng = np.random.default_rng(11)
    X1 = random_sphere(9, 40, rng, np, np.float32)
    X2 = random_sphere(9, 40, rng, np, np.float32)
    first = projection_loss(X1, model.theta, model)
    kept = (first.loss, first.grad.copy(), first.alpha.copy())
    projection_loss(X2, model.theta, model)  # same shape: same buffers
    projection_loss(X1[:8], model.theta, model)  # n̂ − 1 rows (re-seeding): a second plan
    projection_loss(np.stack([X2, X1]), model.theta, model)  # batched: a third
    again = projection_loss(X1, model.theta, model)
    import threading

    from rftheory._engine import panel_loss

    shared = panel_loss._packed(model).shared  # one-shot evaluations: this thread's workspaces, kept per model
    assert np.array_equal(shared[(threading.get_ident(), (1, 9, 40))].Xt, pack_tiles(X1))  # compiled packing
    assert np.array_equal(first.grad, kept[1]) and np.array_equal(first.alpha, kept[2])
    assert again.loss == kept[0] and np.array_equal(again.grad, kept[1]) and np.array_equal(again.alpha, kept[2])


@pytest.mark.parametrize("panel_on", [True, False])
def test_tangent_gradient_is_the_projected_euclidean_one(panel_on, monkeypatch):
    """tangent=True (fused into the panel pass's last step) = riemannian_gradient of the Euclidean gradient."""
    from rftheory.attack.loss import riemannian_gradient

    monkeypatch.setitem(kernels.NUMBA_DEFAULT, "panel", panel_on)
    model = _model(3000, 24)
    rng = np.random.default_rng(12)
    for X in (random_sphere(6, 24, rng, np, np.float32), np.stack([random_sphere(6, 24, rng, np, np.float32)] * 2)):
        plain = projection_loss(X, model.theta, model)
        projected = projection_loss(X, model.theta, model, tangent=True)
        assert projected.grad.shape == X.shape and np.all(projected.loss == plain.loss)
        assert np.array_equal(projected.grad, riemannian_gradient(X, plain.grad))
        assert np.abs(np.sum(projected.grad * X, axis=-1)).max() < 1e-5 * np.abs(plain.grad).max() * 24


@needs_numba
def test_threaded_attack_is_reproducible():
    """Two threads pulling pieces dynamically must not make the attack's iterates depend on timing."""
    from rftheory.attack.reconstruct import reconstruct

    model = _model(12000, 60, dtype=np.float64)
    runs = []
    for _ in range(2):
        with threadpool_limits(limits=2, user_api="blas"):  # the kernels follow the BLAS limit
            runs.append(reconstruct(model.theta, model, 8, restarts=1, max_iter=30, reseed=False, tol=0.0, seed=4))
    assert runs[0].loss == runs[1].loss and np.array_equal(runs[0].X_hat, runs[1].X_hat)


@pytest.mark.parametrize("derivative,tangent", [("true", True), ("relu", False)])
def test_prepared_loss_is_bitwise_projection_loss(derivative, tangent):
    """PreparedProjectionLoss (the attack's loss: θ, ‖θ‖², path and threads settled once) gives exactly
    what projection_loss gives: single and batched X̂, with and without gradient, n̂ − 1 rows (re-seeding)."""
    from rftheory.attack.loss import PreparedProjectionLoss

    model = _model(5000, 30)
    rng = np.random.default_rng(21)
    prepared = PreparedProjectionLoss(model.theta, model, derivative=derivative, tangent=tangent)
    assert (prepared._panel is not None) == panel_kernels_available()
    X = random_sphere(8, 30, rng, np, np.float32)
    cases = [(X, True), (X, False), (X[:7], True), (np.stack([X, random_sphere(8, 30, rng, np, np.float32)]), True),
             (X, True)]
    for Xc, with_grad in cases:
        got = prepared(Xc, with_grad=with_grad)
        ref = projection_loss(Xc, model.theta, model, with_grad=with_grad, derivative=derivative, tangent=tangent)
        assert np.all(got.loss == ref.loss) and type(got.loss) is type(ref.loss)
        assert np.array_equal(got.alpha, ref.alpha)
        assert (got.grad is None) == (not with_grad)
        if with_grad:
            assert got.grad.dtype == np.float32 and np.array_equal(got.grad, ref.grad)


def test_prepared_loss_checks_once_and_falls_back_to_projection_loss(blas_path):
    from rftheory.attack.loss import PreparedProjectionLoss

    model = _model(800, 12)
    with pytest.raises(ValueError, match="zero vector"):
        PreparedProjectionLoss(np.zeros(800), model)
    with pytest.raises(ValueError, match="derivative"):
        PreparedProjectionLoss(model.theta, model, derivative="sign")
    prepared = PreparedProjectionLoss(model.theta, model)
    with pytest.raises(ValueError, match="d = 12"):
        prepared(np.ones((3, 13), np.float32))  # a wrong shape never reaches the compiled kernels
    X64 = random_sphere(4, 12, np.random.default_rng(5))
    got, ref = prepared(X64), projection_loss(X64, model.theta, model)  # float64 X̂: projection_loss itself
    assert got.loss == ref.loss and np.array_equal(got.grad, ref.grad)
    blas_path()  # a loss prepared while the panel kernels are off keeps to the BLAS path
    off = PreparedProjectionLoss(model.theta, model)
    X32 = X64.astype(np.float32)
    assert off._panel is None and off(X32).loss == projection_loss(X32, model.theta, model).loss


@pytest.mark.parametrize("blocks", [1, 15, 16, 17, 100, 1250, 7000])
def test_pieces_cover_the_panels_and_shrink_towards_the_end(blocks):
    from rftheory._engine.panel_loss import PIECE_BLOCKS, TAIL_PIECE_BLOCKS, TAIL_SHARE, piece_bounds

    bounds = piece_bounds(blocks)
    sizes = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == blocks and np.all(sizes > 0)
    assert np.all(sizes <= PIECE_BLOCKS) and np.all(np.diff(sizes[:-1]) <= 0)  # never growing
    left = blocks - bounds[:-1]
    # each piece at most a TAIL_SHARE-th of what is left, unless it is the smallest piece (or the rest)
    assert np.all((sizes <= -(-left // TAIL_SHARE)) | (sizes == np.minimum(TAIL_PIECE_BLOCKS, left)))
    if blocks >= 4 * PIECE_BLOCKS:
        assert sizes[0] == PIECE_BLOCKS and sizes[-2] == TAIL_PIECE_BLOCKS


@needs_numba
def test_kernel_threads_follow_the_blas_limit_and_the_problem_size():
    """The evaluator's threads: the BLAS limit when it is made (or as given), one for a small problem
    (4·R·n̂·d·p < SMALL_PROBLEM_FLOPS), and never more than the pieces of work."""
    from rftheory._engine import SMALL_PROBLEM_FLOPS

    model = _model(20000, 100)
    theta = np.asarray(model.theta, np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        serial = make_loss(model, theta, sum_of_squares(theta))
    with threadpool_limits(limits=2, user_api="blas"):
        two = make_loss(model, theta, sum_of_squares(theta))
    chosen = make_loss(model, theta, sum_of_squares(theta), threads=3)
    assert (serial.threads, two.threads, chosen.threads) == (1, 2, 3)
    large, small = (1, 20, 100), (1, 2, 10)
    assert 4.0 * 20 * 100 * 20000 >= SMALL_PROBLEM_FLOPS > 4.0 * 2 * 10 * 20000
    assert serial._plan(large)[1] == 1 and two._plan(large)[1] == 2 and two._plan(small)[1] == 1


def test_panel_path_only_where_it_applies():
    X32 = np.zeros((2, 10), np.float32)
    model = _model(100, 10)
    theta = np.asarray(model.theta, np.float64)

    def served(m, dtype=None):
        return panel_coefficients(m, dtype) is not None

    assert served(model) == panel_kernels_available()
    assert (make_loss(model, theta, 1.0) is not None) == panel_kernels_available()
    assert not served(_model(100, 10, dtype=np.float64))  # float64 stays on BLAS
    assert make_loss(_model(100, 10, dtype=np.float64), theta, 1.0) is None
    assert served(_model(100, 10, dtype=np.float64), np.float32) == panel_kernels_available()
    assert not served(_model(100, 10, activation="gelu"))  # only a·relu + b·tanh
    streamed = RandomFeatures(100, 10, seed=1, dtype=np.float32, store_weights=False)
    assert not served(streamed) and make_loss(streamed, theta, 1.0) is None
    assert make_loss(model, theta, 1.0, derivative="sign") is None
    assert make_loss(model, theta.tolist(), 1.0) is None
    assert not panel_loss_applicable(model, X32.tolist())  # not a NumPy array: projection_loss's BLAS path


def test_the_engine_asks_the_activation_for_its_form():
    """σ = a·relu + b·tanh is what the activation states (Activation.relu_tanh), not what its name says:
    a user's own σ named "relu" takes the BLAS path, and a combination states its coefficients."""
    from rftheory.models.activations import Activation, get_activation

    assert get_activation("0.5*relu+2*tanh").relu_tanh == (0.5, 2.0)
    assert get_activation("relu+gelu").relu_tanh is None
    own = Activation("relu", lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype))
    model = _model(100, 10)
    model.activation = own
    assert own.relu_tanh is None and panel_coefficients(model) is None
    model.activation = get_activation("tanh")
    assert (panel_coefficients(model) == (0.0, 1.0)) == panel_kernels_available()


@needs_numba
def test_packed_panels_are_cached_weakly_per_model(monkeypatch):
    """V is packed once per model; the engine keeps the copy, not the model (nothing in its __dict__),
    drops it with the model, and gives a model made by astype its own."""
    import gc
    import weakref

    from rftheory._engine import panel_loss

    packs = []
    real = panel_loss.pack_forward
    monkeypatch.setattr(panel_loss, "pack_forward", lambda V: packs.append(V) or real(V))
    model = _model(300, 20)
    P1 = panel_loss.packed_panels(model)
    projection_loss(random_sphere(3, 20, np.random.default_rng(0), np, np.float32), model.theta, model)
    prepared_theta = np.asarray(model.theta, np.float64)
    make_loss(model, prepared_theta, sum_of_squares(prepared_theta))
    assert panel_loss.packed_panels(model) is P1 and len(packs) == 1
    assert not any("panel" in key for key in model.__dict__)
    other = model.astype(np.float64).astype(np.float32)  # new V object: new panels
    P3 = panel_loss.packed_panels(other)
    assert P3 is not P1 and np.array_equal(P3, P1) and len(packs) == 2
    assert model.astype(np.float32) is model  # same dtype: the same model, the same panels
    alive = weakref.ref(P1)
    del P1, P3
    count = len(panel_loss._PACKED)
    del model
    gc.collect()
    assert len(panel_loss._PACKED) == count - 1 and alive() is None  # the entry and the copy went with the model


@needs_numba
def test_panel_loss_near_the_training_set(blas_path):
    """The attack's end game: θ fitted on X, X̂ close to X, L small and r a small difference."""
    from rftheory.data.synthetic import synthetic_sphere
    from rftheory.attack.loss import retract_to_sphere

    n, d, p = 10, 40, 6000
    ds = synthetic_sphere(n, d, seed=5)
    model = RandomFeatures(p, d, "relu+tanh", seed=6).fit(ds.X, ds.y)
    work = model.astype(np.float32)
    X = retract_to_sphere(ds.X + 1e-2 * np.random.default_rng(7).standard_normal((n, d))).astype(np.float32)
    fast = projection_loss(X, model.theta, work)
    assert 1e-6 < fast.loss < 1e-2
    blas_path()
    ref = projection_loss(X, model.theta, work)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-3)
    np.testing.assert_allclose(fast.grad, ref.grad, atol=1e-3 * np.abs(ref.grad).max())


@needs_numba
def test_panel_loss_with_a_singular_gram_falls_back_like_the_blas_path(blas_path):
    """Two identical candidate rows make Φ̂Φ̂ᵀ singular: the small Cholesky refuses it and
    the general solver (pseudo-inverse) gives the same α and loss as the BLAS path."""
    model = _model(3000, 30)
    X = random_sphere(6, 30, np.random.default_rng(8), np, np.float32)
    X[3] = X[1]
    fast = projection_loss(X, model.theta, model)
    # the helper thread too must leave pass 2 to the fallback
    assert engine_loss(model, X, threads=2)[0] == engine_loss(model, X, threads=1)[0] == fast.loss
    blas_path()
    ref = projection_loss(X, model.theta, model)
    assert np.isfinite(fast.loss) and np.all(np.isfinite(fast.grad))
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-5)
    np.testing.assert_allclose(fast.grad, ref.grad, atol=1e-4 * np.abs(ref.grad).max())


@needs_numba
def test_atomic_counters_count_every_increment_across_threads():
    import threading

    from numba import njit

    from rftheory._engine.spin import atomic_add, atomic_load, atomic_store, cpu_relax, yield_processor

    @njit(nogil=True)
    def hammer(ctl, times):
        for _ in range(times):
            atomic_add(ctl, 0, 1)
            cpu_relax()
        yield_processor()
        atomic_store(ctl, 1, 7)
        return atomic_load(ctl, 1)

    ctl = np.zeros(2, np.int64)
    threads = [threading.Thread(target=hammer, args=(ctl, 50_000)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ctl[0] == 200_000 and ctl[1] == 7  # a lost update would leave fewer


def _evaluation_arguments(monkeypatch, model, X):
    """Run one two-thread evaluation whose helper does nothing; return (result, the shared arguments)."""
    from rftheory._engine import panel_loss

    seen = []
    def post(args, errors, wanted):
        seen.append(args)
        return np.zeros(panel_loss.CONTROLS, np.int64)  # the bell nobody listens to

    monkeypatch.setattr(panel_loss, "_share_with_helpers", post)
    res = engine_loss(model, X, threads=2)
    monkeypatch.undo()
    return res, seen[0]


@needs_numba
def test_a_late_helper_finds_nothing_to_do_and_the_lead_stops_on_abort(monkeypatch):
    from rftheory._engine import panel_loss

    model = _model(5000, 30)
    X = random_sphere(7, 30, np.random.default_rng(9), np, np.float32)
    res, args = _evaluation_arguments(monkeypatch, model, X)
    ref = projection_loss(X, model.theta, model)
    assert res[0] == ref.loss and np.array_equal(res[1], ref.grad)  # the lead did every piece alone
    G, ctl = args[0].G, args[-1]  # args = (workspace, with_grad, ctl)
    before = G.copy()
    assert panel_loss._evaluation_share(*args, False) == 1  # arrives after the work: claims nothing
    assert np.array_equal(G, before)
    # a helper that claimed piece 0 and died: without the abort flag the lead would wait forever
    ctl[:] = 0
    ctl[panel_loss.CLAIM_1] = 1
    ctl[panel_loss.ABORT] = 1
    assert panel_loss._evaluation_share(*args, True) == -1


def test_a_failing_helper_raises_the_abort_flag_and_its_error(monkeypatch):
    import time

    from rftheory._engine import panel_loss

    def share(*args):  # the lead: waits for the abort flag, as the compiled lead does
        while not args[-2][panel_loss.ABORT]:
            time.sleep(1e-3)
        return -1

    def share_then_wait(*args):  # a helper
        raise ValueError("helper failed")

    def lead(X_rows, tangent, theta_sq, bell, *args):
        return share(*args, True), None, None, None

    monkeypatch.setattr(panel_loss, "_share_then_wait", share_then_wait)
    monkeypatch.setattr(panel_loss, "_lead", lead)
    ctl = np.zeros(panel_loss.CONTROLS, np.int64)
    errors = []
    assert panel_loss._helper((None, ctl), errors, 1, np.zeros(panel_loss.CONTROLS, np.int64)) is False
    assert ctl[panel_loss.ABORT] == 1 and isinstance(errors[0], ValueError)
    if panel_kernels_available():
        model = _model(5000, 30)
        X = random_sphere(7, 30, np.random.default_rng(9), np, np.float32)
        with pytest.raises(ValueError, match="helper failed"):
            engine_loss(model, X, threads=2)


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
def test_await_bell_returns_on_a_ring_or_after_its_spins():
    import threading
    import time

    from rftheory._engine import panel_loss

    bell = np.zeros(panel_loss.CONTROLS, np.int64)
    bell[0] = 5
    assert panel_loss._await_bell(bell, 4, 0)  # already past: no spin needed
    assert not panel_loss._await_bell(bell, 5, 100)  # nobody rings: gives up
    from numba import njit

    from rftheory._engine.spin import atomic_add

    @njit(nogil=True)
    def ring(bell):
        atomic_add(bell, 0, 1)

    ring(np.zeros(1, np.int64))  # compiled before the clock starts
    ringer = threading.Thread(target=lambda: (time.sleep(0.05), ring(bell)))
    ringer.start()
    assert panel_loss._await_bell(bell, 5, 1 << 40)  # a ring from another thread ends the spin
    ringer.join()
    assert bell[0] == 6


@needs_numba
def test_consecutive_two_thread_evaluations_ring_the_bell_and_agree():
    """Back-to-back evaluations (the attack's loop, where the helper spins between them): each
    rings the helpers' bell once and every result is bitwise the one-thread one."""
    from rftheory._engine import panel_loss

    model = _model(20000, 100)
    X = random_sphere(20, 100, np.random.default_rng(4), np, np.float32)
    ref = engine_loss(model, X, threads=1)
    theta = np.asarray(model.theta, np.float64)
    evaluate = make_loss(model, theta, sum_of_squares(theta), threads=2)
    evaluate(X[None], True)
    before = int(panel_loss._HELPERS.bell[0])
    for _ in range(20):
        loss, grad, alpha = evaluate(X[None], True)
        assert loss[0] == ref[0] and np.array_equal(grad[0], ref[1]) and np.array_equal(alpha[0], ref[2])
    assert panel_loss._HELPERS.bell[0] == before + 20


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


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("panel_on", [True, False])
@pytest.mark.parametrize("p", [400, 12000])
def test_nothing_stays_pinned_after_the_attack(panel_on, p, monkeypatch):
    """The loss pins BLAS per evaluation only (small problems and the panel kernels): after reconstruct
    the BLAS limits are what they were, on both paths and either side of SMALL_PROBLEM_FLOPS."""
    from rftheory.attack.reconstruct import reconstruct

    monkeypatch.setitem(kernels.NUMBA_DEFAULT, "panel", panel_on)
    model = _model(p, 60, dtype=np.float64)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        reconstruct(model.theta, model, 8, restarts=2, max_iter=5, reseed=True, tol=0.0, seed=4)
        assert _blas_threads() == before == [2] * len(before)
    before = _blas_threads()
    reconstruct(model.theta, model, 8, restarts=1, max_iter=3, tol=0.0, seed=1)
    assert _blas_threads() == before


def test_blas_path_runs_small_problems_on_one_blas_thread(monkeypatch):
    """σ sees BLAS at one thread inside a small BLAS-path evaluation, at the limit as set in a large one."""
    from rftheory._engine.threads import blas_limit
    from rftheory.models.activations import Activation

    seen = []

    def relu(z):
        seen.append(blas_limit())
        return np.maximum(z, 0)

    probe = Activation("probe", relu, lambda z: (z > 0).astype(z.dtype))
    with threadpool_limits(limits=2, user_api="blas"):
        for p, expected in ((300, 1), (30000, 2)):  # 4·n̂·d·p below and above SMALL_PROBLEM_FLOPS
            model = _model(p, 40, dtype=np.float32)
            model.activation = probe
            seen.clear()
            projection_loss(random_sphere(5, 40, np.random.default_rng(0), np, np.float32), model.theta, model)
            assert seen and set(seen) == {expected}
        assert _blas_threads() == [2] * len(_blas_threads())


def test_serial_blas_is_counted_across_threads():
    """The pin is process-wide, so overlapping users share it: the last one out restores the limits."""
    from rftheory._engine.threads import serial_blas

    with threadpool_limits(limits=2, user_api="blas"):
        with serial_blas:
            assert set(_blas_threads()) == {1}
            with serial_blas:  # re-entrant
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_the_engine_has_one_door_and_no_import_cycle():
    """Only rftheory/attack/loss.py imports rftheory._engine; the σ kernel and the panel kernels share
    their constants through _engine.tanh and _engine.target, not through each other."""
    import ast
    from pathlib import Path

    import rftheory

    root = Path(rftheory.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] == "_engine":
            continue
        package = (rftheory.__name__,) + rel.parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else ()
                name = ".".join(base + ((node.module,) if node.module else ()))
                names = [name] + [f"{name}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "rftheory._engine" or n.startswith("rftheory._engine.") for n in names):
                importers.add(str(rel))
    assert importers == {"attack/loss.py"}
    code = ("import sys, rftheory._engine.kernels as k; assert 'rftheory._engine.panel' not in sys.modules; "
            "import rftheory._engine.panel; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


@needs_numba
@pytest.mark.parametrize("rows, p, d", [(10, 40, 64), (20, 37, 1030), (5, 3, 21)])
def test_natural_backward_matches_float64(rows, p, d):
    """pass 2's product on V's own layout: G += W V[j0:j1] (whole tiles of columns and the tail)."""
    from rftheory._engine import panel_loss

    rng = np.random.default_rng(rows + p + d)
    rows_pad = -(-rows // TILE_ROWS) * TILE_ROWS
    width = panel_loss.RESIDUAL_CHUNK_BLOCKS * PANEL_WIDTH
    V = rng.standard_normal((p + 7, d)).astype(np.float32)
    W = aligned_zeros((rows_pad, width))
    W[:rows, :p] = rng.standard_normal((rows, p))
    G = np.ones((rows_pad, d + 2), np.float32)
    panel_loss.natural_backward(W, V, G, 3, 3 + p)
    expected = 1.0 + W[:, :p].astype(np.float64) @ V[3:3 + p].astype(np.float64)
    np.testing.assert_allclose(G[:, :d], expected, rtol=1e-4, atol=1e-4 * np.sqrt(p))
    assert np.all(G[:, d:] == 1.0)  # past d: untouched


@needs_numba
@pytest.mark.parametrize("R", [1, 3])
def test_natural_and_packed_pass_2_agree_with_the_blas_path(R, monkeypatch, blas_path):
    """The loss with pass 2 on V's own layout (large d) equals the packed one up to float32 rounding,
    and both the BLAS path; pass 1 is shared, so L and α agree bitwise."""
    from rftheory._engine import panel_loss

    model = _model(300, 70)
    X = np.stack([random_sphere(6, 70, np.random.default_rng(k)) for k in range(R)]).astype(np.float32)
    results = {}
    for natural_min_d in (1, 10**9):
        monkeypatch.setattr(panel_loss, "NATURAL_MIN_D", natural_min_d)
        results[natural_min_d] = engine_loss(model, X, threads=2)
    (L1, G1, a1), (L2, G2, a2) = results[1], results[10**9]
    assert np.array_equal(L1, L2) and np.array_equal(a1, a2)
    np.testing.assert_allclose(G1, G2, rtol=1e-5, atol=1e-5 * np.abs(G2).max())
    blas_path()
    ref = projection_loss(X, model.theta, model)
    np.testing.assert_allclose(G1, ref.grad, rtol=1e-4, atol=1e-4 * np.abs(ref.grad).max())
    np.testing.assert_allclose(L1, ref.loss, rtol=1e-5, atol=1e-7)


@needs_numba
def test_packed_copy_follows_the_available_memory(monkeypatch):
    from rftheory._engine import panel_loss

    model = _model(100, 10)
    assert panel_loss.panel_bytes_allowed() > 0
    monkeypatch.setattr(panel_loss, "panel_bytes_allowed", lambda: 100 * 10 * 4 - 1)
    fresh = _model(100, 10, seed=7)
    assert panel_coefficients(fresh) is None  # no room for its packed copy: the BLAS path
    monkeypatch.undo()
    panel_loss.packed_panels(model)  # made while there was room
    monkeypatch.setattr(panel_loss, "panel_bytes_allowed", lambda: 0)
    assert panel_coefficients(model) is not None  # a copy already made is used whatever the memory now
