"""The float32 projection loss on packed panels of V, fused and threaded.

Same mathematics as :func:`rftheory.loss.projection_loss` (which dispatches
here when :func:`panel_loss_applicable` holds); for R candidate sets of n̂
rows (row g·n̂ + i of the stacked X̂ is sample i of set g):

    pass 1, per chunk of 256 features:
        Z = X̂Vᵀ (forward micro-kernel on the panels P of V),
        F = σ(Z), D = σ'(Z) in place, σ = a·relu + b·tanh,
        v_g += F_g θ,   A_g += F_g F_gᵀ (lower triangle)       (float64 sums)
    α_g = A_g⁻¹ v_g       (float64 Cholesky, gram_solve's conditioning rule;
                           gram_solve itself when that rule refuses)
    pass 2, per chunk of 256 features:
        r_g = θ − F_gᵀ α_g,  ‖r_g‖² accumulated               (float64)
        W = D ⊙ r_g (per row of set g), packed by rows,
        Gᵀ += Vᵀ Wᵀ (backward micro-kernel on the same panels P)
    L_g = ‖r_g‖²/‖θ‖²,   ∂L/∂X̂_g = −(2/‖θ‖²) diag(α_g) G_g.

Every step uses a chunk while it is in cache: Z, F and D are written once
and read back once (pass 2), W never leaves the cache, and V is read from
one packed copy by both passes.

Threads: the features are cut into fixed pieces of PIECE_BLOCKS panels
that the threads pull dynamically; each piece has its own accumulators,
summed in piece order, so the result is bitwise the same for any thread
count and schedule.  The thread count is :func:`kernel_threads` (the
current BLAS limit unless :func:`panel_threads` says otherwise), so
``threadpool_limits(1)`` — set by sweep workers — makes this serial too.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .kernels import numba_enabled, relu_tanh_coefficients
from .linalg import cholesky_condition_limit, gram_solve
from .panel import PANEL_WIDTH, T_WIDTH, TILE_ROWS, pack_forward, pack_tiles, panel_kernels_available

__all__ = ["panel_loss_applicable", "panel_model_applicable", "panel_projection_loss", "packed_panels",
           "kernel_threads", "panel_threads", "PANEL_MAX_BYTES"]

PANEL_MAX_BYTES = 2**30  # keep a packed copy of V only up to 1 GiB (else the BLAS path runs)
FORWARD_CHUNK_BLOCKS = 16  # panels (16 features each) per cache-resident chunk of pass 1
RESIDUAL_CHUNK_BLOCKS = 16  # panels per cache-resident chunk of pass 2
PIECE_BLOCKS = 128  # panels (2048 features) per piece of work handed to a thread; fixed, so sums are reproducible

if panel_kernels_available():
    from numba import njit

    from .kernels import relu_tanh_f32
    from .panel import _backward_blocks, _forward_blocks, scaled_transpose8

    # (loops index 1-D row slices: LLVM vectorises those, not 2-D indexing)
    @njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
    def _features_pass(X, P, theta, a, b, relu_surrogate, groups, n_hat, block_lo, block_hi, p,
                       F, D, v, A):  # pragma: no cover - compiled
        """Pass 1 on forward panels [block_lo, block_hi): F, D (in place of Z) and the float64 sums v, A (lower triangle)."""
        H = np.zeros((n_hat + 1, FORWARD_CHUNK_BLOCKS * PANEL_WIDTH))  # float64 rows of one chunk (+ a zero row)
        for c0 in range(block_lo, block_hi, FORWARD_CHUNK_BLOCKS):
            c1 = min(c0 + FORWARD_CHUNK_BLOCKS, block_hi)
            _forward_blocks(X, P, F, c0, c1)
            j0, j1 = c0 * PANEL_WIDTH, min(c1 * PANEL_WIDTH, p)
            th = theta[j0:j1]
            for row in range(groups * n_hat):
                f_row, d_row = F[row, j0:j1], D[row, j0:j1]
                if relu_surrogate:  # σ' replaced by 1[z > 0]; two loops, each branch-free (vectorised)
                    for j in range(j1 - j0):
                        z = f_row[j]
                        d_row[j] = np.float32(1.0) if z > 0 else np.float32(0.0)
                        f_row[j] = relu_tanh_f32(z, a, b)[0]
                else:
                    for j in range(j1 - j0):
                        f_row[j], d_row[j] = relu_tanh_f32(f_row[j], a, b)
            m = j1 - j0
            for g in range(groups):
                # the group's rows once in float64 (each converted once, not once per pair)
                for i in range(n_hat):
                    f_i, h_i = F[g * n_hat + i, j0:j1], H[i]
                    for j in range(m):
                        h_i[j] = f_i[j]
                for i in range(n_hat):
                    h_i = H[i, :m]
                    s = 0.0
                    for j in range(m):
                        s += h_i[j] * th[j]
                    v[g, i] += s
                for i in range(0, n_hat, 2):  # two rows against each earlier row: half the loads
                    h_0, h_1 = H[i, :m], H[i + 1, :m]  # H[n_hat] is a zero row
                    for k in range(i + 2):
                        h_k = H[k, :m]
                        s0 = 0.0
                        s1 = 0.0
                        for j in range(m):
                            s0 += h_0[j] * h_k[j]
                            s1 += h_1[j] * h_k[j]
                        if k <= i:
                            A[g, i, k] += s0
                        if i + 1 < n_hat:
                            A[g, i + 1, k] += s1

    @njit(nogil=True, cache=True, error_model="numpy")
    def _pack_w(D, r32, row_lo, row_hi, c0, m, width, Wt):  # pragma: no cover - compiled
        """Wt[row // 24, j, row % 24] = D[row, c0 + j] · r32[j] for rows [row_lo, row_hi) and j < m; 0 for m ≤ j < width.

        Whole 8×8 blocks (8 rows of one set, aligned to 8) go through the
        vector transpose; the rest is scalar.
        """
        span, d_cols = Wt.shape[1], D.shape[1]
        full = m - m % 8
        row = row_lo
        while row < row_hi:
            if row % 8 == 0 and row + 8 <= row_hi:  # an 8×8-block row: vector transposes, scalar tail
                q, c = row // T_WIDTH, row % T_WIDTH
                for j0 in range(0, full, 8):
                    scaled_transpose8(D, row * d_cols + c0 + j0, d_cols, r32, j0, Wt, (q * span + j0) * T_WIDTH + c,
                                      T_WIDTH)
                last, start = row + 8, full
            else:  # a single row, all scalar
                last, start = row + 1, 0
            for i in range(row, last):
                q, c = i // T_WIDTH, i % T_WIDTH
                for j in range(start, m):
                    Wt[q, j, c] = D[i, c0 + j] * r32[j]
                for j in range(m, width):
                    Wt[q, j, c] = np.float32(0.0)
            row = last

    @njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
    def _residual_pass(F, D, theta, alpha, groups, n_hat, block_lo, block_hi, p, P, GT, r_sq,
                       with_grad):  # pragma: no cover - compiled
        """Pass 2 on forward panels [block_lo, block_hi): r = θ − Fᵀα (float64), ‖r‖², W = D ⊙ r, Gᵀ += Vᵀ Wᵀ.

        W lives only chunk by chunk, packed by rows (Wt[q, j, c] = W[24q + c, j], in cache);
        features at or past p get W = 0.
        """
        width = RESIDUAL_CHUNK_BLOCKS * PANEL_WIDTH
        r = np.empty(width, dtype=np.float64)
        r32 = np.empty(width, dtype=np.float32)
        Wt = np.zeros((-(-(groups * n_hat) // T_WIDTH), width, T_WIDTH), dtype=np.float32)
        for b0 in range(block_lo, block_hi, RESIDUAL_CHUNK_BLOCKS):
            b1 = min(b0 + RESIDUAL_CHUNK_BLOCKS, block_hi)
            c0 = b0 * PANEL_WIDTH
            m = min(b1 * PANEL_WIDTH, p) - c0  # real features in this chunk
            th = theta[c0:c0 + m]
            for g in range(groups):
                for j in range(m):
                    r[j] = th[j]
                for i in range(n_hat):
                    ai = alpha[g, i]
                    f_i = F[g * n_hat + i, c0:c0 + m]
                    for j in range(m):
                        r[j] -= ai * np.float64(f_i[j])
                s = 0.0
                for j in range(m):
                    s += r[j] * r[j]
                r_sq[g] += s
                if with_grad:
                    for j in range(m):
                        r32[j] = r[j]
                    _pack_w(D, r32, g * n_hat, (g + 1) * n_hat, c0, m, (b1 - b0) * PANEL_WIDTH, Wt)
            if with_grad:
                _backward_blocks(Wt, P, GT, b0, b1, c0)


    @njit(nogil=True, cache=True, error_model="numpy")
    def _small_gram_solve(A, v, limit, alpha):  # pragma: no cover - compiled
        """α_g = A_g⁻¹ v_g by Cholesky from the lower triangles of A (R×n̂×n̂); False if any
        A_g fails the rule of :func:`rftheory.linalg.gram_solve` (κ̂ ≥ limit or not positive)."""
        groups, n, _ = A.shape
        L = np.zeros((n, n))
        for g in range(groups):
            for j in range(n):
                s = A[g, j, j]
                for k in range(j):
                    s -= L[j, k] * L[j, k]
                if not s > 0.0:
                    return False
                L[j, j] = np.sqrt(s)
                for i in range(j + 1, n):
                    s = A[g, i, j]
                    for k in range(j):
                        s -= L[i, k] * L[j, k]
                    L[i, j] = s / L[j, j]
            dmax, dmin = L[0, 0], L[0, 0]
            for j in range(n):
                dmax, dmin = max(dmax, L[j, j]), min(dmin, L[j, j])
            if not (dmax / dmin) ** 2 < limit:
                return False
            for i in range(n):  # L y = v
                s = v[g, i]
                for k in range(i):
                    s -= L[i, k] * alpha[g, k]
                alpha[g, i] = s / L[i, i]
            for i in range(n - 1, -1, -1):  # Lᵀ α = y
                s = alpha[g, i]
                for k in range(i + 1, n):
                    s -= L[k, i] * alpha[g, k]
                alpha[g, i] = s / L[i, i]
        return True


_POOL: ThreadPoolExecutor | None = None
_POOL_PID = None
_POOL_LOCK = threading.Lock()
_BLAS = None


def _pool() -> ThreadPoolExecutor:
    """A process-wide worker pool (recreated in a forked child, whose copy has no threads)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=max(os.cpu_count() or 1, 1), thread_name_prefix="rftheory-panel")
            _POOL_PID = os.getpid()
        return _POOL


