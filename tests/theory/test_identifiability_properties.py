"""Identifiability properties (hypothesis): the true set is in the span and perturbed or replaced
sets are not, residuals are invariant to permutations and joint rotations, and sign flips are
invisible for an odd σ and visible for a mixed-parity one."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rftheory.theory.identifiability.common import FixedWeights, sign_aware_distance
from rftheory.theory.identifiability.theorem1 import kernel_residual, single_sample_residual
from rftheory.theory.span import principal_angles, row_residuals

from _identifiability_ref import gaussian_V
from conftest import sphere_rows

sizes = st.tuples(st.integers(1, 4), st.integers(2, 6))  # (n, d)


def _setup(seed, n, d, act="relu+tanh", ratio=20):
    rng = np.random.default_rng(seed)
    X = sphere_rows(rng, n, d)
    V = gaussian_V(rng, ratio * d * n, d)
    return rng, X, V, FixedWeights(V, act)


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_true_set_in_span_perturbed_and_replaced_not(nd, seed):
    """p = 20·dn: the true X has residual at round-off; a perturbed set does not — its residual
    matches the first-order prediction ‖P⊥(σ'(Vx)⊙VΔ)‖/‖φ(x)‖ — and neither does a fresh sample
    put in place of x_0 after permuting (at least half its kernel-limit residual R∞)."""
    n, d = nd
    rng, X, V, model = _setup(seed, n, d)
    act = model.activation
    assert float(single_sample_residual(X, X, model).max()) <= 1e-10
    # small tangent perturbation of every row; the first-order term dominates when the samples
    # are separated (two nearby samples put their chord, ≈ the tangent direction, in the span)
    eta = 1e-6
    U = rng.standard_normal((n, d))
    U -= (np.sum(U * X, axis=1) / d)[:, None] * X
    U *= np.sqrt(d) / np.linalg.norm(U, axis=1, keepdims=True)
    Xe = X + eta * U
    R = single_sample_residual(Xe, X, model)
    assert R.min() > 1e-12  # ≥ 1000 × the round-off floor of R(x_i)
    sep = min((sign_aware_distance(X[i:i + 1], np.delete(X, i, axis=0)).distance[0] for i in range(n)),
              default=np.inf) if n > 1 else np.inf
    if sep >= 0.1:
        Z = X @ V.T
        lin = row_residuals(act.deriv(Z) * (U @ V.T), act.fn(Z)).absolute / np.linalg.norm(act.fn(Z), axis=1) * eta
        np.testing.assert_allclose(R, lin, rtol=0.02)
    # permute and replace one sample with a fresh sphere point
    perm = rng.permutation(n)
    Xr = X[perm].copy()
    Xr[0] = sphere_rows(rng, 1, d)[0]
    if sign_aware_distance(Xr[:1], X).distance[0] >= 0.2:
        R0 = float(single_sample_residual(Xr[:1], X, model)[0])
        assert R0 >= 0.5 * float(kernel_residual(Xr[:1], X, act)[0])
        # the span of the new set differs from the old one
        assert float(principal_angles(model.features(Xr), model.features(X))[0]) > 1e-3


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_residuals_invariant_to_row_permutation(nd, seed):
    n, d = nd
    rng, X, _, model = _setup(seed, n, d)
    Xh = sphere_rows(rng, 5, d)
    perm = rng.permutation(n)
    R = single_sample_residual(Xh, X, model)
    np.testing.assert_allclose(single_sample_residual(Xh, X[perm], model), R, rtol=1e-9, atol=1e-14)
    q = rng.permutation(5)
    np.testing.assert_allclose(single_sample_residual(Xh[q], X, model), R[q], rtol=1e-12, atol=1e-15)
    assert float(principal_angles(model.features(X[perm]), model.features(X)).max()) <= 1e-7


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_residuals_invariant_to_joint_rotation(nd, seed):
    """Features of (X Qᵀ, V Qᵀ) equal those of (X, V) since XQᵀ(VQᵀ)ᵀ = XVᵀ: R is unchanged."""
    n, d = nd
    rng, X, V, model = _setup(seed, n, d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    rotated = FixedWeights(V @ Q.T, "relu+tanh")
    Xh = sphere_rows(rng, 4, d)
    R = single_sample_residual(Xh, X, model)
    np.testing.assert_allclose(single_sample_residual(Xh @ Q.T, X @ Q.T, rotated), R, rtol=1e-8, atol=1e-12)
    dist = sign_aware_distance(Xh, X).distance
    np.testing.assert_allclose(sign_aware_distance(Xh @ Q.T, X @ Q.T).distance, dist, atol=1e-7)


@given(nd=sizes, seed=st.integers(0, 2**31 - 1))
def test_sign_flips_tanh_invisible_relu_tanh_visible(nd, seed):
    """tanh is odd: φ(−x) = −φ(x), the span ignores per-sample signs.  relu + tanh has both
    nonlinear parities: flipping changes the span, and a flipped sample's residual is at
    least half its kernel limit R∞."""
    n, d = nd
    rng, X, V, _ = _setup(seed, n, d)
    s = rng.choice([-1.0, 1.0], size=n)
    s[rng.integers(n)] = -1.0  # at least one flip
    tanh = FixedWeights(V, "tanh")
    assert float(principal_angles(tanh.features(s[:, None] * X), tanh.features(X)).max()) <= 1e-7
    assert float(single_sample_residual(s[:, None] * X, X, tanh).max()) <= 1e-10
    mixed = FixedWeights(V, "relu+tanh")
    assert float(principal_angles(mixed.features(s[:, None] * X), mixed.features(X)).max()) > 1e-3
    # quantitatively, for flipped samples whose −x_i is not close to another +x_j
    # (which would put φ(−x_i) near the span for an unrelated reason)
    flipped = np.flatnonzero(s < 0)
    far = [i for i in flipped if np.min(np.linalg.norm(-X[i] - X, axis=1)) / np.sqrt(d) >= 0.2]
    if far:
        R = single_sample_residual(-X[far], X, mixed)
        Rk = kernel_residual(-X[far], X, "relu+tanh")
        assert float(Rk.min()) > 1e-3
        assert np.all(R >= 0.5 * Rk)
