"""identifiability.common: the sign-aware distance against brute force, and verdicts computed
from the numbers."""
import numpy as np
import pytest

from rftheory.theory.identifiability.common import Check, sign_aware_distance

from conftest import sphere_rows


def test_sign_aware_distance_brute_force(rng):
    X = sphere_rows(rng, 4, 5)
    Xh = sphere_rows(rng, 6, 5)
    Xh[0] = -X[2]
    dist = sign_aware_distance(Xh, X)
    ref = np.array([[min(np.linalg.norm(a - b), np.linalg.norm(a + b)) / np.linalg.norm(b) for b in X] for a in Xh])
    np.testing.assert_allclose(dist.distance, ref.min(axis=1), atol=1e-7)
    np.testing.assert_array_equal(dist.index, ref.argmin(axis=1))
    assert dist.index[0] == 2 and dist.sign[0] == -1.0 and dist.distance[0] <= 1e-7


def test_check_verdicts_come_from_the_numbers():
    assert Check("q", 1.0, 2.0, "<=").passed and not Check("q", 3.0, 2.0, "<=").passed
    assert Check("q", 3.0, 2.0, ">=").verdict == "PASS" and Check("q", 1.0, 2.0, ">=").verdict == "FAIL"
    assert Check("q", 3, 3, "==").passed and not Check("q", 2, 3, "==").passed
    assert not Check("q", float("nan"), 1.0, "<=").passed
    with pytest.raises(ValueError, match="relation"):
        Check("q", 1.0, 1.0, "<")