_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("rftheory_panel_threads", default=None)


@contextlib.contextmanager
def panel_threads(threads: int | None):
    """Within the block, the panel loss uses ``threads`` threads (None: follow the BLAS limit)."""
    token = _THREADS.set(None if threads is None else max(1, int(threads)))
    try:
        yield
    finally:
        _THREADS.reset(token)


def kernel_threads() -> int:
    """Threads the panel loss may use.

    The value set by :func:`panel_threads` if any, else the current BLAS
    thread limit of this process, so ``threadpoolctl.threadpool_limits``
    (sweep workers set 1) makes the panel kernels serial too and they never
    oversubscribe where BLAS would not.  Falls back to ``os.cpu_count()``.
    """
    global _BLAS
    chosen = _THREADS.get()
    if chosen is not None:
        return chosen
    try:
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415

            _BLAS = ThreadpoolController().select(user_api="blas").lib_controllers
        counts = [int(c.num_threads) for c in _BLAS]
        if counts:
            return max(1, min(counts))
    except Exception:  # pragma: no cover - threadpoolctl missing or a BLAS it cannot query
        pass
    return max(os.cpu_count() or 1, 1)


def _run(tasks):
    """Run zero-argument callables, the first on this thread and the rest on the pool."""
    if len(tasks) == 1:
        return [tasks[0]()]
    futures = [_pool().submit(t) for t in tasks[1:]]
    first = tasks[0]()
    return [first] + [f.result() for f in futures]


