"""Importing PyTorch models (rftheory.models.adapters.torch_io): BatchNorm folding against a
hand-written BN forward pass (NumPy only) and against torch.nn in eval mode, the message for an
initial state_dict saved without copy.deepcopy, and the origin of a loaded model."""
import copy
import warnings

import numpy as np
import pytest

from rftheory.models.adapters import SmallResNet, TwoLayerMLP
from rftheory.models.adapters.torch_io import (BN_EPS, export_npz, export_state_dict_npz, fold_batchnorm, load_npz,
                                               state_dict, torch_module)

TORCH_REASON = "torch is not installed (optional extra .[torch]; the CPU build suffices)"


def _sigma(z):  # relu+tanh, written out
    return np.maximum(z, 0.0) + np.tanh(z)


def _conv_ref(a, K, b=None):
    """3×3, stride 1, padding 1 cross-correlation of NCHW maps, as a sum over the nine shifts."""
    n, _, H, W = a.shape
    ap = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = sum(np.einsum("oc,nchw->nohw", K[:, :, i, j], ap[:, :, i:i + H, j:j + W]) for i in range(3) for j in range(3))
    return out if b is None else out + b[None, :, None, None]


def _bn_ref(z, sd, name, eps):
    """Eval-mode BatchNorm over axis 1: (z − μ)/√(v + eps)·γ + β (γ = 1, β = 0 without affine)."""
    shape = (1, -1) + (1,) * (z.ndim - 2)
    c = z.shape[1]
    g = sd.get(name + ".weight", np.ones(c)).reshape(shape)
    beta = sd.get(name + ".bias", np.zeros(c)).reshape(shape)
    mu, var = sd[name + ".running_mean"].reshape(shape), sd[name + ".running_var"].reshape(shape)
    return (z - mu) / np.sqrt(var + eps) * g + beta


def _bn(rng, c, affine=True):
    p = {"running_mean": rng.standard_normal(c), "running_var": rng.uniform(0.3, 2.0, c),
         "num_batches_tracked": np.array(17, dtype=np.int64)}
    if affine:
        p.update(weight=rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c), bias=rng.standard_normal(c))
    return p


def _put(sd, name, params):
    sd.update({f"{name}.{k}": v for k, v in params.items()})


def _resnet_bn_sd(rng, c0=2, c=3, H=4, W=3, C=2):
    """A BN ResNet state_dict: the stem without conv bias (Conv2d(bias=False) + BN), block 0 with conv
    biases and BN (bn1 without affine), block 1 without BN."""
    sd = {"stem.weight": rng.standard_normal((c, c0, 3, 3)) / 3}
    _put(sd, "stem_bn", _bn(rng, c))
    for k, with_bn in ((0, True), (1, False)):
        for j in (1, 2):
            sd[f"blocks.{k}.conv{j}.weight"] = rng.standard_normal((c, c, 3, 3)) / 5
            sd[f"blocks.{k}.conv{j}.bias"] = 0.3 * rng.standard_normal(c)
            if with_bn:
                _put(sd, f"blocks.{k}.bn{j}", _bn(rng, c, affine=j == 2))
    sd["head.weight"] = rng.standard_normal((C, c * H * W)) / 6
    sd["head.bias"] = rng.standard_normal(C)
    return sd


def _resnet_bn_forward(sd, X, shape, eps):
    """The network of _resnet_bn_sd written out: conv → BN → σ, residual blocks, flatten, head."""
    a = X.reshape((X.shape[0],) + shape)
    a = _sigma(_bn_ref(_conv_ref(a, sd["stem.weight"]), sd, "stem_bn", eps))
    for k in (0, 1):
        def bn(z, j, k=k):
            return _bn_ref(z, sd, f"blocks.{k}.bn{j}", eps) if f"blocks.{k}.bn{j}.running_mean" in sd else z

        u = bn(_conv_ref(a, sd[f"blocks.{k}.conv1.weight"], sd[f"blocks.{k}.conv1.bias"]), 1)
        w = bn(_conv_ref(_sigma(u), sd[f"blocks.{k}.conv2.weight"], sd[f"blocks.{k}.conv2.bias"]), 2)
        a = _sigma(a + w)
    return a.reshape(X.shape[0], -1) @ sd["head.weight"].T + sd["head.bias"]


