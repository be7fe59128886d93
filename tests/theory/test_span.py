"""Span tools against independent references: numpy.linalg.matrix_rank, least squares,
scipy.linalg.subspace_angles / orth, and closed-form constructions."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

from rftheory.backend import cupy_available
from rftheory.theory.span import (
    numerical_rank,
    principal_angles,
    rank_tolerance,
    row_basis,
    row_residuals,
    span_distance,
)


def low_rank(rng, m, k, r, scale=1.0):
    return scale * rng.standard_normal((m, r)) @ rng.standard_normal((r, k))


@given(
    m=st.integers(1, 8),
    k=st.integers(1, 40),
    r=st.integers(0, 8),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_rank_matches_numpy_and_basis_spans(m, k, r, seed, scale):
    rng = np.random.default_rng(seed)
    A = low_rank(rng, m, k, r, scale) if r > 0 else np.zeros((m, k))
    rank = numerical_rank(A)
    assert rank == np.linalg.matrix_rank(A)
    assert rank == min(r, m, k)
    b = row_basis(A)
    assert b.rank == rank and b.basis.shape == (rank, k)
    np.testing.assert_allclose(b.basis @ b.basis.T, np.eye(rank), atol=1e-12)
    if rank:
        # every row of A lies in the span: residual at round-off level relative to the row norm
        res = row_residuals(A, basis=b)
        assert np.all(res.relative <= 1e-10)
        # same subspace as scipy.linalg.orth (column space of Aᵀ)
        O = sla.orth(A.T)
        assert O.shape[1] == rank
        np.testing.assert_allclose(b.basis.T @ b.basis, O @ O.T, atol=1e-9)


def test_rank_tolerance_rule_and_dtype():
    s = np.array([4.0, 1.0])
    assert rank_tolerance(s, (3, 7)) == 7 * np.finfo(np.float64).eps * 4.0
    assert rank_tolerance(s, (3, 7), np.float32) == 7 * np.finfo(np.float32).eps * 4.0
    assert rank_tolerance(s, (3, 7), rtol=0.1, atol=1.0) == 1.0
    assert rank_tolerance(s, (3, 7), rtol=0.5) == 2.0
    # a float32 matrix with a float32-noise-level singular value is rank-deficient
    rng = np.random.default_rng(0)
    A = low_rank(rng, 3, 50, 2)
    A32 = (A + 1e-9 * rng.standard_normal(A.shape)).astype(np.float32)
    assert numerical_rank(A32) == 2
    assert numerical_rank(A + 1e-9 * rng.standard_normal(A.shape)) == 3
    with pytest.raises(ValueError, match="rtol"):
        numerical_rank(A, rtol=-1)
    with pytest.raises(ValueError, match="atol"):
        numerical_rank(A, atol=float("nan"))


@given(m=st.integers(1, 6), n=st.integers(1, 6), k=st.integers(8, 40), seed=st.integers(0, 2**31 - 1))
def test_row_residuals_match_least_squares(m, n, k, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, k))
    B = rng.standard_normal((m, k))
    coef, *_ = np.linalg.lstsq(A.T, B.T, rcond=None)
    ref = np.linalg.norm(B.T - A.T @ coef, axis=0)
    res = row_residuals(B, A)
    np.testing.assert_allclose(res.absolute, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.relative, ref / np.linalg.norm(B, axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.per_sqrt_p, ref / np.sqrt(k), rtol=1e-9, atol=1e-12)
    assert res.rank == min(n, k)
    # QR basis (full row rank here) gives the same residuals
    np.testing.assert_allclose(row_residuals(B, A, method="qr").absolute, ref, rtol=1e-9, atol=1e-12)


def test_row_residuals_tiny_residual_is_resolved():
    """A residual of relative size 1e-12 is measured, not buried in the projection's round-off."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 200))
    Q = row_basis(A).basis
    w = rng.standard_normal(200)
    w -= Q.T @ (Q @ w)
    w /= np.linalg.norm(w)
    b = (rng.standard_normal(3) @ A)
    b = b / np.linalg.norm(b) + 1e-12 * w
    rel = float(row_residuals(b[None, :], A).relative[0])
    assert rel == pytest.approx(1e-12, rel=1e-3)