def _run_pieces(work, pieces, threads: int) -> None:
    """Call ``work(k, lo, hi)`` for every piece (k, lo, hi) in ``pieces`` on ``threads`` threads.

    The threads pull pieces from one shared iterator (dynamic scheduling), so
    a thread that starts late or runs on a slower core simply takes fewer.
    """
    pending = iter(pieces)  # next() on a list iterator is atomic under the GIL

    def worker():
        for piece in pending:
            work(*piece)

    _run([worker] * threads)


def _ordered_sum(parts):
    """parts[0] + parts[1] + … in this order (np.sum over an axis may pair them differently)."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


_LOCAL = threading.local()


def _workspace(rows: int, columns: int):
    """Scratch F, D (rows×columns, float32), reused by later calls of this thread.

    Fresh multi-megabyte arrays cost page faults on every evaluation
    (≈ 0.2 ms for three 1.6 MB arrays on the reference machine, measured
    when W was a third such array); nothing
    returned to the caller refers to them.
    """
    key = (rows, columns)
    cached = getattr(_LOCAL, "workspace", None)
    if cached is None or cached[0] != key:
        cached = (key, np.empty((rows, columns), np.float32), np.empty((rows, columns), np.float32))
        _LOCAL.workspace = cached
    return cached[1:]


def packed_panels(model):
    """P = pack_forward(V) of a stored float32 V, computed once per V (both passes read it)."""
    V = model._V
    cached = getattr(model, "_panels", None)
    if cached is None or cached[0] is not V:
        cached = (V, pack_forward(V))
        model._panels = cached
    return cached[1]


def panel_model_applicable(model, dtype=None) -> bool:
    """True if the fused panel path serves this model (cast to ``dtype`` if given).

    Needs: Numba, the "panel" kernel enabled (RFTHEORY_NUMBA, see
    :mod:`rftheory.kernels`), a random-features model on NumPy with V stored
    (at most PANEL_MAX_BYTES in float32), float32 and σ = a·relu + b·tanh.
    Everything else (float64, CuPy, streamed V, other activations, adapters)
    takes the BLAS path of :mod:`rftheory.loss`.
    """
    V = getattr(model, "_V", None)
    dtype = np.dtype(model.dtype if dtype is None else dtype)
    return (
        panel_kernels_available()
        and numba_enabled("panel")
        and isinstance(V, np.ndarray)
        and dtype == np.float32
        and V.size * 4 <= PANEL_MAX_BYTES
        and relu_tanh_coefficients(model.activation) is not None
    )


def panel_loss_applicable(model, X_hat) -> bool:
    """:func:`panel_model_applicable` for the model and a NumPy candidate X̂."""
    return isinstance(X_hat, np.ndarray) and panel_model_applicable(model)


def panel_projection_loss(X_hat, theta64, theta_sq, model, *, with_grad: bool, relu_surrogate: bool):
    """(loss (R,), grad (R, n̂, d) float32 or None, α (R, n̂)) for X̂ of shape (R, n̂, d), float32.

    ``theta64`` is θ as float64 (p,), ``theta_sq`` = ‖θ‖².  See the module
    docstring for the passes; the caller checks :func:`panel_loss_applicable`.
    """
    R, n_hat, d = X_hat.shape
    p = model.p
    P = packed_panels(model)
    a, b = (np.float32(c) for c in relu_tanh_coefficients(model.activation))
    rows = R * n_hat
    rows_padded = -(-rows // TILE_ROWS) * TILE_ROWS
    blocks = P.shape[0]
    X = pack_tiles(X_hat.reshape(rows, d))
    F, D = _workspace(rows_padded, blocks * PANEL_WIDTH)
    theta64 = np.ascontiguousarray(theta64, dtype=np.float64)

    # fixed pieces, each with its own accumulators summed in piece order: the result does
    # not depend on the thread count or on which thread took which piece (bitwise)
    pieces = [(k, lo, min(lo + PIECE_BLOCKS, blocks)) for k, lo in enumerate(range(0, blocks, PIECE_BLOCKS))]
    threads = min(kernel_threads(), len(pieces))
    v = np.zeros((len(pieces), R, n_hat))
    A = np.zeros((len(pieces), R, n_hat, n_hat))

    def features(k, lo, hi):
        _features_pass(X, P, theta64, a, b, relu_surrogate, R, n_hat, lo, hi, p, F, D, v[k], A[k])

    _run_pieces(features, pieces, threads)
    v, A = _ordered_sum(v), _ordered_sum(A)  # A: lower triangles
    alpha = np.empty((R, n_hat))
    if not _small_gram_solve(A, v, cholesky_condition_limit(n_hat), alpha):  # ill-conditioned: the general solver
        A = np.tril(A) + np.swapaxes(np.tril(A, -1), 1, 2)
        alpha = np.stack([gram_solve(A[g], v[g]) for g in range(R)])

    GT = np.zeros((len(pieces), P.shape[1], -(-rows // T_WIDTH) * T_WIDTH), dtype=np.float32)  # Gᵀ, padded
    r_sq = np.zeros((len(pieces), R))

    def residual(k, lo, hi):
        _residual_pass(F, D, theta64, alpha, R, n_hat, lo, hi, p, P, GT[k], r_sq[k], with_grad)

    _run_pieces(residual, pieces, threads)
    r_sq = _ordered_sum(r_sq)
    grad = None
    if with_grad:
        G = _ordered_sum(GT)[:d, :rows].T
        scale = ((-2.0 / theta_sq) * alpha).astype(np.float32)
        grad = G.reshape(R, n_hat, d) * scale[:, :, None]
    return r_sq / theta_sq, grad, alpha
