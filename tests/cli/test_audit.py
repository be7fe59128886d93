"""``rftheory audit``: a file in, a verdict out; with --data, the match against the truth."""
import copy

import numpy as np
import pytest

from rftheory.cli import main
from rftheory.data.digits import digits
from rftheory.models.adapters import TwoLayerMLP, one_hot_targets
from rftheory.models.adapters.torch_io import export_npz, export_state_dict_npz, state_dict


@pytest.fixture(scope="module")
def gd_mlp():
    """The package's own full-batch-GD two-layer MLP on 8 digits (3 classes), all layers trained."""
    ds = digits(8, classes=(0, 1, 2), seed=0)
    Y, _ = one_hot_targets(ds.y)
    model = TwoLayerMLP(64, 1024, 3, "relu", seed=10)
    model.fit(ds.X, Y, train="all", tol=1e-6, max_steps=3000)
    return ds, model


@pytest.fixture
def files(gd_mlp, tmp_path):
    ds, model = gd_mlp
    weights = tmp_path / "mlp.npz"
    export_npz(model, weights)
    data = tmp_path / "data.npz"
    np.savez(data, X=ds.X, image_shape=np.array([8, 8]))
    return weights, data, tmp_path


def _run(capsys, *argv, restarts=1):
    code = main(["audit", *map(str, argv), "--restarts", str(restarts)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_audit_with_data_recovers_every_sample_and_says_why(files, capsys):
    weights, data, tmp = files
    code, out, _ = _run(capsys, weights, "--data", data, "--save-images", tmp / "img")
    assert code == 0
    assert "recovered   8/8" in out
    assert "verdict     assumptions hold" in out
    assert "form        span-init" in out and "no weight decay" in out
    assert "loaded from" in out
    assert (tmp / "img" / "audit_reconstruction.png").stat().st_size > 0


def test_audit_without_data_saves_the_reconstruction(files, capsys):
    weights, data, tmp = files
    out_path = tmp / "xhat.npz"
    code, out, _ = _run(capsys, weights, "--n", 8, "--out", out_path)
    assert code == 0 and "saved" in out
    with np.load(out_path) as f:
        assert f["X_hat"].shape == (8, 64) and f["reliable"].shape == (8,)
        assert np.allclose(np.linalg.norm(f["X_hat"], axis=1), 8.0)


def test_audit_without_data_or_n_is_refused(files, capsys):
    weights, _, _ = files
    code, _, err = _run(capsys, weights)
    assert code == 2 and "--n" in err


@pytest.mark.parametrize("content, words", [
    (b"not a zip archive", "not a readable .npz"),
    (None, "no such file"),
])
def test_audit_bad_files_are_one_line_errors(tmp_path, capsys, content, words):
    path = tmp_path / "bad.npz"
    if content is not None:
        path.write_bytes(content)
    code, _, err = _run(capsys, path, "--n", 3)
    assert code == 2 and words in err and "Traceback" not in err


def test_audit_data_of_the_wrong_width_is_refused(files, capsys):
    weights, _, tmp = files
    bad = tmp / "wide.npz"
    np.savez(bad, X=np.ones((8, 10)))
    code, _, err = _run(capsys, weights, "--data", bad)
    assert code == 2 and "d = 64" in err


def test_audit_names_the_deepcopy_pitfall(gd_mlp, tmp_path, capsys):
    _, model = gd_mlp
    trained = state_dict(model)
    path = tmp_path / "aliased.npz"
    export_state_dict_npz(path, trained, trained, meta={"architecture": "mlp", "activation": "relu"})
    code, _, err = _run(capsys, path, "--n", 8)
    assert code == 2 and "deepcopy" in err


def test_audit_says_violated_for_a_per_coordinate_update(gd_mlp, tmp_path, capsys):
    """An Adam-like update (each weight's step rescaled on its own) breaks every span form."""
    ds, model = gd_mlp
    rng = np.random.default_rng(0)
    trained = state_dict(model)
    init = state_dict(model, "init")
    bad = copy.deepcopy(trained)
    for k in bad:
        bad[k] = init[k] + rng.uniform(0.0, 2.0, size=init[k].shape) * (trained[k] - init[k])
    path = tmp_path / "adam_like.npz"
    export_state_dict_npz(path, bad, init, meta={"architecture": "mlp", "activation": "relu"})
    data = tmp_path / "data.npz"
    np.savez(data, X=ds.X)
    code, out, _ = _run(capsys, path, "--data", data, "--max-iter", 200)
    assert code == 0
    assert "verdict     violated" in out and "per-coordinate" in out


def test_audit_torch_end_to_end(tmp_path, capsys):
    """The docs' example: train in torch with SGD + momentum on cross-entropy, export, audit."""
    torch = pytest.importorskip("torch", reason="the end-to-end example needs torch (pip install -e '.[torch]')")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = digits(10, classes=(0, 1, 2), seed=0)
    X = torch.tensor(ds.X, dtype=torch.float32)
    y = torch.tensor(np.round(ds.y + 1).astype(int))
    net = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 3))
    init = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    for _ in range(100):
        for idx in torch.randperm(10).split(4):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    weights = tmp_path / "net.npz"
    export_state_dict_npz(weights, net.state_dict(), init, meta={"architecture": "mlp", "activation": "relu"})
    data = tmp_path / "data.npz"
    np.savez(data, X=ds.X)
    code, out, _ = _run(capsys, weights, "--data", data, restarts=3)
    assert code == 0
    recovered = int(out.split("recovered   ")[1].split("/")[0])
    assert recovered >= 5, out
    assert "verdict     assumptions hold" in out


