"""Tests for rftheory.theory.hermite.cache: the memory and disk caches of expansions."""
from __future__ import annotations

import time

import numpy as np
import pytest

from rftheory.models.activations import known_activations
from rftheory.theory.hermite import cache_dir, clear_cache, hermite_coefficients


pytestmark = pytest.mark.usefixtures("private_hermite_cache")


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


# --- hostile and tampered files -------------------------------------------------------


def _only_file(key_name, order, **kw):
    """Compute ``key_name`` into an empty cache folder; return its one JSON file."""
    from rftheory.theory.hermite import cache_dir as _cd

    clear_cache(disk=True)
    hermite_coefficients(key_name, order, **kw)
    files = list(_cd().glob("*.json"))
    assert len(files) == 1
    clear_cache()  # memory only: the next call reads the file
    return files[0]


def _rehash(d):
    """Recompute the content hash, as an attacker who read this package would."""
    from rftheory.theory.hermite import cache as C

    d.pop("digest", None)
    d["digest"] = C._digest(d)
    return d


@pytest.mark.parametrize("rehash", [False, True])
def test_cache_code_in_exact_string_never_runs(tmp_path, rehash):
    import json

    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    path = _only_file("relu", 6, exact=True)
    good = hermite_coefficients("relu", 6, exact=True, use_cache=False)
    d = json.loads(path.read_text())
    d["exact"][0] = payload  # a string where a tree belongs (what version 1 stored, sympify-ed)
    d["exact"][1] = [payload]  # a tree whose node is the code
    d["second_moment_exact"] = ["Add", ["int", "1"], ["Pow", ["const", payload], ["int", "1"]]]
    if rehash:
        _rehash(d)
    path.write_text(json.dumps(d))
    with pytest.warns(RuntimeWarning, match=str(path.name)):
        got = hermite_coefficients("relu", 6, exact=True)
    assert not marker.exists()
    assert got.exact == good.exact and got.second_moment_exact == good.second_moment_exact
    np.testing.assert_array_equal(got.coefficients, good.coefficients)
    # the recomputed entry replaced the file: it loads cleanly now
    clear_cache()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hermite_coefficients("relu", 6, exact=True).exact == good.exact


def test_cache_version1_srepr_file_is_never_parsed(tmp_path):
    """A file in the old layout (srepr strings) at the current path is rejected, not sympified."""
    import json

    marker = tmp_path / "pwned_v1"
    path = _only_file("gelu", 4, exact=True)
    d = json.loads(path.read_text())
    d["version"] = 1
    d["exact"] = [f"__import__('os').system('touch {marker}')"] * 5
    path.write_text(json.dumps(d))
    with pytest.warns(RuntimeWarning, match="integrity"):
        got = hermite_coefficients("gelu", 4, exact=True)
    assert not marker.exists()
    assert got.exact[1] == 1 / __import__("sympy").Integer(2)


@pytest.mark.parametrize("rehash", [False, True])
@pytest.mark.parametrize("exact", [False, True])
def test_cache_tampered_relu_mu3_detected_and_verdict_right(rehash, exact):
    import json

    import sympy as sp

    from rftheory.theory.signs import IDENTIFIABLE, sign_prediction

    truth = sign_prediction("relu", 20, exact=exact, use_cache=False).prediction
    path = _only_file("relu", 20, exact=exact)
    d = json.loads(path.read_text())
    d["coefficients"][3] = 0.3
    d["error_bounds"][3] = 0.0
    if exact:  # a careful attacker keeps the exact value consistent with the float
        d["exact"][3] = ["rat", "3/10"]
    if rehash:
        _rehash(d)
    path.write_text(json.dumps(d))
    with pytest.warns(RuntimeWarning, match=str(path.name)):
        pred = sign_prediction("relu", 20, exact=exact)
    assert pred.prediction == truth != IDENTIFIABLE
    e = hermite_coefficients("relu", 20, exact=exact)
    assert e.coefficients[3] == 0.0 and (not exact or e.exact[3] == sp.Integer(0))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(coefficients=d["coefficients"][:-1]),  # wrong length
        lambda d: d.update(second_moment="0.5"),  # wrong type
        lambda d: d["coefficients"].__setitem__(5, float("nan")),
        lambda d: d.update(second_moment=0.75),  # E[σ²] of relu is 1/2
        lambda d: d["exact"].__setitem__(2, ["Pow", ["int", "10"], ["int", "99999999999"]]),  # huge power
        lambda d: d["exact"].__setitem__(2, ["int", "1" * 5000]),  # huge integer
        lambda d: d["exact"].__setitem__(2, ["rat", "1e999999/1"]),  # not digits
        lambda d: d["exact"].__setitem__(2, ["Symbol", ["int", "1"]]),  # not whitelisted
    ],
)
def test_cache_malformed_fields_rejected(edit):
    import json

    path = _only_file("relu", 8, exact=True)
    d = json.loads(path.read_text())
    edit(d)
    _rehash(d)
    path.write_text(json.dumps(d))
    with pytest.warns(RuntimeWarning, match="integrity"):
        e = hermite_coefficients("relu", 8, exact=True)
    assert e.second_moment == 0.5 and e.coefficients[3] == 0.0


def test_cache_not_json_rejected():
    path = _only_file("tanh", 5)
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle, not JSON
    with pytest.warns(RuntimeWarning, match=str(path.name)):
        assert hermite_coefficients("tanh", 5).order == 5


def test_exact_tree_roundtrip_and_whitelist():
    import sympy as sp

    from rftheory.theory.hermite.cache import decode_exact, encode_exact

    for e in [sp.sqrt(2) / (2 * sp.sqrt(sp.pi)), 2 * sp.asin(sp.Rational(2, 3)) / sp.pi, sp.exp(-sp.Rational(1, 2)),
              sp.sqrt(3) / 9 + 6 * sp.sqrt(19) / (19 * sp.sqrt(sp.pi)), sp.Integer(-7), sp.erf(1) + sp.E]:
        t = encode_exact(e)
        assert decode_exact(__import__("json").loads(__import__("json").dumps(t))) == e
    for bad in [sp.Float(0.5), sp.Symbol("x"), sp.besselj(0, 1), sp.I]:
        with pytest.raises(ValueError):
            encode_exact(bad)
    with pytest.raises(ValueError, match="whitelist"):
        decode_exact(["eval", ["int", "1"]])
    with pytest.raises(ValueError):
        decode_exact(["Pow", ["int", "2"], ["const", "pi"]])
    deep = ["int", "1"]
    for _ in range(200):
        deep = ["exp", deep]
    with pytest.raises(ValueError, match="too large"):
        decode_exact(deep)
