"""Pursuit starts (rftheory.attack.pursuit): the score and its gradient, the deflated features, small recoveries."""
import numpy as np
import pytest

from rftheory.attack import pursuit
from rftheory.attack.loss import feature_map_loss, projection_loss
from rftheory.attack.metrics import reconstruction_errors
from rftheory.data.synthetic import synthetic_sphere
from rftheory.models.random_features import RandomFeatures
from rftheory.optim.sphere import random_sphere


def _problem(n, d, p, seed=0, activation="relu+tanh"):
    ds = synthetic_sphere(n, d, seed=seed)
    model = RandomFeatures(p, d, activation, seed=seed + 1000, dtype=np.float64).fit(ds.X, ds.y)
    return ds, model


def _residual_off(M, theta):
    """θ minus its least-squares projection on the columns of M (an independent reference: lstsq, no QR)."""
    coef, *_ = np.linalg.lstsq(M, theta, rcond=None)
    return theta - M @ coef


def _tangent(rng, C):
    xi = rng.standard_normal(C.shape)
    return xi - (np.sum(xi * C, axis=1, keepdims=True) / np.sum(C * C, axis=1, keepdims=True)) * C


@pytest.mark.parametrize("activation", ["relu+tanh", "tanh"])
def test_score_is_the_squared_cosine_of_the_projected_feature(activation):
    rng = np.random.default_rng(0)
    _, model = _problem(3, 5, 60, activation=activation)
    theta = model.theta
    S = random_sphere(2, 5, rng)
    low = pursuit.LowOrderSpan(model, dtype=np.float64)
    Q = pursuit.span_basis(model, S, low)
    theta_B = low.project_out(theta)
    r = theta_B - Q @ (Q.T @ theta_B)
    C = random_sphere(7, 5, rng)
    s, _ = pursuit.pursuit_score(C, r, Q, model, low=low, with_grad=False, dtype=np.float64)
    M = np.concatenate([np.ones((60, 1)), model.weights, model.features(S).T], axis=1)
    ref_r = _residual_off(M, theta)
    for c, sc in zip(C, s):
        u = _residual_off(M, model.features(c[None])[0])
        assert sc == pytest.approx((ref_r @ u) ** 2 / ((u @ u) * (ref_r @ ref_r)), rel=1e-9)
    # adding c lowers ‖P⊥θ‖² by exactly s(c)·‖r‖²
    k = int(np.argmax(s))
    after = _residual_off(np.concatenate([M, model.features(C[k:k + 1]).T], axis=1), theta)
    assert after @ after == pytest.approx((1 - s[k]) * (r @ r), rel=1e-8)


@pytest.mark.parametrize("activation", ["relu+tanh", "tanh"])
@pytest.mark.parametrize("rows", [0, 3])
def test_score_gradient_matches_finite_differences(activation, rows):
    rng = np.random.default_rng(1)
    _, model = _problem(3, 6, 80, activation=activation)
    S = random_sphere(rows, 6, rng)
    low = pursuit.LowOrderSpan(model, dtype=np.float64)
    Q = pursuit.span_basis(model, S, low)
    theta_B = low.project_out(model.theta)
    r = theta_B - Q @ (Q.T @ theta_B)
    C = random_sphere(5, 6, rng)
    _, grad = pursuit.pursuit_score(C, r, Q, model, low=low, dtype=np.float64)
    assert np.allclose(np.sum(grad * C, axis=1), 0.0, atol=1e-12)  # tangent to the sphere
    h = 1e-6
    for _ in range(3):
        xi = _tangent(rng, C)  # along a tangent direction the Riemannian and Euclidean slopes agree
        plus, _ = pursuit.pursuit_score(C + h * xi, r, Q, model, low=low, with_grad=False, dtype=np.float64)
        minus, _ = pursuit.pursuit_score(C - h * xi, r, Q, model, low=low, with_grad=False, dtype=np.float64)
        fd = (plus - minus) / (2 * h)
        assert np.allclose(np.sum(grad * xi, axis=1), fd, rtol=1e-5, atol=1e-8 * np.max(np.abs(fd)))


def test_correlation_is_the_score_numerator_and_its_gradient_matches_finite_differences():
    """The ascent's objective c = ⟨r, φ⟩²/‖r‖² equals s·b (b = ‖P⊥φ‖², from the score itself), and
    its Riemannian gradient matches central differences along tangent directions."""
    rng = np.random.default_rng(9)
    _, model = _problem(3, 6, 80)
    low = pursuit.LowOrderSpan(model)
    r = low.project_out(model.theta)
    scorer = pursuit._Scorer(r, None, model, low, dtype=np.float64)
    climb = pursuit._Correlation(scorer)
    C = random_sphere(5, 6, rng)
    c, grad = climb(C)
    s, _ = scorer(C, with_grad=False)
    b = np.sum(low.project_out(model.features(C)) ** 2, axis=1)
    np.testing.assert_allclose(c, s * b, rtol=1e-9)
    assert np.allclose(np.sum(grad * C, axis=1), 0.0, atol=1e-12)
    h = 1e-6
    xi = _tangent(rng, C)
    fd = (climb(C + h * xi)[0] - climb(C - h * xi)[0]) / (2 * h)
    np.testing.assert_allclose(np.sum(grad * xi, axis=1), fd, rtol=1e-5, atol=1e-8 * np.max(np.abs(fd)))


