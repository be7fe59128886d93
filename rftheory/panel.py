"""Packed-panel SIMD products with the fixed weight matrix V (CPU, float32).

The attack's cost is two products with the same V (p×d) on every evaluation:

    Z = X̂ Vᵀ   (rows×p)        and        G = W V   (rows×d),

with only rows = R·n̂ ≈ 20 rows on the other side.  OpenBLAS packs V afresh
on every call and its kernels are tuned for square shapes; on the reference
machine these two skinny products ran at 25–40 % of its measured sgemm peak
(benchmarks/bench_iteration.py).  V never changes during an attack, so this
module packs it once, in the two layouts a register-blocked kernel wants:

    forward panels   P[b, k, c] = V[16b + c, k]     shape (⌈p/16⌉, d, 16)
    backward panels  Q[b, j, c] = V[j, 16b + c]     shape (⌈d/16⌉, p, 16)

(zero-padded), and computes both products with one micro-kernel,

    out[i₀ + r, 16b + c] = Σ_{t₀ ≤ t < t₁} A[i₀ + r, t] · B[b, t, c]
                                            r < TILE_ROWS, c < 16,

which keeps the TILE_ROWS×16 block of sums in ten 8-wide registers and, per t,
loads two vectors of B, broadcasts TILE_ROWS scalars of A and issues ten fused
multiply–adds (the BLIS "6×16" scheme).  Forward: A = X̂, B = P, t = k.
Backward: A = W, B = Q, t = j (a sum over features, so threads split it).
The kernel is written in LLVM IR (``<8 x float>`` and ``llvm.fma``) through a
Numba intrinsic, because LLVM's own vectoriser does not find this blocking.

:mod:`rftheory.loss` builds the whole float32 projection loss on it
(``panel_projection_loss``); everything here is pure arithmetic.  The kernel
needs Numba and AVX2-class hardware vectors are used when the CPU has them
(LLVM lowers ``<8 x float>`` to whatever the host offers).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "PANEL_WIDTH",
    "TILE_ROWS",
    "panel_kernels_available",
    "pack_forward",
    "pack_backward",
    "panel_matmul_forward",
    "panel_matmul_backward",
]

VECTOR = 8  # float32 lanes per hardware vector the kernel is written for
PANEL_WIDTH = 2 * VECTOR  # columns of a panel: two vectors
BACKWARD_CHUNK = 512  # features per cache-resident chunk of the backward product
TILE_ROWS = 5  # rows of A per tile: 5×2 = 10 accumulators + 2 loads + 1 broadcast ≤ 16 registers

try:  # pragma: no cover - exercised whenever numba is installed
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    _HAVE_NUMBA = True
except Exception:  # pragma: no cover
    _HAVE_NUMBA = False


def panel_kernels_available() -> bool:
    """True when Numba (and so the packed-panel kernel) can be used."""
    return _HAVE_NUMBA


def pack_forward(V: np.ndarray) -> np.ndarray:
    """P[b, k, c] = V[16b + c, k], zero rows past p; shape (⌈p/16⌉, d, 16)."""
    p, d = V.shape
    blocks = -(-p // PANEL_WIDTH)
    padded = np.zeros((blocks * PANEL_WIDTH, d), dtype=np.float32)
    padded[:p] = V
    return np.ascontiguousarray(padded.reshape(blocks, PANEL_WIDTH, d).transpose(0, 2, 1))


def pack_backward(V: np.ndarray) -> np.ndarray:
    """Q[b, j, c] = V[j, 16b + c], zero columns past d; shape (⌈d/16⌉, p, 16)."""
    p, d = V.shape
    blocks = -(-d // PANEL_WIDTH)
    padded = np.zeros((p, blocks * PANEL_WIDTH), dtype=np.float32)
    padded[:, :d] = V
    return np.ascontiguousarray(padded.reshape(p, blocks, PANEL_WIDTH).transpose(1, 0, 2))


if _HAVE_NUMBA:

    @intrinsic
    def _panel_tile(typingctx, A, B, out, block, row0, t0, t1, accumulate):  # pragma: no cover - compiled
        """out[row0 + r, 16·block + c] (+)= Σ_{t0 ≤ t < t1} A[row0 + r, t] · B[block, t, c]  (r < TILE_ROWS, c < 16).

        With ``accumulate`` true the sums are added to what ``out`` holds, else they replace it.

        A: 2-D float32 with unit column stride; B: 3-D C-contiguous float32
        panels; out: 2-D float32 with unit column stride.  No bounds checks:
        callers pad A's rows to a multiple of TILE_ROWS and out's columns to a
        multiple of 16.
        """
        sig = types.void(A, B, out, block, row0, t0, t1, accumulate)

        def codegen(context, builder, signature, args):
            a_arg, b_arg, o_arg, block_, row0_, t0_, t1_, accumulate_ = args
            arr_a = context.make_array(signature.args[0])(context, builder, a_arg)
            arr_b = context.make_array(signature.args[1])(context, builder, b_arg)
            arr_o = context.make_array(signature.args[2])(context, builder, o_arg)
            f32 = ir.FloatType()
            i64 = ir.IntType(64)
            vec = ir.VectorType(f32, VECTOR)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                 f"llvm.fma.v{VECTOR}f32")
            byte_ptr = ir.IntType(8).as_pointer()
            a_row_stride = cgutils.unpack_tuple(builder, arr_a.strides, 2)[0]
            b_block_stride, b_t_stride, _ = cgutils.unpack_tuple(builder, arr_b.strides, 3)
            o_row_stride = cgutils.unpack_tuple(builder, arr_o.strides, 2)[0]
            base_a = builder.bitcast(arr_a.data, byte_ptr)
            base_b = builder.bitcast(arr_b.data, byte_ptr)
            base_o = builder.bitcast(arr_o.data, byte_ptr)

            def const(v):
                return ir.Constant(i64, v)

            col_bytes = builder.mul(block_, const(4 * PANEL_WIDTH))
            out_ptrs = []
            for r in range(TILE_ROWS):
                o_row = builder.gep(base_o, [builder.add(builder.mul(builder.add(row0_, const(r)), o_row_stride),
                                                         col_bytes)])
                out_ptrs.append([builder.bitcast(builder.gep(o_row, [const(4 * VECTOR * c)]), vec.as_pointer())
                                 for c in range(2)])
            # accumulators: allocas in the entry block, promoted to registers by LLVM;
            # they start from out's values (accumulate) or from zero
            zero = ir.Constant(vec, [0.0] * VECTOR)
            keep = context.cast(builder, accumulate_, signature.args[7], types.boolean)
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(2)] for _ in range(TILE_ROWS)]
            with builder.if_then(keep):
                for r in range(TILE_ROWS):
                    for c in range(2):
                        builder.store(builder.load(out_ptrs[r][c], align=4), acc[r][c])
            a_rows = [builder.gep(base_a, [builder.mul(builder.add(row0_, const(r)), a_row_stride)])
                      for r in range(TILE_ROWS)]
            b_block = builder.gep(base_b, [builder.mul(block_, b_block_stride)])
            splat = ir.Constant(ir.VectorType(ir.IntType(32), VECTOR), [0] * VECTOR)
            with cgutils.for_range_slice(builder, t0_, t1_, const(1), inc=True) as (t, _):
                b_row = builder.gep(b_block, [builder.mul(t, b_t_stride)])
                b_vecs = [builder.load(builder.bitcast(builder.gep(b_row, [const(4 * VECTOR * c)]), vec.as_pointer()),
                                       align=4) for c in range(2)]
                for r in range(TILE_ROWS):
                    a_ptr = builder.bitcast(builder.gep(a_rows[r], [builder.mul(t, const(4))]), f32.as_pointer())
                    a_one = builder.insert_element(ir.Constant(vec, None), builder.load(a_ptr),
                                                   ir.Constant(ir.IntType(32), 0))
                    a_vec = builder.shuffle_vector(a_one, ir.Constant(vec, None), splat)
                    for c in range(2):
                        builder.store(builder.call(fma, [a_vec, b_vecs[c], builder.load(acc[r][c])]), acc[r][c])
            for r in range(TILE_ROWS):
                for c in range(2):
                    builder.store(builder.load(acc[r][c]), out_ptrs[r][c], align=4)
            return context.get_dummy_value()

        return sig, codegen

    @njit(nogil=True, cache=True)
    def _forward_blocks(X, P, Z, block_lo, block_hi):  # pragma: no cover - compiled
        """Z[:, 16b:16b+16] = X P[b] for block_lo ≤ b < block_hi (X rows a multiple of TILE_ROWS)."""
        rows, d = X.shape
        for b in range(block_lo, block_hi):
            for r0 in range(0, rows, TILE_ROWS):
                _panel_tile(X, P, Z, b, r0, 0, d, False)

    @njit(nogil=True, cache=True)
    def _backward_range(W, Q, G, j_lo, j_hi, accumulate):  # pragma: no cover - compiled
        """G[:, 16b:16b+16] (+)= Σ_{j_lo ≤ j < j_hi} W[:, j] Q[b, j] for every panel b (+= if ``accumulate``).

        The feature range is walked in chunks of BACKWARD_CHUNK so that the
        chunk of every panel (and of W) stays in cache while all tiles use it.
        """
        rows = W.shape[0]
        for c0 in range(j_lo, j_hi, BACKWARD_CHUNK):
            c1 = min(c0 + BACKWARD_CHUNK, j_hi)
            for b in range(Q.shape[0]):
                for r0 in range(0, rows, TILE_ROWS):
                    _panel_tile(W, Q, G, b, r0, c0, c1, accumulate or c0 > j_lo)


def _padded_rows(A: np.ndarray) -> np.ndarray:
    rows = A.shape[0]
    target = -(-rows // TILE_ROWS) * TILE_ROWS
    out = np.zeros((target, A.shape[1]), dtype=np.float32)
    out[:rows] = A
    return out


def panel_matmul_forward(X: np.ndarray, P: np.ndarray, p: int) -> np.ndarray:
    """X Vᵀ (rows×p, float32) from the forward panels P = pack_forward(V)."""
    if not _HAVE_NUMBA:
        raise RuntimeError("the packed-panel kernels need Numba")
    rows = X.shape[0]
    Xp = _padded_rows(np.asarray(X, dtype=np.float32))
    Z = np.empty((Xp.shape[0], P.shape[0] * PANEL_WIDTH), dtype=np.float32)
    _forward_blocks(Xp, P, Z, 0, P.shape[0])
    return Z[:rows, :p]


def panel_matmul_backward(W: np.ndarray, Q: np.ndarray, d: int) -> np.ndarray:
    """W V (rows×d, float32) from the backward panels Q = pack_backward(V)."""
    if not _HAVE_NUMBA:
        raise RuntimeError("the packed-panel kernels need Numba")
    rows = W.shape[0]
    Wp = _padded_rows(np.asarray(W, dtype=np.float32))
    G = np.empty((Wp.shape[0], Q.shape[0] * PANEL_WIDTH), dtype=np.float32)
    _backward_range(Wp, Q, G, 0, Q.shape[1], False)
    return G[:rows, :d]