# ---- BatchNorm folding, NumPy only --------------------------------------------------------------

@pytest.mark.parametrize("eps_in_meta,eps_arg", [(None, None), (0.1, None), (0.1, 0.25)])
def test_resnet_batchnorm_folded_matches_hand_written_forward(tmp_path, rng, eps_in_meta, eps_arg):
    shape = (2, 4, 3)
    sd = _resnet_bn_sd(rng)
    init = {"head.weight": np.zeros_like(sd["head.weight"]),
            "stem_bn.running_mean": np.zeros(3), "stem_bn.running_var": np.ones(3), "stem_bn.weight": np.ones(3)}
    meta = {"activation": "relu+tanh", "image_shape": shape}
    if eps_in_meta is not None:
        meta["bn_eps"] = eps_in_meta
    export_state_dict_npz(tmp_path / "bn.npz", sd, init, meta=meta)
    model = load_npz(tmp_path / "bn.npz", bn_eps=eps_arg)
    eps = eps_arg if eps_arg is not None else eps_in_meta if eps_in_meta is not None else BN_EPS
    X = rng.standard_normal((5, model.d))
    ref = _resnet_bn_forward(sd, X, shape, eps)
    np.testing.assert_allclose(model.forward(X), ref, rtol=1e-12, atol=1e-12)
    assert not any("bn" in k for k in model.params)  # folded: the plain adapter
    np.testing.assert_array_equal(model.delta_theta(), sd["head.weight"].T)
    # init.* are folded too: the stem's init BN (γ = 1, μ = 0, v = 1) divides the trained stem by √(1 + eps),
    # the missing ones are the trained BN (so the folded block equals the trained one)
    np.testing.assert_allclose(model.init_params["stem.weight"], sd["stem.weight"] / np.sqrt(1 + eps), rtol=1e-14)
    np.testing.assert_allclose(model.init_params["stem.bias"], sd["stem_bn.bias"], rtol=1e-14)
    np.testing.assert_array_equal(model.init_params["blocks.0.conv1.weight"], model.params["blocks.0.conv1.weight"])
    if eps_arg is None and eps_in_meta is not None:  # eps matters: the default would give another network
        assert np.abs(load_npz(tmp_path / "bn.npz", bn_eps=BN_EPS).forward(X) - ref).max() > 1e-3