def test_score_in_float32_is_close_to_float64():
    rng = np.random.default_rng(2)
    _, model = _problem(3, 8, 200)
    low64, low32 = pursuit.LowOrderSpan(model), pursuit.LowOrderSpan(model, dtype=np.float32)
    r = low64.project_out(model.theta)
    C = random_sphere(16, 8, rng)
    s64, g64 = pursuit.pursuit_score(C, r, None, model, low=low64, dtype=np.float64)
    s32, g32 = pursuit.pursuit_score(C, r, None, model, low=low32, dtype=np.float32)
    assert np.allclose(s32, s64, rtol=1e-3, atol=1e-6)
    assert np.allclose(g32, g64, rtol=1e-2, atol=1e-3 * np.max(np.abs(g64)))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 1e-5)])
def test_low_order_span_projects_onto_one_and_V(dtype, tol):
    """P_B = A(AᵀA)⁻¹Aᵀ against an independent reference (lstsq on [1, V]): it fixes A, is
    idempotent, and leaves residuals orthogonal to A; vectors and stacks alike."""
    rng = np.random.default_rng(7)
    _, model = _problem(3, 5, 40)
    low = pursuit.LowOrderSpan(model, dtype=dtype)
    A = np.concatenate([np.ones((40, 1)), model.weights], axis=1)
    U = rng.standard_normal((3, 40))
    PU, C = low.project(U)
    np.testing.assert_allclose(C, U @ A, rtol=tol, atol=tol * 40)
    for u, pu in zip(U, PU):
        np.testing.assert_allclose(u - pu, _residual_off(A, u), atol=tol * np.linalg.norm(u))
    np.testing.assert_allclose(low.project(A.T)[0], A.T, atol=tol * 40)
    np.testing.assert_allclose(low.project_out(U[0]), low.project_out(U)[0], atol=tol * np.linalg.norm(U[0]))
    assert np.abs(low.project_out(U) @ A).max() <= 10 * tol * np.abs(U @ A).max()


def test_deflated_features_vjp_matches_finite_differences():
    rng = np.random.default_rng(3)
    _, model = _problem(3, 5, 50)
    feats = pursuit.DeflatedFeatures(model, pursuit.LowOrderSpan(model, dtype=np.float64))
    X = random_sphere(4, 5, rng)
    G = rng.standard_normal((4, 50))
    Xi = rng.standard_normal(X.shape)
    h = 1e-6
    fd = (np.sum(G * feats.features(X + h * Xi)) - np.sum(G * feats.features(X - h * Xi))) / (2 * h)
    assert np.sum(feats.features_vjp(X, G) * Xi) == pytest.approx(fd, rel=1e-6)


def _deflated(n, d, p):
    """(model, P_B, DeflatedFeatures, θ_B) of a small fitted problem, float64 throughout."""
    _, model = _problem(n, d, p)
    low = pursuit.LowOrderSpan(model, dtype=np.float64)
    return model, low, pursuit.DeflatedFeatures(model, low), low.project_out(model.theta)


def test_deflated_loss_is_the_projection_off_B_and_the_features():
    model, _, feats, theta_B = _deflated(3, 5, 50)
    X = random_sphere(3, 5, np.random.default_rng(4))
    M = np.concatenate([np.ones((50, 1)), model.weights, model.features(X).T], axis=1)
    ref = _residual_off(M, model.theta)
    loss = feature_map_loss(X, theta_B, feats, with_grad=False).loss
    assert loss == pytest.approx((ref @ ref) / (theta_B @ theta_B), rel=1e-8)


def test_deflated_loss_in_four_products_equals_the_feature_map_loss_and_finite_differences():
    """DeflatedFeatures.loss (Gram FFᵀ − WCᵀ, r ⟂ [1, V]) gives feature_map_loss's value and gradient, and its
    gradient matches central differences of its own value."""
    rng = np.random.default_rng(6)
    model, _, feats, theta_B = _deflated(4, 6, 80)
    X = random_sphere(4, 6, rng)
    loss, grad = feats.loss(X, theta_B)
    ref = feature_map_loss(X, theta_B, feats)
    assert loss == pytest.approx(ref.loss, rel=1e-9)
    np.testing.assert_allclose(grad, ref.grad, rtol=1e-7, atol=1e-12 * np.abs(ref.grad).max())
    Xi = rng.standard_normal(X.shape)
    h = 1e-6
    fd = (feats.loss(X + h * Xi, theta_B)[0] - feats.loss(X - h * Xi, theta_B)[0]) / (2 * h)
    assert np.sum(grad * Xi) == pytest.approx(fd, rel=1e-6)


