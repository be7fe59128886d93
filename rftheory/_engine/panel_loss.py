"""The float32 projection loss on packed panels of V, fused and threaded.

Same mathematics as :func:`rftheory.attack.loss.projection_loss` (which dispatches
here through :func:`rftheory._engine.make_loss` when :func:`panel_coefficients`
serves the model); for R candidate sets of n̂
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
        Gᵀ += Vᵀ Wᵀ (backward micro-kernel on the same panels P; from d = COLUMN_MIN_D
        on, the column panels Q = pack_columns(V) instead: _column_blocks)
    L_g = ‖r_g‖²/‖θ‖²,   ∂L/∂X̂_g = −(2/‖θ‖²) diag(α_g) G_g.

Every step uses a chunk while it is in cache: Z, F and D are written once
and read back once (pass 2), W never leaves the cache, and each pass reads V
once: pass 1 from the packed copy, pass 2 from the same copy or, at large d
(the products are then memory-bound: each element of V meets only R·n̂ rows),
from a second copy packed by columns, Q (:func:`rftheory._engine.panel.pack_columns`):
the packed backward's lane-wise sums (rows × d × VECTOR floats) outgrow the L2
cache there, and Q serves the same register tiles as the forward product
(sums over the features in registers, one contiguous stream of Q per tile;
on V itself a tile would walk one stream per feature).

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
bitwise the same for any thread count and schedule.  The thread count and the
BLAS pin are settled by :class:`PanelLoss` (:mod:`rftheory._engine.threads`).

Arrays reach the compiled code as one record, :class:`Workspace` (buffers of
one shape of X̂, θ, the panels and σ's coefficients), plus the per-call
control counters.  The packed panels (and the column panels, made
on first use at d ≥ COLUMN_MIN_D) are cached per model, weakly
(:func:`packed_panels`): nothing is stored on the model, and the copies go
with it.
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import NamedTuple

import numpy as np

from ..backend import numba_enabled
from ..linalg import cholesky_condition_limit, gram_solve
from .panel import (
    COLUMN_W_COLS,
    GRAM_TILE_COLS,
    GRAM_TILE_ROWS,
    PANEL_WIDTH,
    TILE_ROWS,
    VECTOR,
    aligned_zeros,
    pack_columns,
    pack_forward,
    panel_kernels_available,
)
from .threads import SMALL_PROBLEM_FLOPS, blas_limit, serial_blas

__all__ = ["panel_coefficients", "PanelLoss", "Workspace", "packed_panels", "padded_theta", "piece_bounds",
           "panel_bytes_allowed", "COLUMN_MIN_D"]

PANEL_MEMORY_SHARE = 0.5  # the packed copies of V may take at most this share of the memory available when made
PANEL_FALLBACK_BYTES = 2**30  # the packed copy's limit where the available memory cannot be read (/proc/meminfo)
COLUMN_MIN_D = 1024  # from this d on, pass 2 reads the column panels Q = pack_columns(V) (a second copy of V's
# size): the packed backward's lane-wise sums (rows × d × VECTOR floats) outgrow the L2 cache there
FORWARD_CHUNK_BLOCKS = 16  # panels (PANEL_WIDTH = 16 or 32 features each) per cache-resident chunk of pass 1
RESIDUAL_CHUNK_BLOCKS = 16  # panels per cache-resident chunk of pass 2
assert RESIDUAL_CHUNK_BLOCKS * PANEL_WIDTH == COLUMN_W_COLS  # pass 2's W is the column backward's operand
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
HELPER_SPINS = 65536  # spin-wait rounds a helper waits for the next job before it sleeps: longer than the
# optimiser's own work between two evaluations, far shorter than an idle pause

if panel_kernels_available():
    from ..optim._compiled import _tangent_rows  # the optimiser's tangent projection, shared
    from numba import njit

    from .panel import (
        _backward_blocks,
        _column_blocks,
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
    def _features_pass(ws, k):  # pragma: no cover - compiled
        """Pass 1 on piece k (forward panels ws.bounds[k] to ws.bounds[k + 1]): F, D (in place of Z) and
        the float64 sums v[k], A[k] (lower triangle)."""
        X, P, theta, a, b, relu_surrogate = ws.Xt, ws.P, ws.theta, ws.a, ws.b, ws.relu_surrogate
        F, D, v, A = ws.F, ws.D, ws.v[k], ws.A[k]
        groups, n_hat = ws.alpha.shape
        block_lo, block_hi = ws.bounds[k], ws.bounds[k + 1]
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
        :func:`_gram_lower_tiles` (16 registers hold too few tile sums to hide the loads)."""
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
    def _residual_pass(ws, k, with_grad):  # pragma: no cover - compiled
        """Pass 2 on piece k (forward panels ws.bounds[k] to ws.bounds[k + 1]): r = θ − Fᵀα (float64),
        ‖r‖² into r_sq[k], W = D ⊙ r, G[k] += W V.

        r and W come from :func:`rftheory._engine.panel.residual_and_weights` over whole panels (past p,
        F = θ = 0, so r = W = 0).  W lives only chunk by chunk, row-major (rows of F, zero rows
        past R·n̂), in cache.  On the forward panels the backward kernel
        keeps VECTOR lane-wise partial sums per entry of G over the whole range;
        they are added (lanes in order) into G[k] (rows × d_pad) at the end.  On the column
        panels Q (ws.columns) every chunk adds W V into G[k] directly (:func:`_column_blocks`).
        """
        F, D, theta, alpha, P, G, r_sq = ws.F, ws.D, ws.theta, ws.alpha, ws.P, ws.G[k], ws.r_sq[k]
        groups, n_hat = alpha.shape
        block_lo, block_hi = ws.bounds[k], ws.bounds[k + 1]
        width = RESIDUAL_CHUNK_BLOCKS * PANEL_WIDTH
        W = aligned_zeros_1d(F.shape[0] * width, np.float32).reshape((F.shape[0], width))
        columns = ws.columns
        lanes_d = 0 if columns else P.shape[1]  # the packed backward's lane-wise sums (none on the column panels)
        G8 = aligned_zeros_1d(F.shape[0] * lanes_d * VECTOR, np.float32).reshape((F.shape[0], lanes_d, VECTOR))
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
                if columns:
                    _column_blocks(W, ws.Q, G, c0, (b1 - b0) * PANEL_WIDTH)
                else:
                    _backward_blocks(W, P, G8, b0, b1, c0)
        if with_grad and not columns:
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
    def _prepare(X, ws):  # pragma: no cover - compiled
        """ws.Xt = pack_tiles(X) (the forward kernel's layout) and zeroed piece sums."""
        _pack_tiles_into(X, ws.Xt)
        ws.v[...] = 0.0
        ws.A[...] = 0.0
        ws.G[...] = 0.0
        ws.r_sq[...] = 0.0

    @njit(nogil=True, cache=True, error_model="numpy")
    def _finish(G, r_sq, alpha, theta_sq, with_grad, X, tangent):  # pragma: no cover - compiled
        """(L_g, ∂L/∂X̂_g, α_g) from the piece sums, each added in piece order:

            L_g = Σ ‖r_g‖² / ‖θ‖²,   ∂L/∂X̂[g, i] = −(2/‖θ‖²) α_g[i] · (Σ G)[g·n̂ + i, :d]

        and with ``tangent`` each gradient row projected onto the tangent space of the sphere
        through the row of X (R·n̂ × d; the optimiser's compiled tangent projection, in place)
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
                rows = grad.reshape((groups * n_hat, d))
                _tangent_rows(X, rows, rows)  # in place: each entry is read before it is written
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
    def _evaluation_share(ws, with_grad, ctl, lead):  # pragma: no cover - compiled
        """One thread's part of an evaluation on the workspace ``ws``; every thread runs it on the same arguments.

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
        pieces = ws.v.shape[0]
        while True:
            k = atomic_add(ctl, CLAIM_1, 1)
            if k >= pieces:
                break
            _features_pass(ws, k)
            atomic_add(ctl, DONE_1, 1)
        if lead:
            if not _wait_until(ctl, DONE_1, pieces):
                return -1
            ws.v_total[...] = _sum_pieces(ws.v).reshape(ws.v_total.shape)
            ws.A_total[...] = _sum_pieces(ws.A).reshape(ws.A_total.shape)
            solved = _small_gram_solve(ws.A_total, ws.v_total, ws.limit, ws.alpha)
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
            _residual_pass(ws, k, with_grad)
            atomic_add(ctl, DONE_2, 1)
        if lead and not _wait_until(ctl, DONE_2, pieces):
            return -1
        return 1


    @njit(nogil=True, cache=True, error_model="numpy")
    def _share_then_wait(ws, with_grad, ctl, bell, ticket, spins):  # pragma: no cover - compiled
        """A helper's share (:func:`_evaluation_share`), then, without returning to Python (which
        would wait for the GIL while the lead runs the optimiser), a spin for the next job:
        True if bell[0] passed ``ticket`` within ``spins`` rounds (:func:`_await_bell`)."""
        _evaluation_share(ws, with_grad, ctl, False)
        return _await_bell(bell, ticket, spins)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _await_bell(bell, seen, spins):  # pragma: no cover - compiled
        """Spin until bell[0] > seen (True) or for ``spins`` rounds (False): :func:`_wait_until` on the
        bell (an array of CONTROLS counters like ctl, whose ABORT slot stays 0)."""
        return _wait_until(bell, 0, seen + 1, spins)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _lead(X_rows, tangent, theta_sq, bell, ws, with_grad, ctl):  # pragma: no cover - compiled
        """The calling thread's whole evaluation in one compiled call: pack X̂ (rows) and zero the sums
        (:func:`_prepare`), release the helpers (ctl[READY]), ring ``bell`` (bell[0] += 1: helpers that spin
        for the next job pick it up now, while this call has the GIL released), take its share
        (:func:`_evaluation_share`) and, when that finished the evaluation, :func:`_finish`.
        Returns (status, L, ∂L/∂X̂, α)."""
        _prepare(X_rows, ws)
        atomic_store(ctl, READY, 1)
        atomic_add(bell, 0, 1)  # helpers spinning for the next job: it is posted, and the GIL is free
        status = _evaluation_share(ws, with_grad, ctl, True)
        loss, grad, alpha_out = _finish(ws.G, ws.r_sq, ws.alpha, theta_sq, with_grad and status == 1, X_rows,
                                        tangent)
        return status, loss, grad, alpha_out


