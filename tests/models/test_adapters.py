"""Adapters (rftheory.models.adapters): hand-written VJPs and gradients against finite
differences, against torch.nn (when torch is importable), npz round trips, GD
training, and the attack on a trained MLP/ResNet."""
import importlib.util
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rftheory.models.adapters import SmallResNet, TwoLayerMLP, gradient_descent, one_hot_targets
from rftheory.models.adapters.resnet import conv3x3, conv3x3_backward
from rftheory.models.adapters.torch_io import export_npz, export_state_dict_npz, load_npz, state_dict, torch_module
from rftheory.backend import cupy_available
from rftheory.cli import main
from rftheory.data import digits
from rftheory.attack.loss import projection_loss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.attack.reconstruct import reconstruct

try:
    HAS_TORCH = importlib.util.find_spec("torch") is not None
except (ImportError, ValueError):  # e.g. sys.modules["torch"] = None
    HAS_TORCH = False
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional: the CPU build suffices)")

EPS = 1e-6


def _fd_directional(f, x, direction, eps=EPS):
    """Central difference (f(x + εE) − f(x − εE)) / 2ε of a scalar function."""
    return (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)


def _check_features_vjp(model, rng, n=3):
    X = rng.standard_normal((n, model.d))
    G = rng.standard_normal((n, model.p))
    vjp = model.features_vjp(X, G)
    assert vjp.shape == X.shape
    for _ in range(3):
        E = rng.standard_normal(X.shape)
        fd = _fd_directional(lambda Z: float(np.sum(G * model.features(Z))), X, E)
        assert float(np.sum(vjp * E)) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def _check_param_grads(model, rng, n=3):
    X = rng.standard_normal((n, model.d))
    Y = rng.standard_normal((n, model.outputs))
    _, grads = model.loss_and_grads(X, Y)
    assert set(grads) == set(model.params)
    for k, g in grads.items():
        E = rng.standard_normal(g.shape)
        p0 = model.params[k].copy()

        def loss_at(P, k=k):
            model.params[k] = P
            value = model.loss_and_grads(X, Y, names=())[0]
            return value

        fd = _fd_directional(loss_at, p0, E)
        model.params[k] = p0
        assert float(np.sum(g * E)) == pytest.approx(fd, rel=1e-6, abs=1e-9), k


# ---- finite differences (float64) -------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "tanh", "relu+tanh", "gelu", "0.5*silu+erf"])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_vjp_and_gradients_match_finite_differences(activation, bias, rng):
    model = TwoLayerMLP(6, 9, 3, activation, bias=bias, seed=3)
    # move the biases off zero so that they matter
    for k in model.params:
        if k.endswith("bias"):
            model.params[k] = rng.standard_normal(model.params[k].shape)
    _check_features_vjp(model, rng)
    _check_param_grads(model, rng)


@pytest.mark.parametrize("blocks,pool,activation", [
    (0, "flatten", "tanh"), (1, "flatten", "relu"), (2, "flatten", "relu+tanh"), (2, "avg", "gelu"), (1, "avg", "relu"),
])
def test_resnet_vjp_and_gradients_match_finite_differences(blocks, pool, activation, rng):
    model = SmallResNet((2, 4, 3), 3, blocks, 2, activation, pool=pool, seed=5)
    for k in model.params:
        if k.endswith("bias"):
            model.params[k] = 0.3 * rng.standard_normal(model.params[k].shape)
    _check_features_vjp(model, rng)
    _check_param_grads(model, rng)


def test_conv3x3_matches_scipy_correlate(rng):
    from scipy.ndimage import correlate

    a = rng.standard_normal((2, 5, 4, 3))  # n, H, W, c_in
    K = rng.standard_normal((4, 3, 3, 3))
    beta = rng.standard_normal(4)
    out, _ = conv3x3(np, a, K, beta)
    for i in range(2):
        for co in range(4):
            ref = beta[co] + sum(correlate(a[i, :, :, ci], K[co, ci], mode="constant", cval=0.0) for ci in range(3))
            np.testing.assert_allclose(out[i, :, :, co], ref, rtol=1e-12, atol=1e-12)