def test_mlp_batchnorm_folded_matches_hand_written_forward(tmp_path, rng):
    """nn.Sequential(Linear(d, m, bias=False), BatchNorm1d(m), σ, Linear(m, C)): keys 0.*, 1.*, 3.*."""
    d, m, C = 5, 7, 3
    sd = {"0.weight": rng.standard_normal((m, d))}
    _put(sd, "1", _bn(rng, m))
    sd.update({"3.weight": rng.standard_normal((C, m)), "3.bias": rng.standard_normal(C)})
    init = {"3.weight": np.zeros((C, m))}
    export_state_dict_npz(tmp_path / "seq.npz", sd, init, meta={"activation": "relu+tanh"})
    model = load_npz(tmp_path / "seq.npz")
    X = rng.standard_normal((4, d))
    hidden = _sigma(_bn_ref(X @ sd["0.weight"].T, sd, "1", BN_EPS))
    np.testing.assert_allclose(model.forward(X), hidden @ sd["3.weight"].T + sd["3.bias"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.features(X), hidden, rtol=1e-12, atol=1e-13)
    assert "hidden.bias" in model.params  # the fold creates the bias b' = (0 − μ)s + β


def test_fold_batchnorm_is_the_composition(rng):
    """fold_batchnorm(W, b, BN) applied to x equals BN(Wx + b) for a Linear layer, any eps."""
    W, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((6, 3))
    bn = _bn(rng, 4)
    for eps in (0.0, 1e-5, 0.5):
        Wf, bf = fold_batchnorm(W, b, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"], eps)
        sd = {f"bn.{k}": v for k, v in bn.items()}
        np.testing.assert_allclose(x @ Wf.T + bf, _bn_ref(x @ W.T + b, sd, "bn", eps), rtol=1e-13, atol=1e-13)
    Wf, bf = fold_batchnorm(W, None, bn["running_mean"], bn["running_var"])  # no bias, affine=False
    np.testing.assert_allclose(x @ Wf.T + bf, (x @ W.T - bn["running_mean"]) / np.sqrt(bn["running_var"] + BN_EPS),
                               rtol=1e-13, atol=1e-13)


def test_batchnorm_like_keys_and_unfoldable_batchnorm_are_named(tmp_path, rng):
    sd = _resnet_bn_sd(rng)
    init = {"head.weight": np.zeros_like(sd["head.weight"])}
    meta = {"activation": "relu", "image_shape": "2,4,3"}
    # torchvision-style names: the message is about BatchNorm, not a plain "use key_map"
    tv = {("bn1." + k[len("stem_bn."):] if k.startswith("stem_bn.") else k): v for k, v in sd.items()}
    export_state_dict_npz(tmp_path / "tv.npz", tv, init, meta=meta)
    with pytest.raises(ValueError, match=r"'bn1\.\*'\] look like BatchNorm.*eval mode.*stem_bn\.\*"):
        load_npz(tmp_path / "tv.npz")
    folded = load_npz(tmp_path / "tv.npz", key_map={"bn1.": "stem_bn."})  # the rename the message suggests
    export_state_dict_npz(tmp_path / "ok.npz", sd, init, meta=meta)
    X = rng.standard_normal((2, folded.d))
    np.testing.assert_array_equal(folded.forward(X), load_npz(tmp_path / "ok.npz").forward(X))
    # a BN after the residual add has no counterpart
    extra = dict(sd, **{f"blocks.0.bn3.{k}": v for k, v in _bn(rng, 3).items()})
    export_state_dict_npz(tmp_path / "bn3.npz", extra, init, meta=meta)
    with pytest.raises(ValueError, match="blocks.0.bn3.*BatchNorm"):
        load_npz(tmp_path / "bn3.npz")
    # track_running_stats=False: no running statistics, batch statistics even in eval mode
    nostats = {k: v for k, v in sd.items() if not k.startswith("stem_bn.running")}
    export_state_dict_npz(tmp_path / "ns.npz", nostats, init, meta=meta)
    with pytest.raises(ValueError, match=r"stem_bn.*track_running_stats=False.*cannot be folded into stem"):
        load_npz(tmp_path / "ns.npz")
    # a BN vector of the wrong length, a negative variance
    for key, value, match in (("stem_bn.running_mean", np.zeros(4), r"stem_bn.running_mean has shape \(4,\), "
                               r"expected \(3,\)"), ("stem_bn.running_var", -np.ones(3), "running_var")):
        export_state_dict_npz(tmp_path / "bad.npz", dict(sd, **{key: value}), init, meta=meta)
        with pytest.raises(ValueError, match=match):
            load_npz(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="bn_eps"):
        load_npz(tmp_path / "ok.npz", bn_eps=-1.0)


# ---- Θ = 0: the initial state_dict aliased to the trained one ------------------------------------

def _trained_mlp(rng):
    model = TwoLayerMLP(4, 6, 2, "tanh", seed=0)
    X = rng.standard_normal((3, 4))
    model.fit(X, rng.standard_normal((3, 2)), max_steps=3, tol=0.0)
    return model


def test_init_equal_to_trained_names_deepcopy(tmp_path, rng):
    model = _trained_mlp(rng)
    sd = state_dict(model)
    export_state_dict_npz(tmp_path / "alias.npz", sd, sd, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match=r"alias.npz: every init.\* array equals.*Θ = W_L − W_L\^init is the zero "
                                         r"matrix.*init = net.state_dict\(\).*copy.deepcopy\(net.state_dict\(\)\)"):
        load_npz(tmp_path / "alias.npz")
    # only init.head.weight, equal to the trained head: the same likely cause
    export_state_dict_npz(tmp_path / "head.npz", sd, {"head.weight": sd["head.weight"]}, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match=r"the only init.\* array.*deepcopy"):
        load_npz(tmp_path / "head.npz")
    with pytest.warns(UserWarning, match="deepcopy.*loaded anyway"):
        loaded = load_npz(tmp_path / "alias.npz", zero_theta="warn")
    np.testing.assert_array_equal(loaded.forward(np.ones((1, 4))), model.forward(np.ones((1, 4))))
    with pytest.raises(ValueError, match="zero_theta"):
        load_npz(tmp_path / "alias.npz", zero_theta="ignore")


def test_head_equal_but_body_trained_is_not_called_aliasing(tmp_path, rng):
    """Θ = 0 with the body's init different: the head did not train (an error, but not the deep-copy one)."""
    model = _trained_mlp(rng)
    sd, init = state_dict(model), state_dict(model, "init")
    init["head.weight"], init["head.bias"] = sd["head.weight"], sd["head.bias"]  # a frozen head
    export_state_dict_npz(tmp_path / "frozen.npz", sd, init, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match=r"zero matrix.*\(hidden.bias, hidden.weight\).*a copy, not an alias.*"
                                         r"head's weight did not change") as info:
        load_npz(tmp_path / "frozen.npz")
    assert "deepcopy" not in str(info.value)


def test_partly_equal_init_loads(tmp_path, rng):
    """Some init.* equal to the trained arrays (a frozen body, untouched biases) but a trained head: fine."""
    model = _trained_mlp(rng)
    sd, init = state_dict(model), state_dict(model, "init")
    init["hidden.weight"] = sd["hidden.weight"]
    init["hidden.bias"] = sd["hidden.bias"]
    export_state_dict_npz(tmp_path / "part.npz", sd, init, meta={"activation": "tanh"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_npz(tmp_path / "part.npz")
    np.testing.assert_array_equal(loaded.delta_theta(), model.delta_theta())
    assert np.any(loaded.delta_theta() != 0)


def test_zero_head_with_missing_init_zeros_is_refused(tmp_path):
    sd = state_dict(TwoLayerMLP(4, 6, 2, "tanh", seed=0))
    sd["head.weight"] = np.zeros_like(sd["head.weight"])
    export_state_dict_npz(tmp_path / "z.npz", sd, meta={"activation": "tanh"})
    with pytest.raises(ValueError, match="all zeros.*missing_init='zeros'"):
        load_npz(tmp_path / "z.npz", missing_init="zeros")


# ---- origin ---------------------------------------------------------------------------------------

def test_loaded_model_describes_its_origin(tmp_path, rng):
    for model in (_trained_mlp(rng), SmallResNet((1, 3, 3), 2, 1, 2, "relu", seed=4)):
        if isinstance(model, SmallResNet):
            model.params["head.weight"] = model.params["head.weight"] + 1.0
        assert model.origin is None and f"init seed={model.seed}" in model.describe()
        path = tmp_path / f"{type(model).__name__}.npz"
        export_npz(model, path)
        loaded = load_npz(path)
        assert loaded.origin == f"loaded from {path}"
        assert f"loaded from {path}" in loaded.describe() and "init seed" not in loaded.describe()
    sd = _resnet_bn_sd(rng)
    export_state_dict_npz(tmp_path / "bn.npz", sd, {"head.weight": np.zeros_like(sd["head.weight"])},
                          meta={"activation": "relu", "image_shape": "2,4,3"})
    assert "3 BatchNorm layers folded, eval mode" in load_npz(tmp_path / "bn.npz").describe()


# ---- against torch.nn (skipped without torch) ----------------------------------------------------

def _randomise_batchnorm(torch, net):
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_()
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.3, 2.0)


@pytest.mark.parametrize("make", [
    lambda: SmallResNet((2, 5, 4), 3, 2, 2, "relu+tanh", seed=1),
    lambda: SmallResNet((1, 4, 4), 4, 1, 3, "tanh", pool="avg", seed=2),
    lambda: TwoLayerMLP(6, 9, 3, "relu", seed=1),
])
def test_batchnorm_folded_matches_torch_eval(make, tmp_path, rng):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    adapter = make()
    meta = {"activation": adapter.activation.name}
    if isinstance(adapter, SmallResNet):
        meta["image_shape"] = adapter.image_shape
    eps = 1e-3
    net = torch_module(adapter, batchnorm=True, bn_eps=eps)
    X = rng.standard_normal((4, adapter.d))
    xt = torch.tensor(X)
    # set to the identity in eval mode: the module equals the adapter
    np.testing.assert_allclose(net(xt).detach().numpy(), adapter.forward(X), rtol=1e-13, atol=1e-13)
    init = copy.deepcopy(net.state_dict())
    _randomise_batchnorm(torch, net)
    with torch.no_grad():
        net.head.weight.add_(0.1 * torch.randn_like(net.head.weight))
    export_state_dict_npz(tmp_path / "bn.npz", net.state_dict(), init, meta=dict(meta, bn_eps=eps))
    model = load_npz(tmp_path / "bn.npz")
    assert not net.training
    out = net(xt).detach().numpy()
    assert np.abs(out - adapter.forward(X)).max() > 1e-2  # the BatchNorm is no longer the identity
    np.testing.assert_allclose(model.forward(X), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.features(X), net.features(xt).detach().numpy(), rtol=1e-12, atol=1e-12)
    G = rng.standard_normal((4, model.outputs))
    xg = torch.tensor(X, requires_grad=True)
    (net(xg) * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(model.input_gradient(X, G), xg.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.delta_theta(), (net.head.weight - init["head.weight"]).detach().numpy().T,
                               rtol=1e-12, atol=1e-15)


def test_torch_state_dict_without_deepcopy_gets_the_message(tmp_path, rng):
    """init = net.state_dict() before an in-place optimiser step aliases the trained tensors."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    torch.set_num_threads(1)
    adapter = SmallResNet((1, 4, 4), 3, 1, 2, "relu", seed=0)
    X, Y = torch.tensor(rng.standard_normal((5, 16))), torch.tensor(rng.standard_normal((5, 2)))
    meta = {"activation": "relu", "image_shape": "1,4,4"}
    for copied in (False, True):
        net = torch_module(adapter, batchnorm=True).train()  # train mode: the running statistics move too
        init = copy.deepcopy(net.state_dict()) if copied else net.state_dict()
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        ((net(X) - Y) ** 2).sum().backward()
        opt.step()
        export_state_dict_npz(tmp_path / "net.npz", net.state_dict(), init, meta=meta)
        if not copied:
            with pytest.raises(ValueError, match=r"init = net.state_dict\(\).*copy.deepcopy\(net.state_dict\(\)\)"):
                load_npz(tmp_path / "net.npz")
            continue
        model = load_npz(tmp_path / "net.npz")
        net.eval()
        np.testing.assert_allclose(model.forward(X.numpy()), net(X).detach().numpy(), rtol=1e-12, atol=1e-12)
        assert np.any(model.delta_theta() != 0)