def piece_bounds(blocks: int) -> np.ndarray:
    """Panel indices 0 = b₀ < b₁ < … < b_K = ``blocks`` cutting the features into the evaluation's K pieces.

    Piece k (panels b_k to b_{k+1}) has min(PIECE_BLOCKS, max(TAIL_PIECE_BLOCKS, ⌈left/TAIL_SHARE⌉))
    panels, ``left`` being the panels from b_k on (the last piece takes what is left): large pieces
    while much is left, so the per-piece costs stay small, and pieces shrinking to one chunk at the
    end, so that the threads, which claim pieces in order, finish a pass at nearly the same time
    (with equal pieces, one thread idles at the end of each pass while another finishes its
    last large piece).  The layout depends on ``blocks`` only,
    not on the thread count: each piece has its own sums, added in piece order, so results are
    bitwise the same for any number of threads.
    """
    bounds = [0]
    while bounds[-1] < blocks:
        left = blocks - bounds[-1]
        size = min(PIECE_BLOCKS, max(TAIL_PIECE_BLOCKS, -(-left // TAIL_SHARE)))
        bounds.append(min(blocks, bounds[-1] + size))
    return np.asarray(bounds, dtype=np.int64)


class _HelperThreads:
    """Daemon threads that take the helper shares of evaluations posted by lead threads.

    A helper that has finished a share spins, still in compiled code, until
    the next evaluation rings ``bell`` (from inside the lead's compiled call,
    so the GIL is free when the helper comes back to Python for the job) or
    for HELPER_SPINS spin-wait rounds, a budget well above the optimiser's own
    work between two evaluations of the attack; then it sleeps on its own
    start lock (held while it has nothing to do), which the next post
    releases.  Waking a sleeping thread goes through the operating system and
    the GIL, which is what the spin avoids inside a loop of evaluations.  A
    helper that missed a job costs nothing (the lead claims the pieces nobody
    took), and one that wakes to a finished job finds nothing to claim (every
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


def _helper(args, errors, ticket, bell) -> bool:
    """A helper thread's share, then its spin for the next job (True if one came: :func:`_share_then_wait`);
    if it fails, keep the error for the lead, raise the abort flag and return False.
    ``args`` = (workspace, with_grad, ctl)."""
    try:
        return bool(_share_then_wait(*args, bell, ticket, HELPER_SPINS))
    except BaseException as error:  # noqa: BLE001 - handed to the lead thread, which raises it
        errors.append(error)
        args[-1][ABORT] = 1
        return False


class Workspace(NamedTuple):
    """Everything an evaluation of one shape (R, n̂, d) reads and writes besides X̂: the record the
    compiled code takes (one argument instead of twenty).

    Buffers are reused by every evaluation of the shape (fresh multi-megabyte
    arrays would cost page faults on every call); nothing returned to the
    caller refers to them (:func:`_finish` returns new arrays).
    """

    Xt: np.ndarray  # (⌈R·n̂/TILE_ROWS⌉, d, TILE_ROWS) float32: X̂ packed for the forward kernel
    P: np.ndarray  # the panels of V (packed_panels)
    Q: np.ndarray  # the column panels of V (pack_columns), or an empty (0, 0, PANEL_WIDTH) array
    columns: bool  # pass 2 on the column panels Q (_column_blocks) instead of the panels P
    theta: np.ndarray  # θ as float64, zero-padded to whole panels (padded_theta)
    bounds: np.ndarray  # int64 panel bounds of the pieces (piece_bounds)
    F: np.ndarray  # (rows, features) float32: Z, then σ(Z), in place
    D: np.ndarray  # (rows, features) float32: σ'(Z)
    v: np.ndarray  # (pieces, R, n̂) float64: Φ̂θ per piece
    A: np.ndarray  # (pieces, R, n̂, n̂) float64: lower triangles of Φ̂Φ̂ᵀ per piece
    v_total: np.ndarray  # (R, n̂): v summed in piece order
    A_total: np.ndarray  # (R, n̂, n̂): A summed in piece order
    alpha: np.ndarray  # (R, n̂): A⁻¹v
    G: np.ndarray  # (pieces, R·n̂, d_pad or Q's columns) float32: W V per piece
    r_sq: np.ndarray  # (pieces, R) float64: ‖r‖² per piece
    a: np.float32  # σ = a·relu + b·tanh
    b: np.float32
    relu_surrogate: bool  # σ' replaced by 1[z > 0]
    limit: float  # the Cholesky rule's bound on κ̂ (cholesky_condition_limit(n̂))


def _workspace(P, theta, shape, a, b, relu_surrogate: bool, Q=None) -> Workspace:
    """A new workspace for X̂ of ``shape`` (R, n̂, d) on the panels P of V, with θ from :func:`padded_theta`;
    pass 2 on the column panels Q when given (:func:`pack_columns` of the same V)."""
    R, n_hat, d = shape
    rows = R * n_hat
    tiles = -(-rows // TILE_ROWS)
    blocks = P.shape[0]
    bounds = piece_bounds(blocks)
    pieces = bounds.size - 1
    F = aligned_zeros((tiles * TILE_ROWS, blocks * PANEL_WIDTH))
    columns = Q is not None
    if not columns:
        Q = np.zeros((0, 0, PANEL_WIDTH), dtype=np.float32)
    g_cols = max(P.shape[1], Q.shape[0] * PANEL_WIDTH)
    return Workspace(
        Xt=np.zeros((tiles, d, TILE_ROWS), dtype=np.float32), P=P, Q=Q, columns=columns, theta=theta,
        bounds=bounds,
        F=F, D=aligned_zeros(F.shape), v=np.zeros((pieces, R, n_hat)), A=np.zeros((pieces, R, n_hat, n_hat)),
        v_total=np.empty((R, n_hat)), A_total=np.empty((R, n_hat, n_hat)), alpha=np.empty((R, n_hat)),
        G=np.zeros((pieces, rows, g_cols), dtype=np.float32), r_sq=np.zeros((pieces, R)),
        a=np.float32(a), b=np.float32(b), relu_surrogate=bool(relu_surrogate), limit=float(cholesky_condition_limit(n_hat)),
    )


PLANS_KEPT = 4  # workspaces kept per evaluator (and per model and thread): the attack alternates n̂ and n̂ − 1 rows


class _Packed:
    """What the engine keeps for one model: its panels, its column panels (made on first use), and the
    workspaces of one-shot evaluations."""

    __slots__ = ("V", "P", "Q", "shared", "__weakref__")

    def __init__(self, V):
        self.V = V
        self.P = pack_forward(V)
        self.Q = None
        self.shared: dict = {}  # (thread id, shape) -> Workspace, for PanelLoss(..., one_shot=True)

    def pass_2_panels(self):
        """Q = pack_columns(V) where pass 2 reads it (d ≥ COLUMN_MIN_D; made once), else None."""
        if self.V.shape[1] < COLUMN_MIN_D:
            return None
        if self.Q is None:
            with _PACKED_LOCK:
                if self.Q is None:
                    self.Q = pack_columns(self.V)
        return self.Q


_PACKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> _Packed; goes with the model
_PACKED_LOCK = threading.Lock()


def _packed(model) -> _Packed:
    """The model's :class:`_Packed`, made (V packed) on first use or when its V has been replaced."""
    V = model._V
    entry = _PACKED.get(model)
    if entry is None or entry.V is not V:
        with _PACKED_LOCK:
            entry = _PACKED.get(model)
            if entry is None or entry.V is not V:
                entry = _PACKED[model] = _Packed(V)
    return entry


def packed_panels(model) -> np.ndarray:
    """P = pack_forward(V) of the model's stored float32 V, packed once per model and V (both passes read
    it).  Cached in the engine, keyed weakly by the model: the copy is dropped with the model, and a model
    made by ``astype`` (another V) gets its own."""
    return _packed(model).P


def panel_coefficients(model, dtype=None):
    """σ's (a, b) if the fused panel path serves this model (cast to ``dtype`` if given), else None.

    Needs: Numba, the "panel" kernel enabled (RFTHEORY_NUMBA, see
    :mod:`rftheory._engine.kernels`), a random-features model on NumPy with V stored
    (its packed copies already made, or room for them: :func:`panel_bytes_allowed`; two copies of V
    from d = COLUMN_MIN_D on), float32 and σ = a·relu + b·tanh
    as the activation states it (``Activation.relu_tanh``).  Everything
    else (float64, CuPy, streamed V, other activations, adapters) takes the
    BLAS path of :mod:`rftheory.attack.loss`.
    """
    V = getattr(model, "_V", None)
    dtype = np.dtype(getattr(model, "dtype", None) if dtype is None else dtype)
    if not (panel_kernels_available() and isinstance(V, np.ndarray) and dtype == np.float32
            and numba_enabled("panel")):
        return None
    entry = _PACKED.get(model)
    copies = 2 if V.shape[1] >= COLUMN_MIN_D else 1  # P, and Q where pass 2 reads it
    if not ((entry is not None and entry.V is V) or copies * V.size * 4 <= panel_bytes_allowed()):
        return None
    return getattr(getattr(model, "activation", None), "relu_tanh", None)


def panel_bytes_allowed() -> int:
    """The largest packed copy of V the engine makes now: PANEL_MEMORY_SHARE of the memory available
    (MemAvailable in /proc/meminfo), or PANEL_FALLBACK_BYTES where that cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(PANEL_MEMORY_SHARE * int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return PANEL_FALLBACK_BYTES


def padded_theta(theta, P) -> np.ndarray:
    """θ as float64, zero-padded to the panels' ⌈p/PANEL_WIDTH⌉·PANEL_WIDTH features, on a cache line
    (pass 1 works on whole panels)."""
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    padded = aligned_zeros(P.shape[0] * PANEL_WIDTH, np.float64)
    if theta.size > padded.size:
        raise ValueError(f"θ has {theta.size} entries, more than the panels' {padded.size} features")
    padded[:theta.size] = theta
    return padded


class PanelLoss:
    """``X̂ ↦ (loss (R,), grad (R, n̂, d) float32 or None, α (R, n̂))`` on the panel kernels, for a fixed
    model, θ and options: the evaluator :func:`rftheory._engine.make_loss` returns.

    Made once: θ padded and ‖θ‖², σ's coefficients, the thread count
    ``threads`` (given, else the BLAS limit then).  Per shape of X̂ a
    :class:`Workspace` and its thread count (without a given ``threads``, one
    thread below SMALL_PROBLEM_FLOPS = 4·R·n̂·d·p, where threads do not pay)
    are settled on first use; the newest PLANS_KEPT are kept, by the object itself (a loop
    does no look-up of its own beyond one dict access) or, with
    ``one_shot``, per model and thread in the engine's cache (one-shot
    objects made per call then reuse the buffers of earlier calls).  Each call
    pins BLAS to one thread while the kernels run (:data:`serial_blas`).

    X̂ must be a C-contiguous-able float32 NumPy array (R, n̂, d) with the
    model's d; the caller checks.  Not for use by two threads at once.
    """

    def __init__(self, model, coefficients, theta64, theta_sq: float, *, relu_surrogate: bool, tangent: bool,
                 threads: int | None = None, one_shot: bool = False):
        self._entry = _packed(model)
        self.P = self._entry.P
        self.p, self.d = int(model.p), int(model.d)
        self.theta64 = padded_theta(theta64, self.P)
        self.theta_sq = float(theta_sq)
        self.a, self.b = (np.float32(c) for c in coefficients)
        self.relu_surrogate, self.tangent = bool(relu_surrogate), bool(tangent)
        self.threads = max(1, int(blas_limit() if threads is None else threads))
        self._automatic = threads is None  # then a small problem runs on one thread
        self._one_shot = bool(one_shot)
        self._plans: dict = {}  # shape -> (Workspace, threads)

    def _plan(self, shape):
        """(workspace, threads) for X̂ of ``shape``, made and kept (the newest PLANS_KEPT) on first use."""
        if self._one_shot:
            key = (threading.get_ident(), shape)
            shared = self._entry.shared
            ws = shared.get(key)
            if ws is None:
                ws = _workspace(self.P, self.theta64, shape, self.a, self.b, self.relu_surrogate,
                                self._entry.pass_2_panels())
                with _PACKED_LOCK:  # other threads may add theirs meanwhile
                    shared[key] = ws
                    while len(shared) > PLANS_KEPT:
                        del shared[next(iter(shared))]
            else:
                ws = ws._replace(theta=self.theta64, a=self.a, b=self.b, relu_surrogate=self.relu_surrogate)
        else:
            ws = _workspace(self.P, self.theta64, shape, self.a, self.b, self.relu_surrogate,
                                self._entry.pass_2_panels())
        R, n_hat, d = shape
        small = self._automatic and 4.0 * R * n_hat * d * self.p < SMALL_PROBLEM_FLOPS
        plan = (ws, 1 if small else min(self.threads, ws.bounds.size - 1))
        if not self._one_shot:
            self._plans[shape] = plan
            while len(self._plans) > PLANS_KEPT:
                del self._plans[next(iter(self._plans))]
        return plan

    def __call__(self, X_hat, with_grad: bool = True):
        """(loss (R,), grad (R, n̂, d) float32 or None, α (R, n̂)) for a float32 X̂ of shape (R, n̂, d)."""
        plan = self._plans.get(X_hat.shape)
        if plan is None:
            plan = self._plan(X_hat.shape)
        with serial_blas:
            return _evaluate(plan[0], X_hat, self.theta_sq, plan[1], with_grad=with_grad, tangent=self.tangent)


def _evaluate(ws: Workspace, X_hat, theta_sq, threads: int, *, with_grad: bool, tangent: bool):
    """One evaluation on the workspace ``ws`` with ``threads`` threads."""
    R, n_hat, d = X_hat.shape
    if ws.theta.shape != (ws.P.shape[0] * PANEL_WIDTH,):  # pass 1 reads θ over whole panels
        raise ValueError("the panel loss needs θ from padded_theta")
    X = np.ascontiguousarray(X_hat).reshape(R * n_hat, d)
    # fixed pieces, each with its own accumulators summed in piece order: the result does
    # not depend on the thread count or on which thread took which piece (bitwise).
    # Control counters are new for every evaluation: a helper that wakes late to an
    # earlier evaluation's job claims nothing from this one.
    ctl = np.zeros(CONTROLS, dtype=np.int64)
    with_grad = bool(with_grad)
    args = (ws, with_grad, ctl)
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
        A = np.tril(ws.A_total) + np.swapaxes(np.tril(ws.A_total, -1), 1, 2)
        ws.alpha[...] = np.stack([gram_solve(A[g], ws.v_total[g]) for g in range(R)])
        for k in range(ws.bounds.size - 1):
            _residual_pass(ws, k, with_grad)
        loss, grad, alpha = _finish(ws.G, ws.r_sq, ws.alpha, theta_sq, with_grad, X, tangent)
    return loss, grad if with_grad else None, alpha