@given(
    n=st.integers(1, 3), H=st.integers(1, 5), W=st.integers(1, 5), ci=st.integers(1, 3), co=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_conv3x3_backward_is_the_adjoint(n, H, W, ci, co, seed):
    """⟨conv(a; K), G⟩ = ⟨a, ∂_a⟩ = ⟨K, ∂_K⟩ (the map is bilinear in (a, K))."""
    r = np.random.default_rng(seed)
    a = r.standard_normal((n, H, W, ci))
    K = r.standard_normal((co, ci, 3, 3))
    G = r.standard_normal((n, H, W, co))
    out, P = conv3x3(np, a, K)
    dA, dK, db = conv3x3_backward(np, G, K, P)
    inner = float(np.sum(out * G))
    assert float(np.sum(a * dA)) == pytest.approx(inner, rel=1e-10, abs=1e-10)
    assert float(np.sum(K * dK)) == pytest.approx(inner, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(db, G.sum(axis=(0, 1, 2)), rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: TwoLayerMLP(5, 40, 3, "relu+tanh", seed=2),
    lambda: SmallResNet((1, 3, 3), 4, 1, 2, "tanh", seed=2),
])
def test_projection_loss_gradient_on_adapters_matches_finite_differences(make, rng):
    """The attack's loss (feature_map_loss, Θ with C columns) differentiates through features_vjp."""
    model = make()
    X = rng.standard_normal((7, model.d))
    Y = rng.standard_normal((7, model.outputs))
    model.fit(X, Y, train="all", max_steps=50, tol=0.0)
    theta = model.delta_theta()
    assert theta.shape == (model.p, model.outputs)
    Xh = rng.standard_normal((2, model.d))
    res = projection_loss(Xh, theta, model)
    assert 0.0 <= res.loss <= 1.0
    E = rng.standard_normal(Xh.shape)
    fd = _fd_directional(lambda Z: projection_loss(Z, theta, model, with_grad=False).loss, Xh, E)
    assert float(np.sum(res.grad * E)) == pytest.approx(fd, rel=1e-5, abs=1e-9)


# ---- seeded init, training, the attacked Θ ---------------------------------------------------

def test_init_is_a_function_of_the_seed():
    a, b, c = (SmallResNet((1, 4, 4), 3, 1, 2, seed=s) for s in (7, 7, 8))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["stem.weight"], c.params["stem.weight"])
    m = TwoLayerMLP(30, 2000, 1, seed=0)
    # W₁ ~ N(0, 1/d), W₂ ~ N(0, 1/m): sample variances within 5 standard errors
    for w, var in ((m.params["hidden.weight"], 1 / 30), (m.params["head.weight"], 1 / 2000)):
        se = var * math.sqrt(2 / w.size)
        assert abs(w.var() - var) < 5 * se
    assert TwoLayerMLP(3, 4, 2).n_params == 4 * 3 + 4 + 2 * 4 + 2


@pytest.mark.parametrize("train", ["all", "last"])
def test_gd_training_reaches_tolerance_and_theta_lies_in_the_feature_span(train):
    ds = digits(6, classes=(0, 1), seed=1)
    Y, classes = one_hot_targets(ds.y)
    assert Y.shape == (6, 2) and list(classes) == [-1.0, 1.0]
    floors = []
    for width in (600, 2400):
        model = TwoLayerMLP(64, width, 2, "relu", seed=4)
        body0 = model.params["hidden.weight"].copy()
        rep = model.fit(ds.X, Y, train=train, tol=1e-8)
        F = model.forward(ds.X)
        rel = float(np.sum((F - Y) ** 2) / np.sum(Y ** 2))
        assert rep.converged and rel <= 1e-8 and rel == pytest.approx(rep.final_loss, rel=1e-6)
        assert all(b <= a for a, b in zip(rep.loss_history, rep.loss_history[1:]))  # monotone GD
        floors.append(projection_loss(ds.X, model.delta_theta(), model, with_grad=False).loss)
        if train == "last":
            np.testing.assert_array_equal(model.params["hidden.weight"], body0)
            assert rep.body_change == 0.0
            assert floors[-1] < 1e-20  # Θ = −η Σ_t R_tᵀ H: exactly in the row span of H
        else:
            assert 0 < rep.body_change < 1e-2
            assert floors[-1] > 1e-20  # the body drifted: Θ is not exactly in span h_T(X)
    if train == "all":
        # the floor comes from the body's drift, O(1/m): 4× the width, far less than 1/4 the floor
        assert floors[1] < floors[0] / 4


