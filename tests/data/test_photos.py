"""The bundled colour photographs (rftheory.data.photos): shapes, standardisation, determinism, no download."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("skimage")

from rftheory.data import photos as photos_from_package  # noqa: E402
from rftheory.data.photos import PHOTOS, _photo_dir, photos  # noqa: E402


def test_every_photograph_ships_with_scikit_image():
    for name, file in PHOTOS.items():
        assert os.path.exists(os.path.join(_photo_dir(), file)), name


def test_whole_photographs_at_cifar_size_on_the_sphere():
    ds = photos(len(PHOTOS))
    assert photos_from_package is photos
    assert ds.X.shape == (len(PHOTOS), 3072) and ds.image_shape == (32, 32, 3)
    np.testing.assert_allclose(np.linalg.norm(ds.X, axis=1), np.sqrt(3072), rtol=1e-12)
    np.testing.assert_allclose(ds.y, np.linspace(-1, 1, len(PHOTOS)))
    assert "central squares" in ds.description


def test_crops_when_n_exceeds_the_photographs_are_seeded():
    a, b = photos(9, size=8, crop=32, seed=2), photos(9, size=8, crop=32, seed=2)
    c = photos(9, size=8, crop=32, seed=3)
    assert a.X.shape == (9, 192) and a.image_shape == (8, 8, 3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.allclose(a.X, c.X)
    assert a.y[0] == a.y[len(PHOTOS)] == -1.0  # crop i comes from photograph i mod len(PHOTOS)


def test_standardised_pool_has_zero_mean_unit_variance(monkeypatch):
    module = importlib.import_module("rftheory.data.photos")
    monkeypatch.setattr(module, "project_to_sphere", lambda Z: Z)
    monkeypatch.setattr(module, "REFERENCE_CROPS", 24)  # a smaller reference set (the rule is the same)
    module._reference.cache_clear()
    try:
        crops = photos(24, size=8, crop=32, seed=0).X
        _, _, centres = module._reference(8, 32)
    finally:
        module._reference.cache_clear()
    # the pool: the seed-0 crops (the same crops as these) plus the photographs' central squares
    images = [module._read(k) for k in PHOTOS]
    cut, _ = module._crops(images, 24, 32, 0)
    pool = np.concatenate([np.stack([module._resize(c, 8) for c in cut]).reshape(24, -1), centres])
    mean, std = pool.mean(0), pool.std(0)
    np.testing.assert_allclose(crops, (pool[:24] - mean) / std, rtol=1e-12, atol=1e-12)
    standardised = (pool - mean) / std
    np.testing.assert_allclose(standardised.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(standardised.std(0), 1.0, rtol=1e-12)


def test_no_download_and_no_scikit_image_on_package_import():
    code = ("import sys, socket\n"
            "def refuse(*a, **k): raise AssertionError('network used')\n"
            "socket.socket.connect = refuse\n"
            "import rftheory.data\n"
            "assert 'skimage' not in sys.modules, 'import rftheory.data loaded scikit-image'\n"
            "ds = rftheory.data.photos(3)\n"
            "assert ds.X.shape == (3, 3072)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        photos(2, crop=0)
    with pytest.raises(ValueError):
        photos(2, crop=100000)