def test_row_residuals_edge_cases():
    A = np.zeros((2, 5))
    B = np.array([[0.0, 3.0, 4.0, 0.0, 0.0], [0.0] * 5])
    r = row_residuals(B, A)
    assert r.rank == 0
    np.testing.assert_allclose(r.absolute, [5.0, 0.0])
    np.testing.assert_allclose(r.relative, [1.0, 0.0])  # a zero row lies in every span
    with pytest.raises(ValueError, match="columns"):
        row_residuals(np.ones((1, 4)), np.ones((1, 5)))
    with pytest.raises(ValueError, match="needs A"):
        row_residuals(B)
    with pytest.raises(ValueError, match="2-D"):
        row_residuals(np.ones(5), A)
    with pytest.raises(ValueError, match="non-finite"):
        row_residuals(np.full((1, 5), np.nan), A)
    with pytest.raises(ValueError, match="method"):
        row_basis(A, method="lu")


@given(
    ra=st.integers(1, 5),
    rb=st.integers(1, 5),
    extra=st.integers(0, 2),
    k=st.integers(12, 30),
    seed=st.integers(0, 2**31 - 1),
)
def test_principal_angles_match_scipy(ra, rb, extra, k, seed):
    rng = np.random.default_rng(seed)
    A = low_rank(rng, ra + extra, k, ra)  # rank-deficient inputs exercise the tolerance rule
    B = rng.standard_normal((rb, k))
    ours = principal_angles(A, B)
    ref = sla.subspace_angles(A.T, B.T)
    assert ours.shape == ref.shape == (min(ra, rb),)
    # random subspaces: angles far from 0, where scipy's arccos/arcsin mix is accurate
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(principal_angles(B, A), ours, rtol=1e-8, atol=1e-10)
    assert np.all(np.diff(ours) <= 1e-12)  # descending


def test_principal_angles_closed_form_including_tiny_angles():
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.standard_normal((60, 6)))
    true = np.array([1.2, 0.4, 1e-9])
    A = Q[:, :3].T
    B = np.stack([np.cos(t) * Q[:, i] + np.sin(t) * Q[:, 3 + i] for i, t in enumerate(true)])
    got = principal_angles(A, B)
    np.testing.assert_allclose(got, np.sort(true)[::-1], rtol=1e-7)
    # mixing the rows (same spans) does not change the angles
    M1, M2 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    np.testing.assert_allclose(principal_angles(M1 @ A, M2 @ B), np.sort(true)[::-1], rtol=1e-6)
    assert span_distance(A, B) == pytest.approx(np.sin(1.2), rel=1e-10)
    assert span_distance(A, A) <= 1e-12
    Bo = Q[:, 3:].T
    np.testing.assert_allclose(principal_angles(A, Bo), np.full(3, np.pi / 2), atol=1e-12)
    assert principal_angles(np.zeros((2, 60)), A).shape == (0,)
    with pytest.raises(ValueError, match="columns"):
        principal_angles(A, B[:, :10])


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy():  # pragma: no cover - GPU only
    import cupy as cp

    rng = np.random.default_rng(3)
    A = low_rank(rng, 6, 500, 4)
    B = rng.standard_normal((5, 500))
    Ac, Bc = cp.asarray(A), cp.asarray(B)
    assert numerical_rank(Ac) == numerical_rank(A) == 4
    r, rc = row_residuals(B, A), row_residuals(Bc, Ac)
    assert isinstance(rc.relative, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(rc.relative), r.relative, rtol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(rc.per_sqrt_p), r.per_sqrt_p, rtol=1e-5)
    ang, angc = principal_angles(A, B), principal_angles(Ac, Bc)
    assert isinstance(angc, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(angc), ang, rtol=1e-5)
    b, bc = row_basis(A), row_basis(Ac)
    np.testing.assert_allclose(cp.asnumpy(bc.basis.T @ bc.basis), b.basis.T @ b.basis, atol=1e-8)