def test_gd_rejects_increasing_steps_and_still_converges():
    rng = np.random.default_rng(0)
    model = SmallResNet((1, 3, 3), 3, 1, 1, "tanh", seed=1)
    X = rng.standard_normal((4, 9))
    y = rng.standard_normal(4)
    rep = gradient_descent(model, X, y, lr=50.0, tol=1e-6, max_steps=5000)
    assert rep.rejected_steps > 0 and rep.lr < 50.0
    assert rep.converged


def test_training_input_errors():
    model = TwoLayerMLP(4, 5, 2)
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="shape"):
        model.fit(X, np.ones((3, 3)))
    with pytest.raises(ValueError, match="train"):
        model.fit(X, np.ones((3, 2)), train="first")
    with pytest.raises(ValueError, match="zeros"):
        model.fit(X, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="columns"):
        model.features(np.ones((3, 5)))
    with pytest.raises(ValueError, match="pool"):
        SmallResNet((1, 4, 4), pool="max")
    with pytest.raises(ValueError, match="width"):
        TwoLayerMLP(4, 0)


def test_features_in_chunks_equal_features_at_once(rng):
    model = SmallResNet((1, 4, 4), 3, 1, 1, "relu", seed=0)
    model.chunk_rows = 4
    X = rng.standard_normal((10, 16))
    np.testing.assert_allclose(model.features(X), np.concatenate([model.features(X[i:i + 1]) for i in range(10)]),
                               rtol=1e-13, atol=1e-14)


# ---- npz (PyTorch state_dict) I/O -------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: TwoLayerMLP(5, 7, 3, "relu+tanh", seed=1),
    lambda: TwoLayerMLP(5, 7, 1, "gelu", bias=False, head_bias=False, seed=1),
    lambda: SmallResNet((2, 3, 4), 3, 2, 2, "tanh", seed=1),
    lambda: SmallResNet((1, 4, 4), 5, 0, 1, "relu", pool="avg", head_bias=False, seed=1),
])
def test_npz_round_trip(make, tmp_path, rng):
    model = make()
    X = rng.standard_normal((3, model.d))
    model.fit(X, rng.standard_normal((3, model.outputs)), max_steps=5, tol=0.0)
    path = tmp_path / "net.npz"
    export_npz(model, path)
    back = load_npz(path)
    assert type(back) is type(model) and back.activation.name == model.activation.name
    assert set(back.params) == set(model.params)
    for k in model.params:
        np.testing.assert_array_equal(back.params[k], model.params[k])
        np.testing.assert_array_equal(back.init_params[k], model.init_params[k])
    np.testing.assert_array_equal(back.forward(X), model.forward(X))
    np.testing.assert_array_equal(back.delta_theta(), model.delta_theta())
    f32 = load_npz(path, dtype=np.float32)
    assert f32.features(X).dtype == np.float32


