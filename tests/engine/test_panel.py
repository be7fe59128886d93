"""The fused float32 loss on the panel kernels (rftheory._engine.panel_loss), checked against float64
finite differences and the BLAS path; its caches and fall-backs."""
from __future__ import annotations


import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from rftheory._engine import kernels
from rftheory.attack.loss import projection_loss
from rftheory._engine.panel import (
    pack_tiles,
    panel_kernels_available,
)
from rftheory._engine import make_loss, sum_of_squares
from rftheory._engine.panel_loss import panel_coefficients
from rftheory.models.random_features import RandomFeatures
from rftheory.attack.reconstruct import random_sphere
from _panel_ref import _model, engine_loss, needs_numba, panel_loss_applicable


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
            runs.append(reconstruct(model.theta, model, 8, restarts=1, max_iter=30, reseed=False, tol=0.0, seed=4,
                                       strategy="restarts"))
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
    gc.collect()  # models of earlier tests awaiting collection must not be counted here
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
@pytest.mark.parametrize("R", [1, 3])
def test_column_and_packed_pass_2_agree_with_the_blas_path(R, monkeypatch, blas_path):
    """The loss with pass 2 on the column panels (large d) equals the packed one up to float32 rounding,
    and both the BLAS path; pass 1 is shared, so L and α agree bitwise."""
    from rftheory._engine import panel_loss

    model = _model(300, 70)
    X = np.stack([random_sphere(6, 70, np.random.default_rng(k)) for k in range(R)]).astype(np.float32)
    results = {}
    for column_min_d in (1, 10**9):
        monkeypatch.setattr(panel_loss, "COLUMN_MIN_D", column_min_d)
        results[column_min_d] = engine_loss(model, X, threads=2)
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
