"""AttackOptions rejects every bad field value with a ValueError/TypeError naming the field, also when
the fields come through :func:`rftheory.attack.reconstruct.reconstruct`'s keyword overrides."""
import math

import numpy as np
import pytest

from rftheory.attack.options import AttackOptions
from rftheory.attack.reconstruct import reconstruct
from rftheory.models.random_features import RandomFeatures

from conftest import sphere_rows

BAD = [
    ("tol", math.nan, ValueError),
    ("tol", -1, ValueError),
    ("tol", math.inf, ValueError),
    ("tol", "1e-3", TypeError),
    ("tol", True, TypeError),
    ("restarts", 2.5, TypeError),
    ("restarts", 0, ValueError),
    ("restarts", -3, ValueError),
    ("restarts", math.nan, TypeError),
    ("restarts", np.float64(3.0), TypeError),
    ("max_iter", math.nan, TypeError),
    ("max_iter", 1e3, TypeError),
    ("max_iter", 0, ValueError),
    ("reseed_candidates", 0, ValueError),
    ("seed", -1, ValueError),
    ("seed", 1.5, TypeError),
    ("lr", 0.0, ValueError),
    ("lr", math.nan, ValueError),
    ("lr", -0.1, ValueError),
    ("momentum", 1.0, ValueError),
    ("momentum", math.nan, ValueError),
    ("momentum", -0.5, ValueError),
    ("momentum", "0.9", TypeError),
    ("momentum", True, TypeError),
    ("optimizer", "adam", ValueError),
    ("derivative", "fake", ValueError),
    ("dtype", "float16", ValueError),
    ("reseed", 1, TypeError),
    ("stop_at_tol", "yes", TypeError),
    ("batch_restarts", None, TypeError),
]


@pytest.mark.parametrize("name,value,exc", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_attack_options_reject(name, value, exc):
    with pytest.raises(exc, match=name):
        AttackOptions(**{name: value})
    with pytest.raises(exc, match=name):
        AttackOptions().replace(**{name: value})


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    X = sphere_rows(rng, 2, 3)
    rf = RandomFeatures(40, 3, "relu+tanh", seed=1).fit(X, rng.standard_normal(2))
    return rf


@pytest.mark.parametrize("name,value,exc", [b for b in BAD if b[0] in ("tol", "restarts", "max_iter")],
                         ids=[f"{n}={v!r}" for n, v, _ in BAD if n in ("tol", "restarts", "max_iter")])
def test_reconstruct_rejects_before_work(tiny, name, value, exc):
    with pytest.raises(exc, match=name):
        reconstruct(tiny.theta, tiny, 2, **{name: value})


def test_reconstruct_unknown_override(tiny):
    with pytest.raises(TypeError, match="restart"):
        reconstruct(tiny.theta, tiny, 2, restart=2)


def test_good_options_accepted(tiny):
    o = AttackOptions(tol=0, restarts=np.int64(2), max_iter=5, momentum=0.0, lr=np.float32(0.5), dtype=np.float64)
    assert o.dtype == "float64" and o.restarts == 2
    res = reconstruct(tiny.theta, tiny, 2, o)
    assert res.X_hat.shape == (2, 3)