def test_npz_sequential_keys_prefix_map_and_missing_init(tmp_path, rng):
    model = TwoLayerMLP(4, 6, 2, "tanh", seed=0)
    sd = state_dict(model)
    seq = {"0.weight": sd["hidden.weight"], "0.bias": sd["hidden.bias"], "2.weight": sd["head.weight"],
           "2.bias": sd["head.bias"]}
    seq_init = dict(seq, **{"2.weight": seq["2.weight"] + 0.5})
    export_state_dict_npz(tmp_path / "seq.npz", seq, seq_init, meta={"activation": "tanh"})
    back = load_npz(tmp_path / "seq.npz")
    X = rng.standard_normal((2, 4))
    np.testing.assert_array_equal(back.forward(X), model.forward(X))
    np.testing.assert_array_equal(back.delta_theta(), (seq["2.weight"] - seq_init["2.weight"]).T)
    np.testing.assert_array_equal(back.init_params["hidden.weight"], sd["hidden.weight"])  # init.* renamed too

    fc = {"fc1.weight": sd["hidden.weight"], "fc1.bias": sd["hidden.bias"], "fc2.weight": sd["head.weight"]}
    export_state_dict_npz(tmp_path / "fc.npz", fc)
    with pytest.raises(ValueError, match="activation"):
        load_npz(tmp_path / "fc.npz", key_map={"fc1.": "hidden.", "fc2.": "head."})
    with pytest.raises(ValueError, match="init"):
        load_npz(tmp_path / "fc.npz", key_map={"fc1.": "hidden.", "fc2.": "head."}, activation="tanh")
    zero = load_npz(tmp_path / "fc.npz", key_map={"fc1.": "hidden.", "fc2.": "head."}, activation="tanh",
                    missing_init="zeros")
    np.testing.assert_array_equal(zero.delta_theta(), sd["head.weight"].T)
    with pytest.raises(ValueError, match="unexpected"):
        load_npz(tmp_path / "fc.npz", activation="tanh", missing_init="zeros", architecture="mlp",
                 key_map={"fc1.weight": "hidden.weight", "fc2.weight": "head.weight", "fc1.bias": "extra.bias"})
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "none.npz")
    # only the head's init: enough for Θ; the body's init defaults to the trained body
    export_state_dict_npz(tmp_path / "head.npz", sd, {"head.weight": np.zeros_like(sd["head.weight"])},
                          meta={"activation": "tanh"})
    head_only = load_npz(tmp_path / "head.npz")
    np.testing.assert_array_equal(head_only.delta_theta(), sd["head.weight"].T)
    np.testing.assert_array_equal(head_only.init_params["hidden.weight"], sd["hidden.weight"])
    export_state_dict_npz(tmp_path / "nohead.npz", sd, {"hidden.weight": sd["hidden.weight"]},
                          meta={"activation": "tanh"})
    with pytest.raises(ValueError, match="head.weight"):
        load_npz(tmp_path / "nohead.npz")


def test_npz_resnet_needs_image_shape_and_consistent_head(tmp_path):
    model = SmallResNet((1, 4, 4), 2, 1, 1, "relu", seed=0)
    sd = state_dict(model)
    export_state_dict_npz(tmp_path / "r.npz", sd, _shifted_head(sd), meta={"activation": "relu"})
    with pytest.raises(ValueError, match="image"):
        load_npz(tmp_path / "r.npz")
    assert load_npz(tmp_path / "r.npz", image_shape=(4, 4)).pool == "flatten"
    with pytest.raises(ValueError, match="neither"):
        load_npz(tmp_path / "r.npz", image_shape=(2, 4))  # c·H·W = 16 and c = 2, but p_L = 32
    assert load_npz(tmp_path / "r.npz", image_shape=(1, 4, 4)).p == 2 * 16


def _mlp_sd():
    model = TwoLayerMLP(4, 6, 2, "tanh", seed=0)
    return state_dict(model)


def _shifted_head(sd):
    """An init state_dict equal to ``sd`` but for the head (so that Θ = W_L − W_L^init ≠ 0)."""
    return dict(sd, **{"head.weight": sd["head.weight"] + 1.0})


def test_npz_1d_hidden_weight_names_key_and_shape(tmp_path):
    sd = _mlp_sd()
    sd["hidden.weight"] = sd["hidden.weight"].ravel()
    export_state_dict_npz(tmp_path / "flat.npz", sd, sd, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match=r"'hidden.weight' must be a 2-D array of shape \(m, d\).*got shape \(24,\)"):
        load_npz(tmp_path / "flat.npz")
    sd = _mlp_sd()
    sd["head.weight"] = sd["head.weight"][None]
    export_state_dict_npz(tmp_path / "h3.npz", sd, sd, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match=r"'head.weight' must be a 2-D array"):
        load_npz(tmp_path / "h3.npz")
    rsd = state_dict(SmallResNet((1, 4, 4), 2, 1, 1, "relu", seed=0))
    rsd["stem.weight"] = rsd["stem.weight"][0]
    export_state_dict_npz(tmp_path / "r.npz", rsd, rsd, meta={"activation": "relu", "image_shape": "1,4,4"})
    with pytest.raises(ValueError, match=r"'stem.weight' must be a 4-D array"):
        load_npz(tmp_path / "r.npz")


def _bomb(path, shape, dtype="<f8", compress=True):
    """A .npz whose member declares ``shape`` in its header and holds only a few data bytes."""
    import io
    import zipfile

    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    buf.write(b"\0" * 4096)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        zf.writestr("hidden.weight.npy", buf.getvalue())


