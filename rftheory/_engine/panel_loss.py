"""The float32 projection loss on packed panels of V, fused and threaded.

Same mathematics as :func:`rftheory.attack.loss.projection_loss` (which dispatches
here when :func:`panel_loss_applicable` holds); for R candidate sets of n̂
rows (row g·n̂ + i of the stacked X̂ is sample i of set g):

    pass 1, per chunk of FORWARD_CHUNK_BLOCKS panels (256 or 512 features):
        Z = X̂Vᵀ (forward micro-kernel on the panels P of V),
        F = σ(Z), D = σ'(Z) in place, σ = a·relu + b·tanh, with a float64
        copy of F and v_g += F_g θ in the same sweep (sigma_row),
        A_g += F_g F_gᵀ (lower triangle, gram_tile blocks; float64 sums)
    α_g = A_g⁻¹ v_g       (float64 Cholesky, gram_solve's conditioning rule;
                           gram_solve itself when that rule refuses)
    pass 2, per chunk of RESIDUAL_CHUNK_BLOCKS panels:
        r_g = θ − F_gᵀ α_g,  ‖r_g‖² accumulated               (float64)
        W = D ⊙ r_g (per row of set g), packed by rows,
        Gᵀ += Vᵀ Wᵀ (backward micro-kernel on the same panels P)
    L_g = ‖r_g‖²/‖θ‖²,   ∂L/∂X̂_g = −(2/‖θ‖²) diag(α_g) G_g.

Every step uses a chunk while it is in cache: Z, F and D are written once
and read back once (pass 2), W never leaves the cache, and V is read from
one packed copy by both passes.

Threads: the features are cut into fixed pieces (:func:`piece_bounds`:
PIECE_BLOCKS panels each, shrinking towards the end so that the threads
finish a pass together).
One call hands the whole evaluation to the helper threads at once; inside
compiled code every thread claims pieces from an atomic counter, the lead
(the calling thread) waits for pass 1 by spinning on a second counter, sums
and solves, and releases pass 2 through a flag (:mod:`rftheory._engine.spin`): no
return to Python and no operating-system wake-up between the passes.  Between
evaluations a helper keeps spinning in compiled code until the next lead rings
a bell (:class:`_HelperThreads`), so a loop of evaluations wakes nobody.  Each
piece has its own accumulators, summed in piece order, so the result is
bitwise the same for any thread count and schedule.  The thread count is
:func:`kernel_threads` (the current BLAS limit unless :func:`panel_threads`
says otherwise), so ``threadpool_limits(1)`` — set by sweep workers — makes
this serial too.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading

import numpy as np

from .kernels import numba_enabled, relu_tanh_coefficients
from ..linalg import cholesky_condition_limit, gram_solve
from .panel import (
    GRAM_TILE_COLS,
    GRAM_TILE_ROWS,
    PANEL_WIDTH,
    TILE_ROWS,
    VECTOR,
    aligned_zeros,
    pack_forward,
    panel_kernels_available,
)

__all__ = ["panel_loss_applicable", "panel_model_applicable", "panel_projection_loss", "PanelEvaluation",
           "packed_panels", "padded_theta", "piece_bounds", "kernel_threads", "panel_threads", "PANEL_MAX_BYTES"]

PANEL_MAX_BYTES = 2**30  # keep a packed copy of V only up to 1 GiB (else the BLAS path runs)
FORWARD_CHUNK_BLOCKS = 16  # panels (PANEL_WIDTH = 16 or 32 features each) per cache-resident chunk of pass 1
RESIDUAL_CHUNK_BLOCKS = 16  # panels per cache-resident chunk of pass 2
PIECE_BLOCKS = 128  # panels (2048 or 4096 features) per piece of work handed to a thread (see piece_bounds)
TAIL_PIECE_BLOCKS = 16  # the smallest piece (one chunk: 256 or 512 features), at the end of a pass
TAIL_SHARE = 4  # a piece is at most 1/TAIL_SHARE of the panels left: the pieces shrink towards the end
GRAM_PAD = max(GRAM_TILE_ROWS, GRAM_TILE_COLS, 4)  # H has zero rows up to a multiple of this (tiles; 4-row loop blocks)
# the control counters of one evaluation (rftheory._engine.spin): pieces claimed and done per pass, the phase
# (0 pass 1, PASS_2 pass 2, REFUSED Gram refused: both end the wait for pass 1), an abort flag raised when a thread failed, and the lead's
# "inputs packed" flag that the helpers wait for
CLAIM_1, DONE_1, PHASE, CLAIM_2, DONE_2, ABORT, READY, CONTROLS = 0, 1, 2, 3, 4, 5, 6, 8
PASS_2, REFUSED = 1, 2  # values of ctl[PHASE] after pass 1
SPINS_BEFORE_YIELD = 256  # spin-wait rounds between two sched_yield calls
HELPER_SPINS = 65536  # spin-wait rounds a helper waits for the next job before it sleeps (≈ 0.9 ms measured)

if panel_kernels_available():
    from numba import njit

    from .kernels import _tangent_rows
    from .panel import (
        _backward_blocks,
        _forward_blocks,
        _pack_tiles_into,
        aligned_zeros_1d,
        gram_tile,
        residual_and_weights,
        residual_row_sums,
        sigma_row,
        sigma_row_surrogate,
    )
    from .spin import atomic_add, atomic_load, atomic_store, cpu_relax, yield_processor

    # (loops index 1-D row slices: LLVM vectorises those, not 2-D indexing)
    @njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
    def _features_pass(X, P, theta, a, b, relu_surrogate, groups, n_hat, block_lo, block_hi,
                       F, D, v, A):  # pragma: no cover - compiled
        """Pass 1 on forward panels [block_lo, block_hi): F, D (in place of Z) and the float64 sums v, A (lower triangle)."""
        n_pad = -(-n_hat // GRAM_PAD) * GRAM_PAD
        sums = np.empty(GRAM_TILE_ROWS * GRAM_TILE_COLS)
        h_cols = FORWARD_CHUNK_BLOCKS * PANEL_WIDTH
        # float64 rows of one chunk (zero rows past n̂)
        H = aligned_zeros_1d(n_pad * h_cols, np.float64).reshape((n_pad, h_cols))
        z_cols = F.shape[1]
        for c0 in range(block_lo, block_hi, FORWARD_CHUNK_BLOCKS):
            c1 = min(c0 + FORWARD_CHUNK_BLOCKS, block_hi)
            _forward_blocks(X, P, F, c0, c1)
            # whole panels: past p, Z = 0 (zero panels), so F = σ(0) = 0, H = 0 and θ (padded) = 0
            j0, vectors = c0 * PANEL_WIDTH, (c1 - c0) * (PANEL_WIDTH // VECTOR)
            for g in range(groups):
                for i in range(n_hat):
                    f = (g * n_hat + i) * z_cols + j0
                    if relu_surrogate:  # σ' replaced by 1[z > 0]
                        v[g, i] += sigma_row_surrogate(F, D, f, H, i * h_cols, theta, j0, vectors, a, b)
                    else:
                        v[g, i] += sigma_row(F, D, f, H, i * h_cols, theta, j0, vectors, a, b)
                _gram_lower(H, vectors * 2, n_hat, A[g], sums)  # whole panels: H = 0 past p

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _gram_lower_tiles(H, vectors, n_hat, A, sums):  # pragma: no cover - compiled
        """A[i, k] += Σ_j H[i, j] H[k, j] for k ≤ i < n̂, j over ``vectors`` float64 vectors of the rows.

        Tiles of GRAM_TILE_ROWS × GRAM_TILE_COLS (:func:`rftheory._engine.panel.gram_tile`) on and below the
        diagonal; H has zero rows up to a multiple of both, and only k ≤ i < n̂ is stored (sums: scratch).
        """
        stride = H.shape[1]
        for i in range(0, n_hat, GRAM_TILE_ROWS):
            for k in range(0, i + GRAM_TILE_ROWS, GRAM_TILE_COLS):
                gram_tile(H, i * stride, k * stride, stride, vectors, sums)
                for di in range(GRAM_TILE_ROWS):
                    row = i + di
                    if row < n_hat:
                        for dk in range(GRAM_TILE_COLS):
                            if k + dk <= row:
                                A[row, k + dk] += sums[di * GRAM_TILE_COLS + dk]

    @njit(nogil=True, cache=True, fastmath=True, error_model="numpy", inline="always")
    def _gram_lower_loops(H, m, n_hat, A):  # pragma: no cover - compiled
        """A[i, k] += Σ_{j<m} H[i, j] H[k, j] for k ≤ i < n̂, in blocks of 4 rows × 2 columns left
        to LLVM's vectoriser (8 sums, 6 loads per step; it interleaves them).  H has zero rows up
        to a multiple of 4 and only k ≤ i < n̂ is stored.  With 8-lane vectors this is faster than
        :func:`_gram_lower_tiles` (one thread, n̂=20, p=20000 compiled for haswell: 0.19 against
        0.25–0.35 ms)."""
        for i in range(0, n_hat, 4):
            h0, h1, h2, h3 = H[i, :m], H[i + 1, :m], H[i + 2, :m], H[i + 3, :m]
            for k in range(0, i + 4, 2):
                g0, g1 = H[k, :m], H[k + 1, :m]
                s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = 0.0
                for j in range(m):
                    a0, a1, a2, a3, b0, b1 = h0[j], h1[j], h2[j], h3[j], g0[j], g1[j]
                    s00 += a0 * b0
                    s01 += a0 * b1
                    s10 += a1 * b0
                    s11 += a1 * b1
                    s20 += a2 * b0
                    s21 += a2 * b1
                    s30 += a3 * b0
                    s31 += a3 * b1
                sums = ((s00, s01), (s10, s11), (s20, s21), (s30, s31))
                for di in range(4):
                    row = i + di
                    if row < n_hat:
                        if k <= row:
                            A[row, k] += sums[di][0]
                        if k + 1 <= row:
                            A[row, k + 1] += sums[di][1]

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _gram_lower(H, vectors, n_hat, A, sums):  # pragma: no cover - compiled
        """A[i, k] += Σ_j H[i, j] H[k, j] for k ≤ i < n̂ over ``vectors`` float64 vectors of VECTOR // 2
        lanes: register tiles with 16 lanes (AVX-512), LLVM's vectoriser with 8."""
        if VECTOR == 16:
            _gram_lower_tiles(H, vectors, n_hat, A, sums)
        else:
            _gram_lower_loops(H, vectors * (VECTOR // 2), n_hat, A)

    @njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
    def _residual_pass(F, D, theta, alpha, groups, n_hat, block_lo, block_hi, P, G, r_sq,
                       with_grad):  # pragma: no cover - compiled
        """Pass 2 on forward panels [block_lo, block_hi): r = θ − Fᵀα (float64), ‖r‖², W = D ⊙ r, G += W V.

        r and W come from :func:`rftheory._engine.panel.residual_and_weights` over whole panels (past p,
        F = θ = 0, so r = W = 0).  W lives only chunk by chunk, row-major (rows of F, zero rows
        past R·n̂), in cache.  The backward kernel
        keeps VECTOR lane-wise partial sums per entry of G over the whole range;
        they are added (lanes in order) into G (rows × d_pad) at the end.
        """
        width = RESIDUAL_CHUNK_BLOCKS * PANEL_WIDTH
        W = aligned_zeros_1d(F.shape[0] * width, np.float32).reshape((F.shape[0], width))
        G8 = aligned_zeros_1d(F.shape[0] * P.shape[1] * VECTOR, np.float32).reshape((F.shape[0], P.shape[1], VECTOR))
        z_cols, lanes = F.shape[1], VECTOR // 2
        for b0 in range(block_lo, block_hi, RESIDUAL_CHUNK_BLOCKS):
            b1 = min(b0 + RESIDUAL_CHUNK_BLOCKS, block_hi)
            c0 = b0 * PANEL_WIDTH
            # whole panels: past p, F = 0 and θ (padded) = 0, so r = 0 and W = 0 there
            vectors = (b1 - b0) * PANEL_WIDTH // lanes
            for g in range(groups):
                f = g * n_hat * z_cols + c0
                if with_grad:
                    r_sq[g] += residual_and_weights(F, D, f, z_cols, alpha, g * n_hat, n_hat, theta, c0,
                                                    W, g * n_hat * width, width, vectors)
                else:
                    r_sq[g] += residual_row_sums(F, D, f, z_cols, alpha, g * n_hat, n_hat, theta, c0,
                                                 W, g * n_hat * width, width, vectors)
            if with_grad:
                _backward_blocks(W, P, G8, b0, b1, c0)
        if with_grad:
            for i in range(groups * n_hat):
                for k in range(P.shape[1]):
                    s = np.float32(0.0)
                    for lane in range(VECTOR):
                        s += G8[i, k, lane]
                    G[i, k] += s

    @njit(nogil=True, cache=True, error_model="numpy")
    def _sum_pieces(parts):  # pragma: no cover - compiled
        """parts[0] + parts[1] + … (flattened), added in this order whatever the thread count."""
        flat = parts.reshape((parts.shape[0], parts.size // parts.shape[0]))
        total = flat[0].copy()
        for k in range(1, flat.shape[0]):
            part = flat[k]
            for i in range(total.size):
                total[i] += part[i]
        return total

    @njit(nogil=True, cache=True, error_model="numpy")
    def _prepare(X, Xt, v, A, G, r_sq):  # pragma: no cover - compiled
        """Xt = pack_tiles(X) (the forward kernel's layout) and zeroed piece sums."""
        _pack_tiles_into(X, Xt)
        v[...] = 0.0
        A[...] = 0.0
        G[...] = 0.0
        r_sq[...] = 0.0

    @njit(nogil=True, cache=True, error_model="numpy")
    def _finish(G, r_sq, alpha, theta_sq, with_grad, X, tangent):  # pragma: no cover - compiled
        """(L_g, ∂L/∂X̂_g, α_g) from the piece sums, each added in piece order:

            L_g = Σ ‖r_g‖² / ‖θ‖²,   ∂L/∂X̂[g, i] = −(2/‖θ‖²) α_g[i] · (Σ G)[g·n̂ + i, :d]

        and with ``tangent`` each gradient row projected as by
        :func:`rftheory._engine.kernels.tangent_rows` at the row of X (R·n̂ × d)
        (new arrays: the caller may keep them while the buffers are reused).
        """
        d = X.shape[1]
        groups, n_hat = alpha.shape
        loss = _sum_pieces(r_sq) / theta_sq
        grad = np.empty((groups, n_hat, d if with_grad else 0), dtype=np.float32)
        if with_grad:
            total = _sum_pieces(G).reshape(G.shape[1:])
            for g in range(groups):
                for i in range(n_hat):
                    scale = np.float32((-2.0 / theta_sq) * alpha[g, i])
                    for k in range(d):
                        grad[g, i, k] = scale * total[g * n_hat + i, k]
            if tangent:
                flat = grad.reshape((groups * n_hat, d))
                _tangent_rows(X, flat, flat)
        return loss, grad, alpha.copy()

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


    @njit(nogil=True, cache=True, error_model="numpy")
    def _wait_until(ctl, index, target, spins=-1):  # pragma: no cover - compiled
        """Spin until ctl[index] ≥ target (True), or until an abort is flagged in ctl[ABORT] or, when
        spins ≥ 0, ``spins`` rounds have passed (False)."""
        k = 0
        while atomic_load(ctl, index) < target:
            if atomic_load(ctl, ABORT) != 0 or k == spins:
                return False
            cpu_relax()
            k += 1
            if k % SPINS_BEFORE_YIELD == 0:
                yield_processor()
        return True

    @njit(nogil=True, cache=True, error_model="numpy")
    def _evaluation_share(X, P, theta, a, b, relu_surrogate, groups, n_hat, bounds, F, D, v, A, limit,
                          v_total, A_total, alpha, G, r_sq, with_grad, ctl, lead):  # pragma: no cover - compiled
        """One thread's part of an evaluation; every thread runs it on the same arguments.

        Threads claim pieces (panels bounds[k] to bounds[k + 1]) from ctl[CLAIM_1], run pass 1
        on them into v[k], A[k] and count them in ctl[DONE_1].  The lead thread
        waits for all pieces, sums v and A in piece order (v_total, A_total) and
        solves for α; ctl[PHASE] = PASS_2 then releases everyone into pass 2 (pieces
        claimed from ctl[CLAIM_2], results in G[k], r_sq[k]), which the lead
        waits for too.  Returns 1 when done, 0 when the Cholesky rule refused
        the Gram (PHASE = REFUSED: pass 2 is left to the caller), −1 on an abort.
        A thread that arrives late finds nothing to claim and returns.  Helpers
        first wait for ctl[READY] (the lead has packed X̂ and zeroed the sums).
        """
        if not lead and not _wait_until(ctl, READY, 1):
            return -1
        pieces = v.shape[0]
        while True:
            k = atomic_add(ctl, CLAIM_1, 1)
            if k >= pieces:
                break
            lo, hi = bounds[k], bounds[k + 1]
            _features_pass(X, P, theta, a, b, relu_surrogate, groups, n_hat, lo, hi, F, D, v[k], A[k])
            atomic_add(ctl, DONE_1, 1)
        if lead:
            if not _wait_until(ctl, DONE_1, pieces):
                return -1
            v_total[...] = _sum_pieces(v).reshape(v_total.shape)
            A_total[...] = _sum_pieces(A).reshape(A_total.shape)
            solved = _small_gram_solve(A_total, v_total, limit, alpha)
            atomic_store(ctl, PHASE, PASS_2 if solved else REFUSED)
            if not solved:
                return 0
        else:
            if not _wait_until(ctl, PHASE, PASS_2):
                return -1
            if atomic_load(ctl, PHASE) == REFUSED:
                return 0
        while True:
            k = atomic_add(ctl, CLAIM_2, 1)
            if k >= pieces:
                break
            lo, hi = bounds[k], bounds[k + 1]
            _residual_pass(F, D, theta, alpha, groups, n_hat, lo, hi, P, G[k], r_sq[k], with_grad)
            atomic_add(ctl, DONE_2, 1)
        if lead and not _wait_until(ctl, DONE_2, pieces):
            return -1
        return 1


    @njit(nogil=True, cache=True, error_model="numpy")
    def _share_then_wait(Xt, P, theta, a, b, relu_surrogate, groups, n_hat, bounds, F, D, v, A, limit, v_total,
                         A_total, alpha, G, r_sq, with_grad, ctl, bell, ticket, spins):  # pragma: no cover - compiled
        """A helper's share (:func:`_evaluation_share`), then, without returning to Python (which
        would wait for the GIL while the lead runs the optimiser), a spin for the next job:
        True if bell[0] passed ``ticket`` within ``spins`` rounds (:func:`_await_bell`)."""
        _evaluation_share(Xt, P, theta, a, b, relu_surrogate, groups, n_hat, bounds, F, D, v, A, limit,
                          v_total, A_total, alpha, G, r_sq, with_grad, ctl, False)
        return _await_bell(bell, ticket, spins)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _await_bell(bell, seen, spins):  # pragma: no cover - compiled
        """Spin until bell[0] > seen (True) or for ``spins`` rounds (False): :func:`_wait_until` on the
        bell (an array of CONTROLS counters like ctl, whose ABORT slot stays 0)."""
        return _wait_until(bell, 0, seen + 1, spins)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _lead(X_rows, tangent, theta_sq, bell, Xt, P, theta, a, b, relu_surrogate, groups, n_hat, bounds, F, D,
              v, A, limit, v_total, A_total, alpha, G, r_sq, with_grad, ctl):  # pragma: no cover - compiled
        """The calling thread's whole evaluation in one compiled call: pack X̂ (rows) and zero the sums
        (:func:`_prepare`), release the helpers (ctl[READY]), ring ``bell`` (bell[0] += 1: helpers that spin
        for the next job pick it up now, while this call has the GIL released), take its share
        (:func:`_evaluation_share`) and, when that finished the evaluation, :func:`_finish`.
        Returns (status, L, ∂L/∂X̂, α)."""
        _prepare(X_rows, Xt, v, A, G, r_sq)
        atomic_store(ctl, READY, 1)
        atomic_add(bell, 0, 1)  # helpers spinning for the next job: it is posted, and the GIL is free
        status = _evaluation_share(Xt, P, theta, a, b, relu_surrogate, groups, n_hat, bounds, F, D, v, A, limit,
                                   v_total, A_total, alpha, G, r_sq, with_grad, ctl, True)
        loss, grad, alpha_out = _finish(G, r_sq, alpha, theta_sq, with_grad and status == 1, X_rows, tangent)
        return status, loss, grad, alpha_out


def piece_bounds(blocks: int) -> np.ndarray:
    """Panel indices 0 = b₀ < b₁ < … < b_K = ``blocks`` cutting the features into the evaluation's K pieces.

    Piece k (panels b_k to b_{k+1}) has min(PIECE_BLOCKS, max(TAIL_PIECE_BLOCKS, ⌈left/TAIL_SHARE⌉))
    panels, ``left`` being the panels from b_k on (the last piece takes what is left): large pieces
    while much is left, so the per-piece costs stay small, and pieces shrinking to one chunk at the
    end, so that the threads, which claim pieces in order, finish a pass at nearly the same time
    (with equal pieces of 2048 features one thread idled ≈ 0.1 ms at the end of each pass,
    measured at n̂=20, d=100, p=20000 on 2 threads, 8-lane kernels).  The layout depends on ``blocks`` only,
    not on the thread count: each piece has its own sums, added in piece order, so results are
    bitwise the same for any number of threads.
    """
    bounds = [0]
    while bounds[-1] < blocks:
        left = blocks - bounds[-1]
        size = min(PIECE_BLOCKS, max(TAIL_PIECE_BLOCKS, -(-left // TAIL_SHARE)))
        bounds.append(min(blocks, bounds[-1] + size))
    return np.asarray(bounds, dtype=np.int64)


_BLAS = None


class _HelperThreads:
    """Daemon threads that take the helper shares of evaluations posted by lead threads.

    A helper that has finished a share spins, still in compiled code, until
    the next evaluation rings ``bell`` (from inside the lead's compiled call,
    so the GIL is free when the helper comes back to Python for the job) or
    for HELPER_SPINS spin-wait rounds (0.87 ms measured on the development
    machine, Intel, where a round is ≈ 13 ns; the optimiser's own work between
    two evaluations of the attack took ≈ 0.07 ms there and 0.25–0.45 ms on
    an earlier AMD machine, so the budget leaves room); then it sleeps
    on its own start lock (held while it has nothing to do), which the next
    post releases.  Waking a sleeping thread goes through the operating
    system and the GIL: ≈ 50 µs measured on a 2-core virtual machine,
    against ≈ 1.1 ms per evaluation at n̂=20, d=100, p=20000.  A helper that
    missed a job costs nothing (the lead claims the pieces nobody took),
    and one that wakes to a finished job finds nothing to claim (every
    evaluation has its own control counters).
    """

    def __init__(self):
        self.job = None  # (args, errors, ticket)
        self.starts = []  # one start lock per helper
        self.bell = np.zeros(CONTROLS, dtype=np.int64)  # bell[0]: evaluations started so far
        self.pid = os.getpid()

    def post(self, job, wanted: int) -> None:
        """Hand ``job`` (args, errors) to the first ``wanted`` helpers (the caller holds _HELPERS_LOCK)."""
        while len(self.starts) < wanted:
            start = threading.Lock()
            start.acquire()
            self.starts.append(start)
            threading.Thread(target=self._loop, args=(start,), daemon=True,
                             name=f"rftheory-panel-{len(self.starts) - 1}").start()
        self.job = (*job, int(self.bell[0]) + 1)  # the bell's count once this job's lead has rung it
        for start in self.starts[:wanted]:
            if start.locked():  # else its helper is busy or spinning and will take this job anyway
                start.release()

    def _loop(self, start) -> None:
        while True:
            start.acquire()
            while _helper(*self.job, self.bell):  # the next job came while it spun
                pass


_HELPERS: _HelperThreads | None = None
_HELPERS_LOCK = threading.Lock()


def _share_with_helpers(args, errors, wanted: int) -> np.ndarray:
    """Post an evaluation to ``wanted`` helper threads (recreated in a forked child, whose copy has none);
    returns their bell, for the lead to ring."""
    global _HELPERS
    with _HELPERS_LOCK:
        if _HELPERS is None or _HELPERS.pid != os.getpid():
            _HELPERS = _HelperThreads()
        _HELPERS.post((args, errors), wanted)
        return _HELPERS.bell


_NO_BELL = np.zeros(CONTROLS, dtype=np.int64)  # rung by an evaluation without helpers (nobody listens)


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


def _helper(args, errors, ticket, bell) -> bool:
    """A helper thread's share, then its spin for the next job (True if one came: :func:`_share_then_wait`);
    if it fails, keep the error for the lead, raise the abort flag and return False."""
    try:
        return bool(_share_then_wait(*args, bell, ticket, HELPER_SPINS))
    except BaseException as error:  # noqa: BLE001 - handed to the lead thread, which raises it
        errors.append(error)
        args[-1][ABORT] = 1
        return False


_LOCAL = threading.local()


class _Plan:
    """Everything an evaluation of one shape needs besides X̂ and θ, reused by later calls of the thread.

    Buffers: the packed tiles of X̂, the scratch F, D (rows × features,
    float32; fresh multi-megabyte arrays cost page faults on every
    evaluation: ≈ 0.2 ms for three 1.6 MB arrays on the reference machine)
    and the per-piece sums; constants: the panels P, σ's (a, b), the
    Cholesky limit.  Nothing returned to the caller refers to them
    (:func:`_finish` returns new arrays).  Reusing them matters inside the
    attack: between two evaluations the caches are cold, and every Python
    or NumPy call then costs 10–20 µs.
    """

    def __init__(self, model, P, R: int, n_hat: int, d: int):
        self.model, self.P = model, P
        rows = R * n_hat
        tiles = -(-rows // TILE_ROWS)
        blocks = P.shape[0]
        self.bounds = piece_bounds(blocks)
        self.pieces = self.bounds.size - 1
        self.a, self.b = (np.float32(c) for c in relu_tanh_coefficients(model.activation))
        self.limit = cholesky_condition_limit(n_hat)
        self.Xt = np.zeros((tiles, d, TILE_ROWS), dtype=np.float32)
        self.F = aligned_zeros((tiles * TILE_ROWS, blocks * PANEL_WIDTH))
        self.D = aligned_zeros(self.F.shape)
        self.v = np.zeros((self.pieces, R, n_hat))
        self.A = np.zeros((self.pieces, R, n_hat, n_hat))
        self.v_total, self.A_total = np.empty((R, n_hat)), np.empty((R, n_hat, n_hat))  # A: lower triangles
        self.alpha = np.empty((R, n_hat))
        self.G = np.zeros((self.pieces, rows, P.shape[1]), dtype=np.float32)  # G = W V per piece (d padded)
        self.r_sq = np.zeros((self.pieces, R))


PLANS_KEPT = 4  # plans per thread: the attack alternates n̂ and n̂ − 1 rows while re-seeding


def _kept_plan(plans: dict, key, model, P, R: int, n_hat: int, d: int) -> _Plan:
    """plans[key] if it is for this model and P, else a new plan stored there; the newest PLANS_KEPT are kept."""
    plan = plans.get(key)
    if plan is None or plan.model is not model or plan.P is not P:  # (ids of dead objects can come back)
        plan = plans[key] = _Plan(model, P, R, n_hat, d)
        while len(plans) > PLANS_KEPT:
            del plans[next(iter(plans))]
    return plan


def _plan(model, R: int, n_hat: int, d: int) -> _Plan:
    """This thread's plan for (model, its panels, shape), made on first use (:func:`_kept_plan`)."""
    P = packed_panels(model)
    plans = getattr(_LOCAL, "plans", None)
    if plans is None:
        plans = _LOCAL.plans = {}
    return _kept_plan(plans, (id(model), id(P), R, n_hat, d), model, P, R, n_hat, d)


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
    :mod:`rftheory._engine.kernels`), a random-features model on NumPy with V stored
    (at most PANEL_MAX_BYTES in float32), float32 and σ = a·relu + b·tanh.
    Everything else (float64, CuPy, streamed V, other activations, adapters)
    takes the BLAS path of :mod:`rftheory.attack.loss`.
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


def panel_projection_loss(X_hat, theta64, theta_sq, model, *, with_grad: bool, relu_surrogate: bool,
                          tangent: bool = False):
    """(loss (R,), grad (R, n̂, d) float32 or None, α (R, n̂)) for X̂ of shape (R, n̂, d), float32.

    ``theta64`` is θ as float64 (p,), ``theta_sq`` = ‖θ‖²; ``tangent``: the
    gradient's rows projected onto the tangent spaces of the spheres through
    X̂'s rows (see :func:`rftheory.attack.loss.projection_loss`).  See the module
    docstring for the passes; the caller checks :func:`panel_loss_applicable`.
    Buffers come from this thread's plans; :class:`PanelEvaluation` keeps its
    own and skips the per-call look-ups (for a loop with fixed θ).
    """
    R, n_hat, d = X_hat.shape
    plan = _plan(model, R, n_hat, d)
    return _evaluate(plan, X_hat, padded_theta(theta64, plan.P), theta_sq, min(kernel_threads(), plan.pieces),
                     with_grad=with_grad, relu_surrogate=relu_surrogate, tangent=tangent)


class PanelEvaluation:
    """``panel_projection_loss(·, θ, ‖θ‖², model, …)`` for a fixed θ, model and options.

    For the attack's loop: θ as float64 and ‖θ‖² are taken once, the thread
    count (:func:`kernel_threads`) is read once, when the object is made, and
    the buffers (a :class:`_Plan` per shape of X̂, the newest PLANS_KEPT
    kept) belong to the object, so a call does no look-up of its own.  After
    an evaluation has streamed V through the caches, every such Python step
    costs 10–60 µs (measured), against ≈ 2 ms for the evaluation.  Not for
    use by two threads at once (one object per thread: the buffers are
    shared between its calls).  The caller checks :func:`panel_model_applicable`.
    """

    def __init__(self, theta64, theta_sq: float, model, *, relu_surrogate: bool, tangent: bool):
        self.theta_sq, self.model, self.P = float(theta_sq), model, packed_panels(model)
        self.theta64 = padded_theta(theta64, self.P)
        self.relu_surrogate, self.tangent = bool(relu_surrogate), bool(tangent)
        self.threads = kernel_threads()
        self._plans: dict = {}

    def __call__(self, X_hat, with_grad: bool = True):
        """(loss (R,), grad (R, n̂, d) or None, α (R, n̂)) for a float32 X̂ of shape (R, n̂, d)."""
        plan = _kept_plan(self._plans, X_hat.shape, self.model, self.P, *X_hat.shape)
        return _evaluate(plan, X_hat, self.theta64, self.theta_sq, min(self.threads, plan.pieces),
                         with_grad=with_grad, relu_surrogate=self.relu_surrogate, tangent=self.tangent)


def padded_theta(theta, P) -> np.ndarray:
    """θ as float64, zero-padded to the panels' ⌈p/PANEL_WIDTH⌉·PANEL_WIDTH features, on a cache line
    (pass 1 works on whole panels)."""
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    padded = aligned_zeros(P.shape[0] * PANEL_WIDTH, np.float64)
    if theta.size > padded.size:
        raise ValueError(f"θ has {theta.size} entries, more than the panels' {padded.size} features")
    padded[:theta.size] = theta
    return padded


def _evaluate(plan: _Plan, X_hat, theta64, theta_sq, threads: int, *, with_grad: bool, relu_surrogate: bool,
              tangent: bool):
    """One evaluation on ``plan``'s buffers with ``threads`` threads (θ from :func:`padded_theta`)."""
    R, n_hat, d = X_hat.shape
    P, bounds, pieces = plan.P, plan.bounds, plan.pieces
    if theta64.shape != (P.shape[0] * PANEL_WIDTH,):  # pass 1 reads θ over whole panels
        raise ValueError("the panel loss needs θ from padded_theta")
    X = np.ascontiguousarray(X_hat).reshape(R * n_hat, d)
    # fixed pieces, each with its own accumulators summed in piece order: the result does
    # not depend on the thread count or on which thread took which piece (bitwise).
    # Control counters are new for every evaluation: a helper that wakes late to an
    # earlier evaluation's job claims nothing from this one.
    ctl = np.zeros(CONTROLS, dtype=np.int64)
    args = (plan.Xt, P, theta64, plan.a, plan.b, relu_surrogate, R, n_hat, bounds, plan.F, plan.D,
            plan.v, plan.A, plan.limit, plan.v_total, plan.A_total, plan.alpha, plan.G, plan.r_sq, with_grad, ctl)
    # helpers are not waited for: the lead waits (spinning) for the pieces they claimed, and a
    # helper that starts after the work is gone finds nothing to claim
    errors = []
    bell = _share_with_helpers(args, errors, threads - 1) if threads > 1 else _NO_BELL
    try:
        status, loss, grad, alpha = _lead(X, tangent, theta_sq, bell, *args)
    except BaseException:
        ctl[ABORT] = 1
        raise
    if status < 0:  # a helper failed (its error is recorded before the abort flag is raised)
        raise errors[0] if errors else RuntimeError("a panel-loss thread stopped without an error")
    if status == 0:  # ill-conditioned Gram: the general solver, then pass 2 on this thread
        A = np.tril(plan.A_total) + np.swapaxes(np.tril(plan.A_total, -1), 1, 2)
        plan.alpha[...] = np.stack([gram_solve(A[g], plan.v_total[g]) for g in range(R)])
        for k in range(pieces):
            lo, hi = bounds[k], bounds[k + 1]
            _residual_pass(plan.F, plan.D, theta64, plan.alpha, R, n_hat, lo, hi, P, plan.G[k],
                           plan.r_sq[k], with_grad)
        loss, grad, alpha = _finish(plan.G, plan.r_sq, plan.alpha, theta_sq, with_grad, X, tangent)
    return loss, grad if with_grad else None, alpha
