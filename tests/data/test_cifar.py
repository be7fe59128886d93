"""CIFAR-10 loader on a tiny data set written in the exact python-pickle
batch format (dict with b'data' uint8 (N, 3072), b'labels', b'batch_label',
b'filenames'; batches.meta with b'label_names')."""
import pickle

import numpy as np
import pytest

from rftheory.data.cifar import CIFAR10_CLASSES, TRAIN_FILES, cifar10, load_cifar10_split, one_hot

PER_BATCH = 12  # 5 training batches → 60 images, 6 per class


def _write(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def _batch(rng, label_name, labels):
    n = len(labels)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return {
        b"batch_label": label_name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{label_name}_{k}.png".encode() for k in range(n)],
    }


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(7)
    batches = {}
    for b, name in enumerate(TRAIN_FILES):
        labels = [(b * PER_BATCH + k) % 10 for k in range(PER_BATCH)]
        batches[name] = _batch(rng, f"training batch {b + 1} of 5", labels)
    batches["data_batch_2"][b"data"][3] = 77  # a constant image (label 5): per-image std is 0
    batches["test_batch"] = _batch(rng, "testing batch 1 of 1", [k % 10 for k in range(20)])
    for name, obj in batches.items():
        _write(root / name, obj)
    _write(root / "batches.meta", {b"num_cases_per_batch": PER_BATCH, b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                                   b"num_vis": 3072})
    return root, batches


def _raw_train(batches):
    data = np.concatenate([batches[f][b"data"] for f in TRAIN_FILES])
    labels = np.concatenate([batches[f][b"labels"] for f in TRAIN_FILES])
    return data, labels


def _hwc(row):
    """Independent channel-last view: pixel (h, w, c) is data[c·1024 + h·32 + w]."""
    img = np.empty((32, 32, 3))
    for c in range(3):
        for h in range(32):
            img[h, :, c] = row[c * 1024 + h * 32: c * 1024 + h * 32 + 32]
    return img


def test_load_split_reads_every_batch(cifar_dir):
    root, batches = cifar_dir
    raw = load_cifar10_split(root, "train")
    data, labels = _raw_train(batches)
    np.testing.assert_array_equal(raw.data, data)
    np.testing.assert_array_equal(raw.labels, labels)
    assert raw.label_names == CIFAR10_CLASSES
    test = load_cifar10_split(root, "test")
    np.testing.assert_array_equal(test.data, batches["test_batch"][b"data"])
    # the folder containing cifar-10-batches-py is accepted too
    np.testing.assert_array_equal(load_cifar10_split(root.parent).data, data)


def _find_rows(X, candidates):
    """Index of the candidate row equal to each row of X (and the max mismatch)."""
    dist = np.linalg.norm(X[:, None, :] - candidates[None, :, :], axis=2)
    return dist.argmin(axis=1), dist.min(axis=1).max()


def test_binary_per_image(cifar_dir):
    root, batches = cifar_dir
    data, labels = _raw_train(batches)
    ds = cifar10(root, 8, classes=("cat", "dog"), seed=1)
    assert ds.X.shape == (8, 3072) and ds.image_shape == (32, 32, 3)
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=1), np.sqrt(3072), rtol=1e-12)
    # expected rows: each image in HWC order, minus its mean, over its population std
    expected = []
    for row in data:
        img = _hwc(row.astype(np.float64))
        sd = img.std()
        expected.append(((img - img.mean()) / sd).ravel() if sd > 0 else np.full(3072, np.inf))
    expected = np.array(expected)
    idx, mismatch = _find_rows(ds.X, np.where(np.isfinite(expected), expected, 1e9))
    assert mismatch < 1e-10
    assert np.all(np.diff(idx) > 0)  # file order, no repeats
    assert set(labels[idx]) <= {3, 5}
    np.testing.assert_array_equal(ds.y, np.where(labels[idx] == 3, -1.0, 1.0))
    assert (ds.y == -1).sum() == 4 and (ds.y == 1).sum() == 4
    assert "binary" in ds.description and "cat vs dog" in ds.description and "per-image" in ds.description