def test_npz_decompressed_size_capped_before_loading(tmp_path):
    _bomb(tmp_path / "bomb.npz", (1 << 20, 1 << 12))  # declares 32 GiB, a few kB on disk
    assert (tmp_path / "bomb.npz").stat().st_size < 10_000
    with pytest.raises(ValueError, match=r"bomb.npz.*32768.0 MiB.*max_bytes"):
        load_npz(tmp_path / "bomb.npz", activation="tanh", missing_init="zeros")
    sd = _mlp_sd()
    export_state_dict_npz(tmp_path / "ok.npz", sd, _shifted_head(sd), meta={"activation": "tanh"})
    need = 2 * (24 + 6 + 12 + 2) * 8 + 4 * 4  # trained and init float64 parameters, meta.activation "tanh"
    with pytest.raises(ValueError, match=r"ok.npz: its arrays need \d+ bytes.*above max_bytes"):
        load_npz(tmp_path / "ok.npz", max_bytes=need - 1)
    assert load_npz(tmp_path / "ok.npz", max_bytes=need).p == 6
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_bytes"):
            load_npz(tmp_path / "ok.npz", max_bytes=bad)


def test_npz_small_header_but_missing_data_is_corrupt(tmp_path):
    _bomb(tmp_path / "short.npz", (100, 100), compress=False)  # 80 kB declared, 4 kB present
    with pytest.raises(ValueError, match="short.npz is not a readable .npz"):
        load_npz(tmp_path / "short.npz", activation="tanh", missing_init="zeros")