def test_audit_folds_a_batchnorm_and_judges_the_broken_span(gd_mlp, tmp_path, capsys):
    """A BatchNorm after the hidden layer (eval mode) is folded on import; its per-neuron rescaling
    moves with training, so the first layer's rows no longer span the inputs: the verdict says so."""
    ds, model = gd_mlp
    rng = np.random.default_rng(1)
    trained, init = state_dict(model), state_dict(model, "init")
    m = trained["hidden.weight"].shape[0]
    bn_init = {"hidden_bn.weight": np.ones(m), "hidden_bn.bias": np.zeros(m),
               "hidden_bn.running_mean": np.zeros(m), "hidden_bn.running_var": np.ones(m)}
    bn_trained = {"hidden_bn.weight": rng.uniform(0.5, 1.5, m), "hidden_bn.bias": 0.1 * rng.standard_normal(m),
                  "hidden_bn.running_mean": 0.1 * rng.standard_normal(m),
                  "hidden_bn.running_var": rng.uniform(0.5, 2.0, m)}
    path = tmp_path / "bn.npz"
    export_state_dict_npz(path, {**trained, **bn_trained}, {**init, **bn_init},
                          meta={"architecture": "mlp", "activation": "relu"})
    code, out, _ = _run(capsys, path, "--n", 8, "--out", tmp_path / "x.npz", "--max-iter", 100)
    assert code == 0
    assert "BatchNorm layers folded" in out or "BatchNorm layer folded" in out
    assert "verdict     violated" in out and "BatchNorm" in out


@pytest.mark.slow
def test_audit_recovers_the_package_gd_mlp_on_20_digits(tmp_path, capsys):
    """The package's own full-batch-GD MLP (digits n = 20, 4 classes, width 8·dn, all layers)."""
    ds = digits(20, seed=0)
    Y, _ = one_hot_targets(ds.y)
    model = TwoLayerMLP(64, 8 * 64 * 20, Y.shape[1], "relu", seed=1000)
    model.fit(ds.X, Y, train="all", tol=1e-8, max_steps=20000)
    weights, data = tmp_path / "mlp.npz", tmp_path / "data.npz"
    export_npz(model, weights)
    np.savez(data, X=ds.X)
    code, out, _ = _run(capsys, weights, "--data", data, restarts=3)
    assert code == 0 and "recovered   20/20" in out and "verdict     assumptions hold" in out