def test_per_image_skips_constant_images(cifar_dir):
    root, batches = cifar_dir
    data, labels = _raw_train(batches)
    const = np.flatnonzero(data.max(axis=1) == data.min(axis=1))
    assert const.size == 1 and labels[const[0]] == 5
    # class 5 has 6 images, one constant: 5 usable per-image, all 6 globally
    with pytest.raises(ValueError, match="needs 6 images of dog but the train split has 5"):
        cifar10(root, 12, classes=((5,), (0, 1, 2, 3)))
    ds = cifar10(root, 12, classes=((5,), (0, 1, 2, 3)), standardize="global")
    assert (ds.y == -1).sum() == 6


def test_global_standardisation(cifar_dir):
    root, batches = cifar_dir
    data, labels = _raw_train(batches)
    ds = cifar10(root, 10, classes="all", standardize="global", seed=2)
    F = data.astype(np.float64)
    mean, std = F.mean(axis=0), F.std(axis=0)
    Z = (F - mean) / std
    Z = np.array([_hwc(z).ravel() for z in Z])
    Z *= np.sqrt(3072) / np.linalg.norm(Z, axis=1, keepdims=True)
    idx, mismatch = _find_rows(ds.X, Z)
    assert mismatch < 1e-10
    # multi-class: one per class, y = 2j/(k−1) − 1 with j the class position
    np.testing.assert_array_equal(np.sort(labels[idx]), np.arange(10))
    np.testing.assert_allclose(ds.y, 2 * labels[idx] / 9 - 1)
    assert "10-class" in ds.description and "globally" in ds.description
    np.testing.assert_array_equal(one_hot(ds.y).argmax(axis=1), labels[idx])


def test_multiclass_groups_and_balance(cifar_dir):
    root, batches = cifar_dir
    data, labels = _raw_train(batches)
    vehicles = ("airplane", "automobile", "ship", "truck")
    animals = ("bird", "cat", "deer", "dog", "frog", "horse")
    ds = cifar10(root, 9, classes=(vehicles, animals), standardize="global")
    assert sorted(ds.y) == [-1.0] * 5 + [1.0] * 4
    ds3 = cifar10(root, 7, classes=(0, "bird", 9), standardize="global", seed=5)
    np.testing.assert_array_equal(np.sort(ds3.y), [-1, -1, -1, 0, 0, 1, 1])
    assert "3-class" in ds3.description and "airplane vs bird vs truck" in ds3.description


