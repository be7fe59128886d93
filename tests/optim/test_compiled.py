"""The optimiser's compiled twin (rftheory.optim._compiled) against the Python list path and the
NumPy formulas: row kernels, curvature ring, two-loop recursion, the one-call L-BFGS set-up."""
import numpy as np
import pytest

from rftheory.backend import NUMBA_DEFAULT, numba_available
from rftheory.optim import _compiled, lbfgs
from rftheory.optim.lbfgs import _CurvatureMemory, _Run
from rftheory.optim.sphere import retract_to_sphere, riemannian_gradient, step_on_sphere


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("shape", [(7, 13), (3, 5, 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_kernels_match_the_numpy_formulas(shape, dtype, rng, monkeypatch):
    """Tangent part g − (⟨g, x⟩/‖x‖²)x and retraction r·x/‖x‖ per row: compiled vs NumPy."""

    X = rng.standard_normal(shape).astype(dtype)
    G = rng.standard_normal(shape).astype(dtype)
    assert _compiled.rows_kernel_applies(X, G) and not _compiled.rows_kernel_applies(X, G.astype(np.float16))
    T, R, S = riemannian_gradient(X, G), retract_to_sphere(X, 2.5), step_on_sphere(X, 0.3, G, 2.5)
    monkeypatch.setitem(NUMBA_DEFAULT, "rows", False)
    T_np, R_np = riemannian_gradient(X, G), retract_to_sphere(X, 2.5)
    S_np = (X + 0.3 * G) * (2.5 / np.linalg.norm(X + 0.3 * G, axis=-1, keepdims=True))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert T.dtype == R.dtype == S.dtype == dtype and T.shape == R.shape == S.shape == shape
    np.testing.assert_allclose(T, T_np, atol=tol * np.abs(G).max())
    np.testing.assert_allclose(R, R_np, rtol=tol)
    np.testing.assert_allclose(S, S_np, rtol=tol, atol=tol)
    np.testing.assert_allclose(step_on_sphere(X, 0.3, G, 2.5), S, rtol=tol, atol=tol)  # NumPy path
    np.testing.assert_allclose(np.sum(T * X, axis=-1), 0.0, atol=20 * tol * np.abs(G).max() * shape[-1])
    np.testing.assert_allclose(np.linalg.norm(R.astype(np.float64), axis=-1), 2.5, rtol=tol)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_compiled_two_loop_recursion_matches_the_python_loop(rng):
    """H·g from the compiled ring equals the textbook loop over the same pairs, and H
    satisfies the secant equation H y = s for the newest pair."""

    pairs = []
    for _ in range(9):  # more pairs than slots: the ring drops the oldest
        s = rng.standard_normal((4, 6))
        pairs.append((s, s + 0.2 * rng.standard_normal((4, 6))))
    pairs.append((pairs[0][0], -pairs[0][0]))  # ⟨s, y⟩ < 0: refused, keeps the ring as it was
    g = rng.standard_normal((4, 6))
    zero = np.zeros_like(g)
    ring = _compiled.curvature_ring(5, g.size)
    python = _CurvatureMemory(5)  # the list path
    for s, y in pairs:
        _compiled.remember_pair(zero, s, zero, y, ring)  # s = s − 0, y = y − 0
        python.remember(zero, s, zero, y)
    S, Y, rho, yy, state = ring
    # 6 slots, pairs 1…9 in slots 0…5, 0, 1, 2: the last 5 are in slots 4, 5, 0, 1, 2
    assert list(state) == [5, 2] and list(_compiled.ring_order(ring)) == [4, 5, 0, 1, 2]
    np.testing.assert_array_equal(S[2], pairs[8][0].ravel())
    assert rho[2] == pytest.approx(1.0 / np.vdot(pairs[8][0], pairs[8][1]), rel=1e-14)
    gamma = np.vdot(pairs[8][0], pairs[8][1]) / np.vdot(pairs[8][1], pairs[8][1])  # H₀ = γI of the newest pair
    Hg = _compiled.two_loop_recursion(S, Y, rho, _compiled.ring_order(ring), gamma, g)
    assert python.ring is None and len(python.pairs) == 5
    np.testing.assert_allclose(Hg, python.apply(g), rtol=1e-12, atol=1e-12)
    s_new, y_new = pairs[-2]
    np.testing.assert_allclose(python.apply(y_new), s_new, rtol=1e-10, atol=1e-10)


def test_list_path_recursion_needs_no_host_float_once_it_has_pairs(rng, monkeypatch):
    """The two-loop recursion of the list path (CuPy's) keeps its scalars on the arrays' backend:
    with pairs stored, H·g calls no host conversion (each would synchronise a device)."""
    mem = _CurvatureMemory(4)
    zero = np.zeros((3, 5))
    for _ in range(4):
        s = rng.standard_normal((3, 5))
        mem.remember(zero, s, zero, s + 0.1 * rng.standard_normal((3, 5)))
    g = rng.standard_normal((3, 5))
    expected = mem.apply(g)

    def host_float(a, b):
        raise AssertionError("host conversion inside the recursion")

    monkeypatch.setattr(lbfgs, "_vdot", host_float)
    np.testing.assert_array_equal(mem.apply(g), expected)
    mem.pairs.clear()
    with pytest.raises(AssertionError, match="host conversion"):  # no pairs: H₀ = I/‖g‖ needs one
        mem.apply(g)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_search_direction_and_curvature_pairs_match_the_numpy_path(dtype, rng, monkeypatch):
    """One compiled pass (−H g made tangent, ⟨d, g⟩, step cap; s, y and their products) equals the
    NumPy expressions, and the direction is tangent with no row moving farther than the cap."""

    n, d, max_move = 6, 9, 0.4
    Xs = [retract_to_sphere(rng.standard_normal((n, d))).astype(dtype) for _ in range(5)]
    Gs = [riemannian_gradient(X, rng.standard_normal((n, d)).astype(dtype)) for X in Xs]

    def run():
        mem = _CurvatureMemory(3)
        for k in range(3):  # each call remembers its step's pair (⟨s, y⟩ > 0); its direction is not used
            mem.advance((Xs[k], Gs[k], None), Xs[k + 1], Gs[k] + 0.5 * (Xs[k + 1] - Xs[k]), max_move, 3.0)
        # the 4th pair is remembered by the direction's own call
        run = _Run(Xs[4], 0.0, Gs[3] + 0.5 * (Xs[4] - Xs[3]), mem)
        run.pair = (Xs[3], Gs[3], None)
        run.search_direction(max_move, 3.0)
        return mem, (run.direction, run.slope, run.t, run.trial)

    mem, (direction, slope, t, trial) = run()
    monkeypatch.setitem(NUMBA_DEFAULT, "rows", False)
    mem_np, (direction_np, slope_np, t_np, trial_np) = run()
    assert mem.ring is not None and mem_np.ring is None and mem.ring.state[0] == len(mem_np.pairs) == 3
    tol = 2e-5 if dtype == np.float32 else 1e-12
    S, Y, rho, yy, _ = mem.ring
    for slot, (s_np, y_np, rho_np, yy_np) in zip(_compiled.ring_order(mem.ring), mem_np.pairs):
        np.testing.assert_allclose(S[slot], s_np.ravel(), rtol=tol, atol=tol)
        np.testing.assert_allclose(Y[slot], y_np.ravel(), rtol=tol, atol=tol)
        assert rho[slot] == pytest.approx(rho_np, rel=tol) and yy[slot] == pytest.approx(yy_np, rel=tol)
    assert direction.dtype == trial.dtype == dtype
    np.testing.assert_allclose(direction, direction_np, rtol=10 * tol, atol=10 * tol)
    assert slope == pytest.approx(slope_np, rel=10 * tol) and slope < 0
    assert t == pytest.approx(t_np, rel=10 * tol)
    np.testing.assert_allclose(trial, trial_np, rtol=10 * tol, atol=10 * tol)
    row_norms = np.linalg.norm(direction.astype(np.float64), axis=1)
    assert t * row_norms.max() <= max_move * (1 + 1e-6) and t < 1.0  # the cap binds here
    np.testing.assert_allclose(np.sum(direction * Xs[-1], axis=1), 0.0, atol=10 * tol * d)
    expected = Xs[-1] + t * direction.astype(np.float64)
    np.testing.assert_allclose(trial, 3.0 * expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               rtol=10 * tol, atol=10 * tol)  # radius √9


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_curvature_memory_reads_the_kernel_switch_when_its_ring_is_made(rng, monkeypatch):
    """The ring, once made, serves NumPy arrays of its dtype and size without re-reading the switch;
    a new dtype or size makes a new (empty) ring, or the list path if the switch is off by then."""

    X = rng.standard_normal((4, 5))
    mem = _CurvatureMemory(3)
    assert mem._compiled(X, X) and mem.ring.S.dtype == np.float64
    ring = mem.ring
    monkeypatch.setitem(NUMBA_DEFAULT, "rows", False)
    assert mem._compiled(X, X, X, X) and mem.ring is ring  # same dtype and size: kept
    assert not mem._compiled(X.astype(np.float32), X.astype(np.float32))  # new dtype: the switch, now off
    monkeypatch.setitem(NUMBA_DEFAULT, "rows", True)
    assert mem._compiled(X[:2], X[:2]) and mem.ring is not ring and mem.ring.S.shape == (4, 10)  # new size
    assert not mem._compiled(X[:2], X[:2].tolist())  # not all NumPy: never the ring