@pytest.mark.parametrize("cut", [10, 200, -30, -300])
def test_npz_truncated_or_corrupt_names_file(tmp_path, cut):
    sd = _mlp_sd()
    export_state_dict_npz(tmp_path / "full.npz", sd, sd, meta={"activation": "tanh"})
    raw = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[:cut])
    with pytest.raises(ValueError, match="cut.npz"):
        load_npz(tmp_path / "cut.npz")
    (tmp_path / "noise.npz").write_bytes(raw[:100] + bytes(range(256)) * 4 + raw[100 + 1024:])
    with pytest.raises(ValueError, match="noise.npz"):
        load_npz(tmp_path / "noise.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="text.npz"):
        load_npz(tmp_path / "text.npz")


def test_npz_non_finite_and_non_numeric_refused(tmp_path):
    for key, value in [("hidden.weight", np.nan), ("head.bias", np.inf)]:
        sd = _mlp_sd()
        sd[key] = sd[key].copy()
        sd[key].flat[0] = value
        export_state_dict_npz(tmp_path / "nf.npz", sd, _mlp_sd(), meta={"activation": "tanh"})
        with pytest.raises(ValueError, match=rf"'{key}' contains 1 non-finite"):
            load_npz(tmp_path / "nf.npz")
    sd = _mlp_sd()
    init = dict(sd, **{"head.weight": np.full_like(sd["head.weight"], np.nan)})
    export_state_dict_npz(tmp_path / "nfi.npz", sd, init, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match="init.head.weight"):
        load_npz(tmp_path / "nfi.npz")
    sd = _mlp_sd()
    sd["head.weight"] = sd["head.weight"].astype(np.complex128)
    export_state_dict_npz(tmp_path / "c.npz", sd, sd, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match="complex"):
        load_npz(tmp_path / "c.npz")
    np.savez(tmp_path / "obj.npz", **{"hidden.weight": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="objects"):
        load_npz(tmp_path / "obj.npz", activation="tanh")


# ---- torch.nn references (skipped without torch) ---------------------------------------------

def _torch_cases():
    return [
        lambda dt: TwoLayerMLP(6, 11, 3, "relu", seed=1, dtype=dt),
        lambda dt: TwoLayerMLP(6, 11, 2, "relu+tanh", bias=False, seed=1, dtype=dt),
        lambda dt: TwoLayerMLP(6, 11, 1, "gelu", seed=1, dtype=dt),
        lambda dt: SmallResNet((1, 8, 8), 4, 1, 4, "relu", seed=1, dtype=dt),
        lambda dt: SmallResNet((3, 5, 4), 3, 2, 2, "relu+tanh", pool="avg", seed=1, dtype=dt),
        lambda dt: SmallResNet((2, 4, 4), 3, 2, 1, "silu", head_bias=False, seed=1, dtype=dt),
    ]


@requires_torch
@pytest.mark.parametrize("case", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_input_gradient_match_torch(case, dtype, rng):
    import torch

    model = _torch_cases()[case](dtype)
    for k in model.params:  # non-trivial biases
        if k.endswith("bias"):
            model.params[k] = (0.2 * rng.standard_normal(model.params[k].shape)).astype(dtype)
    module = torch_module(model)
    X = rng.standard_normal((4, model.d)).astype(dtype)
    G = rng.standard_normal((4, model.outputs)).astype(dtype)
    xt = torch.tensor(X, requires_grad=True)
    out = module(xt)
    (out * torch.tensor(G)).sum().backward()
    scale = lambda a: max(1.0, float(np.abs(a).max()))  # noqa: E731
    ref_out, ref_grad = out.detach().numpy(), xt.grad.numpy()
    assert np.abs(model.forward(X) - ref_out).max() <= 1e-5 * scale(ref_out)
    assert np.abs(model.input_gradient(X, G) - ref_grad).max() <= 1e-5 * scale(ref_grad)
    feats = module.features(torch.tensor(X)).detach().numpy()
    assert np.abs(model.features(X) - feats).max() <= 1e-5 * scale(feats)
    if dtype == np.float64:  # same math in double precision: agreement to rounding
        np.testing.assert_allclose(model.input_gradient(X, G), ref_grad, rtol=1e-10, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("case", [0, 3, 4])
def test_parameter_gradients_match_torch_autograd(case, rng):
    import torch

    model = _torch_cases()[case](np.float64)
    module = torch_module(model)
    X = rng.standard_normal((5, model.d))
    Y = rng.standard_normal((5, model.outputs))
    loss, grads = model.loss_and_grads(X, Y)
    tl = ((module(torch.tensor(X)) - torch.tensor(Y)) ** 2).sum() / (2 * 5)
    tl.backward()
    assert loss == pytest.approx(float(tl.detach()), rel=1e-12)
    for name, prm in module.named_parameters():
        np.testing.assert_allclose(grads[name], prm.grad.numpy(), rtol=1e-9, atol=1e-12)


@requires_torch
def test_state_dict_exported_from_torch_loads(tmp_path, rng):
    import copy

    import torch

    torch.manual_seed(0)
    net = torch_module(SmallResNet((1, 8, 8), 3, 1, 2, "relu", seed=0))
    for prm in net.parameters():  # a torch-side initialisation, unknown to rftheory
        torch.nn.init.normal_(prm, std=0.3)
    init = copy.deepcopy(net.state_dict())
    with torch.no_grad():
        net.head.weight += 1.0
    export_state_dict_npz(tmp_path / "t.npz", net.state_dict(), init,
                          meta={"activation": "relu", "image_shape": (1, 8, 8)})
    model = load_npz(tmp_path / "t.npz")
    X = rng.standard_normal((3, 64))
    np.testing.assert_allclose(model.forward(X), net(torch.tensor(X)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.delta_theta(), np.ones((model.p, 2)), rtol=1e-12)


def test_torch_module_without_torch_raises_importerror():
    if HAS_TORCH:
        pytest.skip("torch is installed")
    with pytest.raises(ImportError):
        torch_module(TwoLayerMLP(3, 4))


# ---- the attack -------------------------------------------------------------------------------

def _attack_digits(model_factory, n, classes, restarts=3, seed=0, train="all"):
    ds = digits(n, classes=classes, seed=seed)
    Y, _ = one_hot_targets(ds.y)
    model = model_factory(Y.shape[1])
    rep = model.fit(ds.X, Y, train=train, tol=1e-8)
    assert rep.converged
    res = reconstruct(model.delta_theta(), model, n, restarts=restarts, max_iter=2000, reseed=False, seed=seed)
    return reconstruction_errors(ds.X, res.X_hat, threshold=0.1), res, model


def test_mlp_attack_recovers_digits_small():
    """n=5 digits, 2 classes, width 8·dn: the attack on ΔW₂ recovers the samples."""
    n, d = 5, 64
    errs, res, model = _attack_digits(lambda C: TwoLayerMLP(d, 8 * d * n, C, "relu", seed=1000), n, (0, 1))
    print(f"MLP n={n}: recovered {errs.recovered_fraction:.0%} (sign-aware < 0.1), "
          f"mean sign-aware error {errs.sign_aware.mean():.2e}, loss {res.loss:.2e}")
    assert errs.recovered_fraction >= 0.8


def test_resnet_attack_recovers_digits_small():
    """n=4 digits, 2 classes, ResNet (1 block, flatten head, p_L = 8·dn = 32·64)."""
    n = 4
    errs, res, model = _attack_digits(
        lambda C: SmallResNet((1, 8, 8), 8 * n, 1, C, "relu", seed=1000), n, (0, 1))
    assert model.p == 8 * 64 * n
    print(f"ResNet n={n}: recovered {errs.recovered_fraction:.0%}, mean sign-aware error {errs.sign_aware.mean():.2e}")
    assert errs.recovered_fraction >= 0.75


@pytest.mark.slow
def test_mlp_attack_recovers_digits_acceptance():
    """Acceptance: n=20 digits of 4 classes, last-layer width 8·dn, all layers trained
    by GD: at least 80% of the samples recovered with sign-aware error < 0.1."""
    n, d = 20, 64
    errs, res, model = _attack_digits(lambda C: TwoLayerMLP(d, 8 * d * n, C, "relu", seed=1000), n, (0, 1, 2, 3))
    print(f"MLP n={n}, 4 classes, width {model.p} = 8·dn: recovered {errs.recovered_fraction:.0%} "
          f"(sign-aware < 0.1), mean sign-aware error {errs.sign_aware.mean():.2e}, loss {res.loss:.2e}")
    assert errs.recovered_fraction >= 0.8


# ---- CLI --------------------------------------------------------------------------------------

def test_cli_mlp_prints_pL_ratio_and_total_p(capsys):
    code = main(["reconstruct", "--model", "mlp", "--data", "digits", "--n", "4", "--ratio", "4",
                 "--activation", "relu", "--restarts", "2", "--max-iter", "300", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert code == 0
    classes = len(np.unique(digits(4, seed=0).y))  # the CLI's digits: default classes, seed 0
    model = TwoLayerMLP(64, 4 * 64 * 4, classes)
    assert "p_L/(dn)    4 " in out and f"total p = {model.n_params}" in out
    assert "recovered" in out and "loss at the true X" in out


def test_cli_resnet_and_rejected_combinations(capsys):
    code = main(["reconstruct", "--model", "resnet", "--d", "6", "--n", "2", "--channels", "3", "--blocks", "1",
                 "--restarts", "1", "--max-iter", "20", "--train-steps", "200", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert code == 0 and "ResNet input 1×1×6" in out and "p_L = 18 last-layer features" in out
    assert main(["reconstruct", "--model", "mlp", "--derivative", "relu", "--n", "2", "--d", "3"]) == 2
    assert "derivative" in capsys.readouterr().err
    assert main(["reconstruct", "--model", "mlp", "--stream-weights", "--n", "2", "--d", "3"]) == 2


def test_cli_rf_output_has_no_network_lines(capsys):
    assert main(["reconstruct", "--n", "3", "--d", "4", "--ratio", "5", "--restarts", "1", "--max-iter", "50"]) == 0
    out = capsys.readouterr().out
    assert "RF p=60" in out and "p_L" not in out and "total p" not in out


# ---- GPU ------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy(rng):
    import cupy as cp

    for make in (lambda b: TwoLayerMLP(6, 9, 2, "relu+tanh", seed=1, backend=b),
                 lambda b: SmallResNet((1, 4, 4), 3, 1, 2, "tanh", seed=1, backend=b)):
        cpu, gpu = make("numpy"), make("cupy")
        X = rng.standard_normal((3, cpu.d))
        G = rng.standard_normal((3, cpu.p))
        np.testing.assert_allclose(cp.asnumpy(gpu.features(cp.asarray(X))), cpu.features(X), rtol=1e-10)
        np.testing.assert_allclose(cp.asnumpy(gpu.features_vjp(cp.asarray(X), cp.asarray(G))),
                                   cpu.features_vjp(X, G), rtol=1e-10, atol=1e-12)