def test_seeded(cifar_dir):
    root, _ = cifar_dir
    a = cifar10(root, 6, seed=3)
    b = cifar10(root, 6, seed=3)
    c = cifar10(root, 6, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_test_split(cifar_dir):
    root, batches = cifar_dir
    ds = cifar10(root, 4, classes=(0, 1), split="test")
    assert ds.X.shape == (4, 3072) and "test" in ds.description
    with pytest.raises(ValueError, match="split"):
        cifar10(root, 4, split="valid")


def test_missing_and_invalid(tmp_path, cifar_dir):
    root, batches = cifar_dir
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cifar10(tmp_path / "nowhere", 2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        cifar10(tmp_path / "file", 2)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        cifar10(tmp_path, 2)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in list(TRAIN_FILES) + ["batches.meta"]:
        (bad / f).write_bytes((root / f).read_bytes())
    (bad / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="data_batch_3 is not a CIFAR-10 python batch"):
        cifar10(bad, 2)
    wrong = dict(batches["data_batch_3"])
    wrong[b"data"] = wrong[b"data"].astype(np.float32)
    _write(bad / "data_batch_3", wrong)
    with pytest.raises(ValueError, match="uint8"):
        cifar10(bad, 2)
    c100 = {b"data": batches["data_batch_3"][b"data"], b"fine_labels": [0] * PER_BATCH}
    _write(bad / "data_batch_3", c100)
    with pytest.raises(ValueError, match="CIFAR-100"):
        cifar10(bad, 2)


def test_bad_arguments(cifar_dir):
    root, _ = cifar_dir
    with pytest.raises(ValueError, match="unknown CIFAR-10 class 'cow'"):
        cifar10(root, 2, classes=("cat", "cow"))
    with pytest.raises(ValueError, match="overlap"):
        cifar10(root, 2, classes=(3, (3, 4)))
    with pytest.raises(ValueError, match="at least two"):
        cifar10(root, 2, classes=(3,))
    with pytest.raises(ValueError, match="standardize"):
        cifar10(root, 2, standardize="none")
    with pytest.raises(ValueError, match="needs 7 images of airplane"):
        cifar10(root, 14, classes=(0, 1))
    with pytest.raises(ValueError, match="positive integer"):
        cifar10(root, 0)


def test_images_roundtrip_through_grid(cifar_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install 'rftheory[plot]')")
    from rftheory.data.images import compare_images, save_image_grid

    root, _ = cifar_dir
    ds = cifar10(root, 2, seed=0)
    cmp = compare_images(ds.X, ds.X[::-1] * np.array([[1.0], [-1.0]]), ds.image_shape)
    assert cmp.reconstructions.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(cmp.reconstructions.reshape(2, -1), ds.X, atol=1e-12)
    assert np.all(np.isinf(cmp.psnr)) and np.allclose(cmp.ssim, 1.0)
    assert save_image_grid(tmp_path / "c.png", cmp, dpi=40)


# --- hostile files: the restricted unpickler --------------------------------------------


def _copy_dir(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


class _RunsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


class _OpensFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import builtins

        return builtins.open, (str(self.marker), "w")


class _Subprocess:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import subprocess

        return subprocess.call, (["touch", str(self.marker)],)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import builtins

        return builtins.eval, (f"open({str(self.marker)!r}, 'w')",)


@pytest.mark.parametrize("payload", [_RunsSystem, _OpensFile, _Subprocess, _Eval])
@pytest.mark.parametrize("where", ["data_batch_1", "batches.meta"])
@pytest.mark.parametrize("protocol", [2, 5])
def test_crafted_pickle_never_runs(cifar_dir, tmp_path, payload, where, protocol):
    root, batches = cifar_dir
    d = _copy_dir(root, tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    obj = dict(batches["data_batch_1"]) if where != "batches.meta" else {b"label_names": list(CIFAR10_CLASSES)}
    obj[b"batch_label"] = payload(marker)  # the payload inside an otherwise valid batch
    with open(d / where, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    with pytest.raises(ValueError, match=r"not a CIFAR-10 python batch file.*refused to load the global"):
        cifar10(d, 4)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused"):
        load_cifar10_split(d, "train")
    assert not marker.exists()


def test_published_format_variants_load(cifar_dir, tmp_path):
    """Protocols 2, 4, 5 and the NumPy-1 module path (numpy.core.multiarray) of the original archive."""
    root, batches = cifar_dir
    for protocol in (2, 4, 5, "np1"):
        d = _copy_dir(root, tmp_path / f"p{protocol}" / "cifar-10-batches-py")
        for name in TRAIN_FILES:
            raw = pickle.dumps(batches[name], protocol=2 if protocol == "np1" else protocol)
            if protocol == "np1":
                raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                assert b"numpy.core.multiarray\n_reconstruct" in raw
            (d / name).write_bytes(raw)
        np.testing.assert_array_equal(load_cifar10_split(d).data, _raw_train(batches)[0])


def test_cifar_float_labels_rejected(cifar_dir, tmp_path):
    root, batches = cifar_dir
    for bad in ([2.5] * PER_BATCH, [3.0] * PER_BATCH, [True] * PER_BATCH, np.full(PER_BATCH, 3.0)):
        d = _copy_dir(root, tmp_path / f"f{len(list(tmp_path.iterdir()))}" / "cifar-10-batches-py")
        obj = {**batches["data_batch_2"], b"labels": bad}
        _write(d / "data_batch_2", obj)
        with pytest.raises(ValueError, match=r"data_batch_2.*b'labels' must be a list of integers"):
            load_cifar10_split(d)


@pytest.mark.parametrize("cut", [0, 1, 100, -50])
def test_truncated_or_garbage_batch(cifar_dir, tmp_path, cut):
    root, _ = cifar_dir
    d = _copy_dir(root, tmp_path / "cifar-10-batches-py")
    raw = (d / "data_batch_4").read_bytes()
    (d / "data_batch_4").write_bytes(raw[:cut] if cut else b"\x00garbage")
    with pytest.raises(ValueError, match="data_batch_4 is not a CIFAR-10 python batch file"):
        load_cifar10_split(d)
