"""identifiability.report: the verdict table passes and fails where expected, from Python, on
CuPy and through ``rftheory check``."""
import numpy as np
import pytest

from rftheory.backend import cupy_available
from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.random_features import RandomFeatures
from rftheory.theory.identifiability import (
    distinctness_check,
    identifiability_checks,
    kernel_concentration,
    single_sample_residual,
    spurious_gap,
)

from conftest import sphere_rows


def test_identifiability_checks_pass_and_fail_where_expected():
    X = synthetic_sphere(3, 5, seed=0).X
    ok = identifiability_checks(X, RandomFeatures(240, 5, "relu+tanh", seed=1000), starts=8, max_iter=150)
    assert ok.passed, [(c.quantity, c.measured, c.threshold) for c in ok.checks if not c.passed]
    low = identifiability_checks(X, RandomFeatures(6, 5, "relu+tanh", seed=1000), starts=8, max_iter=150,
                                 theorem2=False)
    gap = [c for c in low.checks if c.quantity.startswith("Thm 1")][0]
    assert not gap.passed and gap.measured <= 1e-6  # p = n + d − 2: spurious zeros on the sphere
    assert low.limits["span"] == 8 and low.limits["theta"] == 16  # n + d and nd + 1: counting on the sphere
    with pytest.raises(ValueError, match="sphere"):
        identifiability_checks(2 * X, RandomFeatures(240, 5, seed=0))


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy():  # pragma: no cover - GPU only
    import cupy as cp

    X = synthetic_sphere(3, 5, seed=0).X
    model = RandomFeatures(240, 5, "relu+tanh", seed=1)
    gpu = RandomFeatures(240, 5, "relu+tanh", seed=1, backend="cupy")
    Xh = sphere_rows(np.random.default_rng(0), 6, 5)
    R = single_sample_residual(Xh, X, model)
    Rc = single_sample_residual(cp.asarray(Xh), cp.asarray(X), gpu)
    assert isinstance(Rc, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(Rc), R, rtol=1e-5)
    g = spurious_gap(X, model, starts=8, seed=0)
    gc = spurious_gap(cp.asarray(X), gpu, starts=8, seed=0)
    assert gc.gap == pytest.approx(g.gap, rel=1e-3)
    kc, kcc = kernel_concentration(X, model), kernel_concentration(cp.asarray(X), gpu)
    assert kcc.op_error == pytest.approx(kc.op_error, rel=1e-5)
    r = distinctness_check(X[:2], model, starts=4)
    rc = distinctness_check(cp.asarray(X[:2]), gpu, starts=4)
    assert rc.mismatch == pytest.approx(r.mismatch, rel=1e-3)


def test_cli_check_prints_verdicts(capsys):
    from rftheory.cli import main

    assert main(["check", "--n", "3", "--d", "5", "--ratio", "16", "--starts", "8", "--max-iter", "150"]) == 0
    out = capsys.readouterr().out
    assert "spurious gap" in out and "Thm 2" in out and "FAIL" not in out and "9/9 PASS" in out
    # p = n + d − 2: the search finds a spurious zero, the Theorem 1 row fails and the exit status says so
    assert main(["check", "--n", "3", "--d", "5", "--p", "6", "--starts", "8", "--max-iter", "150",
                 "--no-theorem2"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["check", "--n", "1"]) == 2
    assert "n ≥ 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", "--delta", "2"])


def _row(out, prefix):
    return [line for line in out.splitlines() if line.strip().startswith(prefix)][0]


def test_cli_check_acceptance_shape(capsys):
    """n = 12, d = 40: p = 38 (≤ n + d − 2) FAILs Theorem 1's conclusion, p = 240 PASSes it at p/(dn) = 0.5
    (the hypothesis printed as that ratio, not judged); both print the counting limits n + d = 52 and
    nd + 1 = 481."""
    from rftheory.cli import main

    assert main(["check", "--n", "12", "--d", "40", "--p", "38", "--no-theorem2"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in _row(out, "Thm 1") and "n + d  = 52" in out and "nd + 1 = 481" in out
    assert main(["check", "--n", "12", "--d", "40", "--p", "240", "--no-theorem2", "--outputs", "4"]) in (0, 1)
    out = capsys.readouterr().out
    assert "PASS" in _row(out, "Thm 1") and "n + d  = 52" in out and "nd + 1 = 481" in out
    # a ratio; at p/(dn) ≤ 1 the hypothesis p ≫ dn is not met whatever the constant of ≫
    assert _row(out, "Theorem 1: p ≫ dn").split("  (")[0].split()[-3:] == ["p/(dn)", "=", "0.5"]
    assert "not met, whatever the constant" in _row(out, "Theorem 1: p ≫ dn")
    assert "not met" not in _row(out, "kernel lemmas") and ": met" not in out and "no explicit constant" in out
    # the counts for inputs free in R^d (the 53 and 492) beside the sphere's
    assert "n + d + 1 = 53" in out and "n(d + 1) = 492" in out
    assert "C(p − n) = 912 > n(d − 1) = 468" in out


def test_check_help_states_the_thresholds(capsys):
    from rftheory.cli import main

    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "expected to FAIL" not in out and "n + d" in out and "nd + 1" in out and "no explicit constant" in out
    assert "n + d + 1" not in out and "n(d + 1)" not in out and "8dn" not in out