def test_deflated_loss_in_float32_products_is_close_to_float64():
    """The refits' working precision: products with V in float32 (a float32 P_B) change L and its
    gradient only at float32 rounding; without P_B the map is σ(Vx) itself."""
    rng = np.random.default_rng(8)
    model, low64, feats64, theta_B = _deflated(4, 12, 300)
    feats32 = pursuit.DeflatedFeatures(model, pursuit.LowOrderSpan(model, dtype=np.float32))
    X = random_sphere(4, 12, rng)
    L64, g64 = feats64.loss(X, theta_B)
    L32, g32 = feats32.loss(X, theta_B)
    assert L32 == pytest.approx(L64, rel=1e-4)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4 * np.abs(g64).max())
    plain = pursuit.DeflatedFeatures(model)
    ref = projection_loss(X, model.theta, model)
    L, g = plain.loss(X, model.theta)
    assert L == pytest.approx(ref.loss, rel=1e-9)
    np.testing.assert_allclose(g, ref.grad, rtol=1e-7, atol=1e-12 * np.abs(ref.grad).max())


def test_best_rows_are_distinct_and_off_the_kept_rows():
    rng = np.random.default_rng(5)
    ds, model = _problem(6, 10, 400)
    rows, scores = pursuit.best_rows(model.theta, model, ds.X[:2], pursuit.LowOrderSpan(model), 3, rng, starts=64,
                                     iters=30)
    assert 1 <= rows.shape[0] <= 3 and np.all(np.diff(scores) <= 0)
    cos = np.abs(rows @ np.concatenate([ds.X[:2], rows]).T) / 10
    np.fill_diagonal(cos[:, 2:], 0.0)
    assert np.all(cos <= pursuit.DISTINCT_COS + 1e-12)


def _single_random_restart(model, n, seed):
    from rftheory.attack.reconstruct import reconstruct

    return reconstruct(model.theta, model, n, restarts=1, strategy="restarts", reseed=False, seed=seed).X_hat


def test_pursuit_start_finds_every_row_of_a_small_identifiable_problem():
    n, d = 4, 20
    random_wins = 0
    for seed in range(5):
        ds, model = _problem(n, d, 2 * n * d, seed=seed)
        X = pursuit.pursuit_start(model.theta, model, n, starts=128, seed=seed)
        assert X.shape == (n, d) and np.allclose(np.linalg.norm(X, axis=1), np.sqrt(d))
        assert np.all(reconstruction_errors(ds.X, X).recovered), seed
        assert projection_loss(X, model.theta, model, with_grad=False).loss < 1e-10
        random_wins += bool(np.all(reconstruction_errors(ds.X, _single_random_restart(model, n, seed)).recovered))
    assert random_wins < 5  # not a problem that any start solves


def test_pursuit_search_recovers_where_random_starts_stall():
    n, d = 8, 20
    for seed in (0, 1):
        ds, model = _problem(n, d, round(1.5 * n * d), seed=seed)
        assert not np.all(reconstruction_errors(ds.X, _single_random_restart(model, n, seed)).recovered)
        result = pursuit.pursuit_search(model.theta, model, n, seed=seed, moves=20)
        assert np.all(reconstruction_errors(ds.X, np.asarray(result.X_hat)).recovered), seed
        assert result.loss <= 1e-10 and result.history[-1] == result.loss
        assert all(b <= a for a, b in zip(result.history, result.history[1:]))  # a move is kept only when L falls


def test_pursuit_move_returns_n_rows_on_the_sphere():
    rng = np.random.default_rng(6)
    ds, model = _problem(5, 8, 200)
    local = pursuit._reconstruct_local(model.theta, model)

    def fun(Y, with_grad=False):
        return projection_loss(Y, model.theta, model, with_grad=with_grad)

    X = random_sphere(5, 8, rng)
    for drop in (1, 3, 5):
        Y, L, it, ok = pursuit.pursuit_move(fun, local, model.theta, model, X, rng, drop=drop, starts=32, iters=20,
                                            max_iter=50)
        assert Y.shape == (5, 8) and np.allclose(np.linalg.norm(Y, axis=1), np.sqrt(8), rtol=1e-6)
        assert L == pytest.approx(projection_loss(Y, model.theta, model, with_grad=False).loss, rel=1e-6)
        assert isinstance(ok, bool) and it >= 0


def test_bad_input_is_refused():
    ds, model = _problem(3, 5, 40)
    with pytest.raises(ValueError, match="theta"):
        pursuit.pursuit_start(model.theta[:-1], model, 3)
    with pytest.raises(ValueError, match="keep"):
        pursuit.pursuit_start(model.theta, model, 3, keep=ds.X)
    with pytest.raises(ValueError, match="n"):
        pursuit.pursuit_start(model.theta, model, 0)
    with pytest.raises(TypeError, match="random-features"):
        pursuit.pursuit_start(model.theta, object(), 3)
