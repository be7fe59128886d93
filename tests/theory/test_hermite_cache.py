"""Tests for rftheory.theory.hermite.cache: the memory and disk caches of expansions."""
from __future__ import annotations

import time

import numpy as np
import pytest

from rftheory.models.activations import known_activations
from rftheory.theory.hermite import cache_dir, clear_cache, hermite_coefficients


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """A fresh Hermite cache folder (and an empty memory cache) for this module: numbers computed here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RFTHEORY_CACHE_DIR", str(tmp_path_factory.mktemp("rfcache")))
        clear_cache()
        yield
        clear_cache()


ALL = sorted(set(known_activations()) | {"step"})


# --- caching ------------------------------------------------------------------------


def test_cache_disk_roundtrip_and_warm_speed():
    clear_cache()
    cold = {n: hermite_coefficients(n, 20) for n in ALL}
    files = list(cache_dir().glob("*.json"))
    assert len(files) >= len(ALL)
    t0 = time.perf_counter()
    for n in ALL:
        hermite_coefficients(n, 20)
    assert time.perf_counter() - t0 < 0.1  # warm calls are dictionary look-ups; benchmarks/bench_hermite.py times them
    clear_cache()  # memory only: next calls read the JSON files
    for n in ALL:
        warm = hermite_coefficients(n, 12)
        np.testing.assert_array_equal(warm.coefficients, cold[n].coefficients[:13])
        assert warm.methods == cold[n].methods[:13]
        assert warm.second_moment == cold[n].second_moment
    # exact forms survive the disk round trip
    ex = hermite_coefficients("gelu", 5, exact=True)
    clear_cache()
    ex2 = hermite_coefficients("gelu", 5, exact=True)
    assert ex2.exact == ex.exact and ex2.second_moment_exact == ex.second_moment_exact
    # a higher order than cached is recomputed, lower is a slice
    assert hermite_coefficients("relu", 30).order == 30
    assert hermite_coefficients("relu", 3).order == 3


def test_cache_unwritable_falls_back_to_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RFTHEORY_CACHE_DIR", str(blocker))
    e = hermite_coefficients("sigmoid", 5, use_cache=True, force_numeric=True)
    assert e.order == 5
    monkeypatch.setenv("RFTHEORY_CACHE_DIR", "off")
    assert cache_dir() is None
    assert hermite_coefficients("relu", 4).order == 4
