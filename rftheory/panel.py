"""Packed-panel SIMD products with the fixed weight matrix V (CPU, float32).

The attack's cost is two products with the same V (p×d) on every evaluation:

    Z = X̂ Vᵀ   (rows×p)        and        G = W V   (rows×d),

with only rows = R·n̂ ≈ 20 rows on the other side.  OpenBLAS packs V afresh
on every call and its kernels are tuned for square shapes; on the reference
machine these two skinny products ran at 25–40 % of its measured sgemm peak
(benchmarks/bench_iteration.py).  V never changes during an attack, so this
module packs it once, into panels of 16 features,

    P[b, k, c] = V[16b + c, k]          shape (⌈p/16⌉, d_pad, 16), zero-padded,

and both products read that one copy (so V's bytes are streamed from one
place, which matters when memory bandwidth is the limit):

* forward, Z[:, 16b:16b+16] = X̂ P[b]: tiles of 5 rows × 16 features, X̂
  packed so that the 5 scalars of one k are adjacent (``pack_tiles``);
* backward, Gᵀ += Σ_b P[b] W[:, 16b:16b+16]ᵀ: tiles of 4 coordinates × 24
  rows, W packed by groups of 24 rows (``pack_rows``); threads split b.

One register-blocked micro-kernel does both (the BLIS scheme): per step t it
loads the vectors of B, broadcasts the tile's scalars of A and issues
rows×vectors fused multiply–adds into accumulators that stay in registers.
It is written in LLVM IR (``<8 x float>``, ``llvm.fma``) through a Numba
intrinsic, because LLVM's own vectoriser does not find this blocking; LLVM
lowers it to the host's vector instructions (AVX2/FMA on the reference
machine).  :mod:`rftheory.panel_loss` builds the float32 projection loss on
these kernels; everything here is pure arithmetic.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "PANEL_WIDTH",
    "TILE_ROWS",
    "panel_kernels_available",
    "pack_forward",
    "pack_rows",
    "pack_tiles",
    "panel_matmul_forward",
    "panel_matmul_backward",
]

VECTOR = 8  # float32 lanes per hardware vector the kernel is written for
PANEL_WIDTH = 2 * VECTOR  # features per panel of P: two vectors
TILE_ROWS = 5  # forward tile: 5 rows × 2 vectors = 10 accumulators + 2 loads + 1 broadcast ≤ 16 registers
T_TILE_ROWS, T_VECTORS = 4, 3  # backward tile: 4 coordinates × 3 vectors (24 rows of W) = 12 + 3 + 1 = 16
T_WIDTH = VECTOR * T_VECTORS
BACKWARD_CHUNK_BLOCKS = 16  # panels summed in registers per backward tile call

try:  # pragma: no cover - exercised whenever numba is installed
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    _HAVE_NUMBA = True
except Exception:  # pragma: no cover
    _HAVE_NUMBA = False


def panel_kernels_available() -> bool:
    """True when Numba (and so the packed-panel kernels) can be used."""
    return _HAVE_NUMBA


def pack_forward(V: np.ndarray) -> np.ndarray:
    """P[b, k, c] = V[16b + c, k], zero past p and d; shape (⌈p/16⌉, d_pad, 16).

    d_pad = d rounded up to a multiple of T_TILE_ROWS (the backward tile reads
    whole groups of coordinates).
    """
    p, d = V.shape
    blocks = -(-p // PANEL_WIDTH)
    d_pad = -(-d // T_TILE_ROWS) * T_TILE_ROWS
    padded = np.zeros((blocks * PANEL_WIDTH, d_pad), dtype=np.float32)
    padded[:p, :d] = V
    return np.ascontiguousarray(padded.reshape(blocks, PANEL_WIDTH, d_pad).transpose(0, 2, 1))


def pack_tiles(X: np.ndarray) -> np.ndarray:
    """Xt[s, k, r] = X[5s + r, k], zero rows past X's; shape (⌈rows/5⌉, d, 5): the forward kernel's A."""
    rows, d = X.shape
    tiles = -(-rows // TILE_ROWS)
    padded = np.zeros((tiles * TILE_ROWS, d), dtype=np.float32)
    padded[:rows] = X
    return np.ascontiguousarray(padded.reshape(tiles, TILE_ROWS, d).transpose(0, 2, 1))


def pack_rows(W: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Wt[q, j, c] = W[24q + c, j], zero past W's rows (and columns, up to ``columns``)."""
    rows, p = W.shape
    columns = p if columns is None else columns
    groups = -(-rows // T_WIDTH)
    padded = np.zeros((groups * T_WIDTH, columns), dtype=np.float32)
    padded[:rows, :p] = W
    return np.ascontiguousarray(padded.reshape(groups, T_WIDTH, columns).transpose(0, 2, 1))


def _make_tile(tile_rows: int, vectors: int, a_row_step: int, a_t_step: int):
    """A Numba intrinsic for one register tile of tile_rows × (8·vectors) sums:

        out[o + r·o_row + c] (+)= Σ_{0 ≤ s < panels} Σ_{0 ≤ t < count}
                                   A[a + s·a_panel + r·a_row_step + t·a_t_step] · B[b + s·b_panel + t·b_step + c]

    for r < tile_rows, c < 8·vectors, all indices flat element offsets into
    C-contiguous float32 arrays (callers compute a, b, o; no bounds checks).
    The sums stay in registers across all ``panels`` (the backward kernel
    walks a whole chunk of panels per call).
    With ``accumulate`` true the sums are added to what ``out`` holds, else
    they replace it.  The A steps are compile-time constants, so the loop
    advances two pointers; tile_rows·vectors accumulators + vectors loads + 1
    broadcast must fit the 16 vector registers of AVX2.
    """

    @intrinsic
    def tile(typingctx, A, a, a_panel, B, b, b_step, b_panel, panels, out, o, o_row, count,
             accumulate):  # pragma: no cover - compiled
        sig = types.void(A, a, a_panel, B, b, b_step, b_panel, panels, out, o, o_row, count, accumulate)

        def codegen(context, builder, signature, args):
            (a_arr, a_off, a_panel_, b_arr, b_off, b_step_, b_panel_, panels_, o_arr, o_off, o_row_, count_,
             accumulate_) = args
            f32 = ir.FloatType()
            i64 = ir.IntType(64)
            vec = ir.VectorType(f32, VECTOR)
            vec_ptr = vec.as_pointer()
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                 f"llvm.fma.v{VECTOR}f32")

            def data(k, value):
                return builder.bitcast(context.make_array(signature.args[k])(context, builder, value).data,
                                       f32.as_pointer())

            def const(v):
                return ir.Constant(i64, v)

            def int64(k, value):
                return context.cast(builder, value, signature.args[k], types.int64)

            base_a = builder.gep(data(0, a_arr), [int64(1, a_off)])
            base_b = builder.gep(data(3, b_arr), [int64(4, b_off)])
            base_o = builder.gep(data(8, o_arr), [int64(9, o_off)])
            a_panel_v, b_step_v, b_panel_v = int64(2, a_panel_), int64(5, b_step_), int64(6, b_panel_)
            panels_v, o_row_v, count_v = int64(7, panels_), int64(10, o_row_), int64(11, count_)
            out_ptrs = [[builder.bitcast(builder.gep(base_o, [builder.add(builder.mul(const(r), o_row_v),
                                                                          const(VECTOR * c))]), vec_ptr)
                         for c in range(vectors)] for r in range(tile_rows)]
            # accumulators: allocas in the entry block, promoted to registers by LLVM;
            # they start from out's values (accumulate) or from zero
            zero = ir.Constant(vec, [0.0] * VECTOR)
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(tile_rows)]
            for r in range(tile_rows):
                for c in range(vectors):
                    builder.store(zero, acc[r][c])
            with builder.if_then(context.cast(builder, accumulate_, signature.args[12], types.boolean)):
                for r in range(tile_rows):
                    for c in range(vectors):
                        builder.store(builder.load(out_ptrs[r][c], align=4), acc[r][c])
            splat = ir.Constant(ir.VectorType(ir.IntType(32), VECTOR), [0] * VECTOR)
            with cgutils.for_range(builder, panels_v) as outer:
                panel_a = builder.gep(base_a, [builder.mul(outer.index, a_panel_v)])
                panel_b = builder.gep(base_b, [builder.mul(outer.index, b_panel_v)])
                with cgutils.for_range(builder, count_v) as loop:
                    t = loop.index
                    b_row = builder.gep(panel_b, [builder.mul(t, b_step_v)])
                    b_vecs = [builder.load(builder.bitcast(builder.gep(b_row, [const(VECTOR * c)]), vec_ptr),
                                           align=4) for c in range(vectors)]
                    a_row = builder.gep(panel_a, [builder.mul(t, const(a_t_step))])
                    for r in range(tile_rows):
                        a_one = builder.insert_element(ir.Constant(vec, None),
                                                       builder.load(builder.gep(a_row, [const(r * a_row_step)])),
                                                       ir.Constant(ir.IntType(32), 0))
                        a_vec = builder.shuffle_vector(a_one, ir.Constant(vec, None), splat)
                        for c in range(vectors):
                            builder.store(builder.call(fma, [a_vec, b_vecs[c], builder.load(acc[r][c])]),
                                          acc[r][c])
            for r in range(tile_rows):
                for c in range(vectors):
                    builder.store(builder.load(acc[r][c]), out_ptrs[r][c], align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _make_scaled_transpose():
    """A Numba intrinsic for one 8×8 block of W = D ⊙ r, transposed into the packed layout:

        out[o + t·o_row + i] = D[d + i·d_row + t] · r[s + t]      for i, t < 8

    (flat element offsets into C-contiguous float32 arrays; no bounds checks):
    eight vector loads, eight products, 24 shuffles, eight vector stores,
    instead of 64 scattered scalar stores.
    """

    @intrinsic
    def transpose(typingctx, D, d, d_row, r, s, out, o, o_row):  # pragma: no cover - compiled
        sig = types.void(D, d, d_row, r, s, out, o, o_row)

        def codegen(context, builder, signature, args):
            d_arr, d_off, d_row_, r_arr, r_off, o_arr, o_off, o_row_ = args
            f32 = ir.FloatType()
            vec = ir.VectorType(f32, VECTOR)
            vec_ptr = vec.as_pointer()

            def data(k, value):
                return builder.bitcast(context.make_array(signature.args[k])(context, builder, value).data,
                                       f32.as_pointer())

            def int64(k, value):
                return context.cast(builder, value, signature.args[k], types.int64)

            def shuffle(a, b, mask):
                return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), VECTOR), mask))

            base_d = builder.gep(data(0, d_arr), [int64(1, d_off)])
            d_step = int64(2, d_row_)
            scale = builder.load(builder.bitcast(builder.gep(data(3, r_arr), [int64(4, r_off)]), vec_ptr), align=4)
            rows = [builder.fmul(builder.load(builder.bitcast(
                builder.gep(base_d, [builder.mul(ir.Constant(ir.IntType(64), i), d_step)]), vec_ptr), align=4), scale)
                for i in range(VECTOR)]
            low, high = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
            pairs = [(shuffle(rows[2 * k], rows[2 * k + 1], low), shuffle(rows[2 * k], rows[2 * k + 1], high))
                     for k in range(4)]
            first, second = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
            quads = [[shuffle(pairs[h][0], pairs[h + 1][0], first), shuffle(pairs[h][0], pairs[h + 1][0], second),
                      shuffle(pairs[h][1], pairs[h + 1][1], first), shuffle(pairs[h][1], pairs[h + 1][1], second)]
                     for h in (0, 2)]
            base_o = builder.gep(data(5, o_arr), [int64(6, o_off)])
            o_step = int64(7, o_row_)
            for k in range(4):
                for t, mask in ((k, [0, 1, 2, 3, 8, 9, 10, 11]), (k + 4, [4, 5, 6, 7, 12, 13, 14, 15])):
                    ptr = builder.gep(base_o, [builder.mul(ir.Constant(ir.IntType(64), t), o_step)])
                    builder.store(shuffle(quads[0][k], quads[1][k], mask), builder.bitcast(ptr, vec_ptr), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return transpose


if _HAVE_NUMBA:
    # W = D ⊙ r, 8 rows × 8 features at a time, into the backward kernel's packed layout
    scaled_transpose8 = _make_scaled_transpose()
    # forward: A = X̂ packed by tiles (row step 1, t step TILE_ROWS), B = P, 16 features per tile
    _forward_tile = _make_tile(TILE_ROWS, 2, 1, TILE_ROWS)
    # backward: A = P[b] (coordinate step 16, feature step 1), B = W packed by rows, 24 rows per tile
    _backward_tile = _make_tile(T_TILE_ROWS, T_VECTORS, PANEL_WIDTH, 1)

    @njit(nogil=True, cache=True)
    def _forward_blocks(Xt, P, Z, block_lo, block_hi):  # pragma: no cover - compiled
        """Z[5s + r, 16b + c] = Σ_k Xt[s, k, r] P[b, k, c] for block_lo ≤ b < block_hi (Xt = pack_tiles(X̂))."""
        tiles, d, _ = Xt.shape
        d_pad, z_cols = P.shape[1], Z.shape[1]
        for b in range(block_lo, block_hi):
            for s in range(tiles):
                _forward_tile(Xt, s * d * TILE_ROWS, 0, P, b * d_pad * PANEL_WIDTH, PANEL_WIDTH, 0, 1,
                              Z, s * TILE_ROWS * z_cols + b * PANEL_WIDTH, z_cols, d, False)

    @njit(nogil=True, cache=True)
    def _backward_blocks(Wt, P, GT, block_lo, block_hi, t_base):  # pragma: no cover - compiled
        """GT[k, 24q + c] += Σ_{block_lo ≤ b < block_hi} Σ_{c' < 16} P[b, k, c'] · Wt[q, 16b + c' − t_base, c].

        That is Gᵀ += V_chunkᵀ W_chunkᵀ with V read from the forward panels
        (P[b] is the d_pad×16 block V[16b:16b+16]ᵀ) and W packed by rows
        (Wt[q, j, c] = W[24q + c, t_base + j]); GT is (d_pad × 24·⌈rows/24⌉).
        """
        d_pad = P.shape[1]
        groups, span, _ = Wt.shape
        g_cols = GT.shape[1]
        for b0 in range(block_lo, block_hi, BACKWARD_CHUNK_BLOCKS):  # the sums stay in registers over a chunk
            panels = min(BACKWARD_CHUNK_BLOCKS, block_hi - b0)
            for q in range(groups):
                w_off = (q * span + b0 * PANEL_WIDTH - t_base) * T_WIDTH
                for k0 in range(0, d_pad, T_TILE_ROWS):
                    _backward_tile(P, (b0 * d_pad + k0) * PANEL_WIDTH, d_pad * PANEL_WIDTH,
                                   Wt, w_off, T_WIDTH, PANEL_WIDTH * T_WIDTH, panels,
                                   GT, k0 * g_cols + q * T_WIDTH, g_cols, PANEL_WIDTH, True)


def _require_numba():
    if not _HAVE_NUMBA:
        raise RuntimeError("the packed-panel kernels need Numba")


def panel_matmul_forward(X: np.ndarray, P: np.ndarray, p: int) -> np.ndarray:
    """X Vᵀ (rows×p, float32) from the panels P = pack_forward(V)."""
    _require_numba()
    rows = X.shape[0]
    Xt = pack_tiles(np.asarray(X, dtype=np.float32))
    Z = np.empty((Xt.shape[0] * TILE_ROWS, P.shape[0] * PANEL_WIDTH), dtype=np.float32)
    _forward_blocks(Xt, P, Z, 0, P.shape[0])
    return Z[:rows, :p]


def panel_matmul_backward(W: np.ndarray, P: np.ndarray, d: int) -> np.ndarray:
    """W V (rows×d, float32) from the same panels P = pack_forward(V)."""
    _require_numba()
    rows = W.shape[0]
    Wt = pack_rows(np.asarray(W, dtype=np.float32), P.shape[0] * PANEL_WIDTH)
    GT = np.zeros((P.shape[1], Wt.shape[0] * T_WIDTH), dtype=np.float32)
    _backward_blocks(Wt, P, GT, 0, P.shape[0], 0)
    return np.ascontiguousarray(GT[:d, :rows].T)
