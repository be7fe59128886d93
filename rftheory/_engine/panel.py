"""Packed-panel SIMD products with the fixed weight matrix V (CPU, float32).

The attack's cost is two products with the same V (p×d) on every evaluation:

    Z = X̂ Vᵀ   (rows×p)        and        G = W V   (rows×d),

with only rows = R·n̂ ≈ 20 rows on the other side.  A general BLAS packs V
afresh on every call and tunes its kernels for square shapes, so these two
skinny products run far below its peak (benchmarks/bench_iteration.py
compares).  V never changes during an attack, so this module packs it once, into panels of w = PANEL_WIDTH = 2·VECTOR features
(VECTOR = 16 float32 lanes where the host has AVX-512, else 8),

    P[b, k, c] = V[w·b + c, k]          shape (⌈p/w⌉, d_pad, w), zero-padded,

and both products read that one copy (so V's bytes are streamed from one
place, which matters when memory bandwidth is the limit):

* forward, Z[:, w·b : w·b + w] = X̂ P[b]: tiles of TILE_ROWS rows × w
  features, X̂ packed so that the tile's scalars of one k are adjacent
  (``pack_tiles``);
* backward, G[i, k] = Σ_j W[i, j] V[j, k] = Σ_b Σ_c W[i, w·b + c] P[b, k, c]:
  the sum runs along the panels' contiguous feature axis, so W stays in its
  natural row-major layout (no transposed packing, no padding of the rows
  to a vector width); tiles of B_TILE_ROWS rows × B_TILE_COORDS coordinates
  keep one vector of lane-wise partial sums per entry, G8[i, k, :], summed
  over the VECTOR lanes at the end;
* backward on the column panels Q[m, j, c] = V[j, w·m + c] (``pack_columns``,
  a second copy, for large d where G8 outgrows the L2 cache):
  G[:, w·m : w·m + w] += W Q[m], the forward tile with W's scalars broadcast
  and Q[m] read as one contiguous stream (``_column_blocks``).

Two register-blocked micro-kernels (the BLIS scheme) do the products: the
forward one loads the vectors of B, broadcasts the tile's scalars of A and
issues rows×vectors fused multiply–adds; the backward one loads rows + coords
vectors and issues rows×coords fused multiply–adds (lane-wise dot products).
The accumulators stay in registers over a whole run of panels.  Both are
written in LLVM IR (``<VECTOR x float>``, ``llvm.fma``) through Numba
intrinsics, because LLVM's own vectoriser does not find this blocking (and
stays at 256-bit vectors on AVX-512 hosts); LLVM lowers them to the host's
vector instructions.  Tile shapes follow the register count (16 with AVX2,
32 with AVX-512).  Two more intrinsics serve pass 1 of the loss: the
elementwise step (σ, σ', a float64 copy and its θ-sum, :func:`_make_sigma_row`)
and float64 Gram tiles (:func:`_make_gram_tile`).  Arrays the kernels stream
start on a 64-byte line (:func:`aligned_zeros`).  :mod:`rftheory._engine.panel_loss`
builds the float32 projection loss on these kernels; everything here is
pure arithmetic.

The vector width is fixed at import from the host (:mod:`rftheory._engine.target`),
and the rational tanh of pass 1 comes from :mod:`rftheory._engine.tanh`.
"""
from __future__ import annotations

import numpy as np

from .tanh import TANH_CLAMP, TANH_P, TANH_Q
from .target import VECTOR

__all__ = [
    "VECTOR",
    "PANEL_WIDTH",
    "TILE_ROWS",
    "aligned_zeros",
    "panel_kernels_available",
    "pack_forward",
    "pack_columns",
    "pack_tiles",
    "panel_matmul_forward",
    "panel_matmul_backward",
    "column_matmul_backward",
]


PANEL_WIDTH = 2 * VECTOR  # features per panel of P: two vectors
# forward tile: TILE_ROWS rows × 2 vectors of accumulators + 2 loads + 1 broadcast: 5 × 2 = 10 + 3 in 16
# registers (AVX2), 10 × 2 = 20 + 3 in 32 (AVX-512: half the loads of P per multiply–add)
TILE_ROWS = 10 if VECTOR == 16 else 5
# backward tile: B_TILE_ROWS × B_TILE_COORDS accumulators + B_TILE_ROWS + B_TILE_COORDS loads: with 16
# registers (AVX2) 5 × 2 = 10 + 7; with 32 (AVX-512) 10 × 2 = 20 + 12 (benchmarks/bench_kernels.py: faster
# than 5 × 4 and 10 × 3 at n̂=20, d=100, p=20000)
B_TILE_ROWS = 10 if VECTOR == 16 else 5  # divides TILE_ROWS: W's rows are padded like X̂'s
B_TILE_COORDS = 2
# Gram tile (float64, VECTOR // 2 lanes): 4 × 4 sums + 8 loads in 32 registers, 4 × 2 + 6 in 16
GRAM_TILE_ROWS = 4
GRAM_TILE_COLS = 4 if VECTOR == 16 else 2
BACKWARD_CHUNK_BLOCKS = 16  # panels per backward tile call (the tile's rows of W stay in L1)
COLUMN_W_COLS = 16 * PANEL_WIDTH  # columns of W (features of one chunk of the loss's pass 2) in _column_blocks

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


PACK_PANELS = 4096  # panels per step of pack_forward
CACHE_LINE = 64  # bytes: the kernels' arrays start on a line, so no 64-byte vector load straddles two


def aligned_zeros(shape, dtype=np.float32) -> np.ndarray:
    """np.zeros(shape, dtype) starting on a CACHE_LINE boundary.

    NumPy's allocator guarantees 16 bytes only (large arrays start 16 bytes
    past a page); with 16-lane (64-byte) vectors every load of such an array
    would then touch two cache lines.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.zeros(size + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + size].view(dtype).reshape(shape)


def pack_forward(V: np.ndarray) -> np.ndarray:
    """P[b, k, c] = V[w·b + c, k] (w = PANEL_WIDTH), zero past p and d; shape (⌈p/w⌉, d_pad, w).

    d_pad = d rounded up to a multiple of B_TILE_COORDS (the backward tile
    reads whole groups of coordinates).  Copied PACK_PANELS panels at a time
    (no second full-size copy of V, few Python steps).
    """
    p, d = V.shape
    w = PANEL_WIDTH
    blocks, full = -(-p // w), p // w
    d_pad = -(-d // B_TILE_COORDS) * B_TILE_COORDS
    P = aligned_zeros((blocks, d_pad, w))
    for b0 in range(0, full, PACK_PANELS):
        b1 = min(b0 + PACK_PANELS, full)
        P[b0:b1, :d, :] = V[b0 * w:b1 * w].reshape(b1 - b0, w, d).transpose(0, 2, 1)
    if full < blocks:  # the last panel, part-filled
        P[full, :d, :p - full * w] = V[full * w:].T
    return P


def pack_columns(V: np.ndarray) -> np.ndarray:
    """Q[m, j, c] = V[j, w·m + c] (w = PANEL_WIDTH), zero past d and p; shape (⌈d/w⌉, ⌈p/w⌉·w, w).

    The column panels of V: pack_forward(Vᵀ), the layout of the backward product G = W V by
    register tiles (:func:`_column_blocks`).  A tile of G (rows × w coordinates of panel m) sums
    over the features j, and Q[m] holds exactly the w coordinates of every feature, one 128- or
    64-byte run per feature, one after the other: the tile reads one contiguous stream, as the
    forward tile does on P, instead of one stream per feature as on V itself.  Features run to
    whole forward panels (zero rows past p: the loss's W is zero there too).  Copied
    PACK_PANELS·w features at a time (no second full-size temporary).
    """
    p, d = V.shape
    w = PANEL_WIDTH
    columns, full = -(-d // w), d // w
    p_pad = -(-p // w) * w
    Q = aligned_zeros((columns, p_pad, w))
    step = PACK_PANELS * w
    for j0 in range(0, p, step):
        j1 = min(j0 + step, p)
        Q[:full, j0:j1, :] = V[j0:j1, :full * w].reshape(j1 - j0, full, w).transpose(1, 0, 2)
        if full < columns:  # the last column panel, part-filled
            Q[full, j0:j1, :d - full * w] = V[j0:j1, full * w:]
    return Q


def pack_tiles(X: np.ndarray) -> np.ndarray:
    """Xt[s, k, r] = X[T·s + r, k] (T = TILE_ROWS), zero rows past X's; shape (⌈rows/T⌉, d, T):
    the forward kernel's A."""
    rows, d = X.shape
    tiles = -(-rows // TILE_ROWS)
    padded = np.zeros((tiles * TILE_ROWS, d), dtype=np.float32)
    padded[:rows] = X
    return np.ascontiguousarray(padded.reshape(tiles, TILE_ROWS, d).transpose(0, 2, 1))


class _TileCode:
    """LLVM IR helpers shared by the tile intrinsics (one per codegen call).

    Flat float32 pointers into array arguments, int64 arguments, VECTOR-wide
    vector loads, the grid of output vector pointers, zeroed accumulators
    (allocas in the entry block that LLVM promotes to registers) and the
    fused multiply–add into one of them.
    """

    def __init__(self, context, builder, signature):
        self.context, self.builder, self.signature = context, builder, signature
        self.vec = ir.VectorType(ir.FloatType(), VECTOR)
        self.vec_ptr = self.vec.as_pointer()
        self.fma = self.fma_for(self.vec)

    def fma_for(self, vec_type):
        """The llvm.fma intrinsic for <lanes x float|double>."""
        kind = "f64" if isinstance(vec_type.element, ir.DoubleType) else "f32"
        return cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(vec_type, [vec_type] * 3),
                                              f"llvm.fma.v{vec_type.count}{kind}")

    def const(self, value):
        return ir.Constant(ir.IntType(64), value)

    def int64(self, k, value):
        return self.context.cast(self.builder, value, self.signature.args[k], types.int64)

    def at(self, k_array, array, k_offset=None, offset=None, element=None):
        """element* (float by default) to element ``offset`` (argument k_offset; 0 if None) of the
        array argument k_array."""
        data = self.context.make_array(self.signature.args[k_array])(self.context, self.builder, array).data
        ptr = self.builder.bitcast(data, (element or ir.FloatType()).as_pointer())
        return ptr if k_offset is None else self.builder.gep(ptr, [self.int64(k_offset, offset)])

    def vector_at(self, base, index, vec_type):
        """<lanes x T>* to base[index] (base a T*, index an int64 value)."""
        return self.builder.bitcast(self.builder.gep(base, [index]), vec_type.as_pointer())

    def load(self, ptr, offset):
        return self.builder.load(self.builder.bitcast(self.builder.gep(ptr, [offset]), self.vec_ptr), align=4)

    def output_grid(self, base, row_step, rows, columns):
        """Vector pointers base + r·row_step + VECTOR·c for r < rows, c < columns."""
        b = self.builder
        return [[b.bitcast(b.gep(base, [b.add(b.mul(self.const(r), row_step), self.const(VECTOR * c))]), self.vec_ptr)
                 for c in range(columns)] for r in range(rows)]

    def accumulators(self, rows, columns, vec_type=None):
        """rows × columns zeroed accumulators of vec_type (default: VECTOR float32 lanes)."""
        vec_type = vec_type or self.vec
        zero = ir.Constant(vec_type, [0.0] * vec_type.count)
        acc = [[cgutils.alloca_once_value(self.builder, zero) for _ in range(columns)] for _ in range(rows)]
        for row in acc:
            for cell in row:
                self.builder.store(zero, cell)
        return acc

    def prefetch(self, ptr):
        """A read prefetch of the line holding ``ptr`` into all cache levels (llvm.prefetch; never faults)."""
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        self.builder.call(fn, [self.builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                               ir.Constant(i32, 1)])

    def fma_into(self, cell, a, b):
        """cell ← a·b + cell (vectors of one type)."""
        self.builder.store(self.builder.call(self.fma_for(a.type), [a, b, self.builder.load(cell)]), cell)


def _make_tile(tile_rows: int, vectors: int, a_row_step: int, a_t_step: int, *, accumulate: bool = False,
               prefetch: int = 0):
    """A Numba intrinsic for one register tile of tile_rows × (VECTOR·vectors) sums:

        out[o + r·o_row + c] = Σ_{0 ≤ t < count} A[a + r·a_row_step + t·a_t_step] · B[b + t·b_step + c]

    for r < tile_rows, c < VECTOR·vectors, all indices flat element offsets into
    C-contiguous float32 arrays (callers compute a, b, o; no bounds checks).
    The A steps are compile-time constants, so the loop advances two pointers; tile_rows·vectors accumulators + vectors loads + 1
    broadcast must fit the vector registers (16 with AVX2, 32 with AVX-512).
    With ``accumulate`` the tile adds into ``out`` (out += Σ …: the accumulators start from out);
    with ``prefetch`` > 0 every step also asks the cache for B[b + t·b_step + prefetch + c]
    (the same row, ``prefetch`` elements further on: the next tiles' data when B's rows are
    walked ``VECTOR·vectors`` columns at a time).
    """

    @intrinsic
    def tile(typingctx, A, a, B, b, b_step, out, o, o_row, count):  # pragma: no cover - compiled
        sig = types.void(A, a, B, b, b_step, out, o, o_row, count)

        def codegen(context, builder, signature, args):
            a_arr, a_off, b_arr, b_off, b_step_, o_arr, o_off, o_row_, count_ = args
            code = _TileCode(context, builder, signature)
            vec, const = code.vec, code.const
            base_a, base_b = code.at(0, a_arr, 1, a_off), code.at(2, b_arr, 3, b_off)
            b_step_v, count_v = code.int64(4, b_step_), code.int64(8, count_)
            out_ptrs = code.output_grid(code.at(5, o_arr, 6, o_off), code.int64(7, o_row_), tile_rows, vectors)
            acc = code.accumulators(tile_rows, vectors)
            if accumulate:
                for r in range(tile_rows):
                    for c in range(vectors):
                        builder.store(builder.load(out_ptrs[r][c], align=4), acc[r][c])
            splat = ir.Constant(ir.VectorType(ir.IntType(32), VECTOR), [0] * VECTOR)
            with cgutils.for_range(builder, count_v) as loop:
                t = loop.index
                b_row = builder.gep(base_b, [builder.mul(t, b_step_v)])
                b_vecs = [code.load(b_row, const(VECTOR * c)) for c in range(vectors)]
                if prefetch:
                    for c in range(vectors):
                        code.prefetch(builder.gep(b_row, [const(prefetch + VECTOR * c)]))
                a_row = builder.gep(base_a, [builder.mul(t, const(a_t_step))])
                for r in range(tile_rows):
                    a_one = builder.insert_element(ir.Constant(vec, None),
                                                   builder.load(builder.gep(a_row, [const(r * a_row_step)])),
                                                   ir.Constant(ir.IntType(32), 0))
                    a_vec = builder.shuffle_vector(a_one, ir.Constant(vec, None), splat)
                    for c in range(vectors):
                        code.fma_into(acc[r][c], a_vec, b_vecs[c])
            for r in range(tile_rows):
                for c in range(vectors):
                    builder.store(builder.load(acc[r][c]), out_ptrs[r][c], align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _make_dot_tile(tile_rows: int, tile_coords: int):
    """A Numba intrinsic for one backward tile of tile_rows × tile_coords lane-wise sums:

        out[o + r·o_row + L·k + l] += Σ_{0 ≤ s < panels} Σ_{h = 0, 1}
            W[w + r·w_row + 2L·s + L·h + l] · P[b + s·b_panel + 2L·k + L·h + l]

    for r < tile_rows, k < tile_coords, lanes l < L = VECTOR (flat element
    offsets into C-contiguous float32 arrays; callers compute w, b, o; no
    bounds checks).  With P = pack_forward(V), b = (b₀·d_pad + k₀)·2L and
    b_panel = d_pad·2L, the L lanes of out sum to G[r, k₀ + k] over the
    features of panels b₀ … b₀ + panels − 1.  The tile's accumulators stay
    in registers over all ``panels`` and are then added to ``out``.
    """

    @intrinsic
    def tile(typingctx, W, w, w_row, P, b, b_panel, panels, out, o, o_row):  # pragma: no cover - compiled
        sig = types.void(W, w, w_row, P, b, b_panel, panels, out, o, o_row)

        def codegen(context, builder, signature, args):
            w_arr, w_off, w_row_, p_arr, b_off, b_panel_, panels_, o_arr, o_off, o_row_ = args
            code = _TileCode(context, builder, signature)
            const, load = code.const, code.load
            base_w, base_b = code.at(0, w_arr, 1, w_off), code.at(3, p_arr, 4, b_off)
            w_row_v, b_panel_v, panels_v = code.int64(2, w_row_), code.int64(5, b_panel_), code.int64(6, panels_)
            w_rows = [builder.gep(base_w, [builder.mul(const(r), w_row_v)]) for r in range(tile_rows)]
            out_ptrs = code.output_grid(code.at(7, o_arr, 8, o_off), code.int64(9, o_row_), tile_rows, tile_coords)
            acc = code.accumulators(tile_rows, tile_coords)
            with cgutils.for_range(builder, panels_v) as loop:
                s = loop.index
                panel_b = builder.gep(base_b, [builder.mul(s, b_panel_v)])
                w_at = builder.mul(s, const(PANEL_WIDTH))
                for h in range(PANEL_WIDTH // VECTOR):
                    w_vecs = [load(w_rows[r], builder.add(w_at, const(VECTOR * h))) for r in range(tile_rows)]
                    b_vecs = [load(panel_b, const(PANEL_WIDTH * k + VECTOR * h)) for k in range(tile_coords)]
                    for r in range(tile_rows):
                        for k in range(tile_coords):
                            code.fma_into(acc[r][k], w_vecs[r], b_vecs[k])
            for r in range(tile_rows):
                for k in range(tile_coords):
                    old = builder.load(out_ptrs[r][k], align=4)
                    builder.store(builder.fadd(old, builder.load(acc[r][k])), out_ptrs[r][k], align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _splat(builder, vec_type, scalar):
    """<lanes x T> with every lane = scalar."""
    lanes = vec_type.count
    one = builder.insert_element(ir.Constant(vec_type, None), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vec_type, None), ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                                                  [0] * lanes))


def _lane_sum(builder, acc):
    """Σ of the lanes of a float vector, by halving (a fixed order)."""
    lanes = acc.type.count
    while lanes > 1:
        half = lanes // 2
        mask = ir.VectorType(ir.IntType(32), half)
        lo = builder.shuffle_vector(acc, acc, ir.Constant(mask, list(range(half))))
        hi = builder.shuffle_vector(acc, acc, ir.Constant(mask, list(range(half, lanes))))
        acc, lanes = builder.fadd(lo, hi), half
    return builder.extract_element(acc, ir.Constant(ir.IntType(32), 0))


def _make_sigma_row(surrogate: bool):
    """A Numba intrinsic for pass 1's elementwise step on one row piece, VECTOR lanes at a time:

        z = F[f + t]
        F[f + t] = a·relu(z) + b·tanh(z),   D[f + t] = a·1[z > 0] + b·(1 − tanh² z)   (surrogate: 1[z > 0])
        H[h + t] = float64(F[f + t]),       returns Σ_t H[h + t] · θ[s + t]

    for 0 ≤ t < VECTOR·vectors (flat element offsets into C-contiguous
    float32 F, D and float64 H, θ; no bounds checks).  tanh is the rational
    x·P(x²)/Q(x²) of :func:`rftheory._engine.tanh.relu_tanh_f32` (x = z clamped
    to ±TANH_CLAMP); with 16 lanes (AVX-512) 1/Q is the hardware estimate
    (14 bits) and one Newton step, r ← r·(2 − Q·r) (relative error ≲ 2⁻²³;
    three instructions on the multiply–add ports instead of the divider, a
    separate, slower unit), else a division with fast-math flags
    (LLVM picks the same estimate where the target has one).  The sum's products are float64, kept
    lane-wise and added by halving.
    """
    @intrinsic
    def sigma_row(typingctx, F, D, f, H, h, theta, s, vectors, a, b):  # pragma: no cover - compiled
        sig = types.float64(F, D, f, H, h, theta, s, vectors, a, b)

        def codegen(context, builder, signature, args):
            F_arr, D_arr, f_off, H_arr, h_off, th_arr, s_off, vectors_, a_, b_ = args
            code = _TileCode(context, builder, signature)
            vec, const = code.vec, code.const
            dvec = ir.VectorType(ir.DoubleType(), VECTOR)
            fma32 = code.fma
            base_f, base_d = code.at(0, F_arr, 2, f_off), code.at(1, D_arr, 2, f_off)
            double = ir.DoubleType()
            base_h, base_th = code.at(3, H_arr, 4, h_off, double), code.at(5, th_arr, 6, s_off, double)
            a_vec = _splat(builder, vec, context.cast(builder, a_, signature.args[8], types.float32))
            b_vec = _splat(builder, vec, context.cast(builder, b_, signature.args[9], types.float32))

            def c32(value):
                return ir.Constant(vec, [float(np.float32(value))] * VECTOR)

            zero, one, two = c32(0.0), c32(1.0), c32(2.0)
            lim, neg_lim = c32(TANH_CLAMP), c32(-TANH_CLAMP)
            (acc,), = code.accumulators(1, 1, dvec)
            if VECTOR == 16:
                rcp = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec, vec, ir.IntType(16)]), "llvm.x86.avx512.rcp14.ps.512")
            with cgutils.for_range(builder, code.int64(7, vectors_)) as loop:
                at = builder.mul(loop.index, const(VECTOR))
                f_ptr, d_ptr = code.vector_at(base_f, at, vec), code.vector_at(base_d, at, vec)
                z = builder.load(f_ptr, align=4)
                x = builder.select(builder.fcmp_ordered(">", z, neg_lim), z, neg_lim)
                x = builder.select(builder.fcmp_ordered("<", x, lim), x, lim)
                x2 = builder.fmul(x, x)
                num = c32(TANH_P[-1])
                for coefficient in reversed(TANH_P[:-1]):
                    num = builder.call(fma32, [x2, num, c32(coefficient)])
                num = builder.fmul(x, num)
                den = c32(TANH_Q[-1])
                for coefficient in reversed(TANH_Q[:-1]):
                    den = builder.call(fma32, [x2, den, c32(coefficient)])
                if VECTOR == 16:
                    r = builder.call(rcp, [den, zero, ir.Constant(ir.IntType(16), -1)])
                    r = builder.fmul(r, builder.call(fma32, [builder.fsub(zero, den), r, two]))
                    t = builder.fmul(num, r)
                else:
                    t = builder.fdiv(num, den, flags=("fast",))
                positive = builder.fcmp_ordered(">", z, zero)
                step = builder.select(positive, one, zero)
                relu = builder.select(positive, z, zero)
                value = builder.call(fma32, [a_vec, relu, builder.fmul(b_vec, t)])
                if surrogate:
                    slope = step
                else:
                    slope = builder.call(fma32, [a_vec, step, builder.fmul(b_vec, builder.call(
                        fma32, [builder.fsub(zero, t), t, one]))])
                builder.store(value, f_ptr, align=4)
                builder.store(slope, d_ptr, align=4)
                wide = builder.fpext(value, dvec)
                builder.store(wide, code.vector_at(base_h, at, dvec), align=8)
                code.fma_into(acc, wide, builder.load(code.vector_at(base_th, at, dvec), align=8))
            return _lane_sum(builder, builder.load(acc))

        return sig, codegen

    return sigma_row


def _make_residual(with_grad: bool):
    """A Numba intrinsic for pass 2's elementwise step on one chunk, VECTOR // 2 lanes at a time:

        r_t = θ[s + t] − Σ_{i < rows} α[a + i] · F[f + i·f_row + t]        (float64)
        W[w + i·w_row + t] = D[f + i·f_row + t] · float32(r_t)   for i < rows   (with_grad)
        returns Σ_t r_t²

    for 0 ≤ t < (VECTOR // 2)·vectors (flat element offsets; C-contiguous
    float32 F, D, W and float64 θ, α; no bounds checks).  r stays in a
    register over the rows (one pass over the chunk instead of one per row).
    """
    lanes = VECTOR // 2

    @intrinsic
    def residual(typingctx, F, D, f, f_row, alpha, a, rows, theta, s, W, w, w_row, vectors):  # pragma: no cover
        sig = types.float64(F, D, f, f_row, alpha, a, rows, theta, s, W, w, w_row, vectors)

        def codegen(context, builder, signature, args):
            F_arr, D_arr, f_off, f_row_, al_arr, a_off, rows_, th_arr, s_off, W_arr, w_off, w_row_, vectors_ = args
            code = _TileCode(context, builder, signature)
            fvec = ir.VectorType(ir.FloatType(), lanes)
            dvec = ir.VectorType(ir.DoubleType(), lanes)
            double = ir.DoubleType()
            base_f, base_d = code.at(0, F_arr, 2, f_off), code.at(1, D_arr, 2, f_off)
            base_a, base_th = code.at(4, al_arr, 5, a_off, double), code.at(7, th_arr, 8, s_off, double)
            base_w = code.at(9, W_arr, 10, w_off)
            f_row_v, w_row_v, rows_v = code.int64(3, f_row_), code.int64(11, w_row_), code.int64(6, rows_)
            (squares, r_slot), = code.accumulators(1, 2, dvec)

            def vec_at(base, row, row_step, at, vec_type):
                return code.vector_at(base, builder.add(builder.mul(row, row_step), at), vec_type)

            with cgutils.for_range(builder, code.int64(12, vectors_)) as loop:
                at = builder.mul(loop.index, code.const(lanes))
                builder.store(builder.load(code.vector_at(base_th, at, dvec), align=8), r_slot)
                with cgutils.for_range(builder, rows_v) as row_loop:
                    i = row_loop.index
                    f = builder.fpext(builder.load(vec_at(base_f, i, f_row_v, at, fvec), align=4), dvec)
                    minus_a = _splat(builder, dvec, builder.fneg(builder.load(builder.gep(base_a, [i]))))
                    code.fma_into(r_slot, minus_a, f)
                r = builder.load(r_slot)
                code.fma_into(squares, r, r)
                if with_grad:
                    r32 = builder.fptrunc(r, fvec)
                    with cgutils.for_range(builder, rows_v) as row_loop:
                        i = row_loop.index
                        d = builder.load(vec_at(base_d, i, f_row_v, at, fvec), align=4)
                        builder.store(builder.fmul(d, r32), vec_at(base_w, i, w_row_v, at, fvec), align=4)
            return _lane_sum(builder, builder.load(squares))

        return sig, codegen

    return residual


def _make_gram_tile(tile_rows: int, tile_cols: int):
    """A Numba intrinsic for one tile of a float64 Gram matrix, VECTOR // 2 lanes at a time:

        out[r·tile_cols + c] = Σ_{0 ≤ t < lanes·vectors} H[i + r·stride + t] · H[k + c·stride + t]

    for r < tile_rows, c < tile_cols (flat element offsets into a C-contiguous
    float64 H; no bounds checks): tile_rows·tile_cols lane-wise sums in
    registers, each added over its lanes by halving at the end.
    """
    lanes = VECTOR // 2

    @intrinsic
    def tile(typingctx, H, i, k, stride, vectors, out):  # pragma: no cover - compiled
        sig = types.void(H, i, k, stride, vectors, out)

        def codegen(context, builder, signature, args):
            H_arr, i_off, k_off, stride_, vectors_, out_arr = args
            code = _TileCode(context, builder, signature)
            dvec = ir.VectorType(ir.DoubleType(), lanes)
            data = code.at(0, H_arr, element=ir.DoubleType())
            stride_v = code.int64(3, stride_)

            def row_base(k_offset, offset, r):
                return builder.gep(data, [builder.add(code.int64(k_offset, offset),
                                                      builder.mul(code.const(r), stride_v))])

            rows = [row_base(1, i_off, r) for r in range(tile_rows)]
            cols = [row_base(2, k_off, c) for c in range(tile_cols)]
            acc = code.accumulators(tile_rows, tile_cols, dvec)
            with cgutils.for_range(builder, code.int64(4, vectors_)) as loop:
                at = builder.mul(loop.index, code.const(lanes))

                def load(base):
                    return builder.load(code.vector_at(base, at, dvec), align=8)

                col_vecs = [load(base) for base in cols]
                for r in range(tile_rows):
                    row_vec = load(rows[r])
                    for c in range(tile_cols):
                        code.fma_into(acc[r][c], row_vec, col_vecs[c])
            out = code.at(5, out_arr, element=ir.DoubleType())
            for r in range(tile_rows):
                for c in range(tile_cols):
                    builder.store(_lane_sum(builder, builder.load(acc[r][c])),
                                  builder.gep(out, [code.const(r * tile_cols + c)]))
            return context.get_dummy_value()

        return sig, codegen

    return tile


if _HAVE_NUMBA:
    # forward: A = X̂ packed by tiles (row step 1, t step TILE_ROWS), B = P, PANEL_WIDTH features per tile
    _forward_tile = _make_tile(TILE_ROWS, 2, 1, TILE_ROWS)
    # backward: lane-wise dot products of rows of W with coordinates of P, B_TILE_ROWS × B_TILE_COORDS
    _backward_tile = _make_dot_tile(B_TILE_ROWS, B_TILE_COORDS)
    # pass 1's elementwise step (σ, σ', float64 copy and θ-sum), true derivative and relu surrogate
    sigma_row = _make_sigma_row(False)
    sigma_row_surrogate = _make_sigma_row(True)
    # pass 2's elementwise step (r, ‖r‖² and, with the gradient, W = D ⊙ r)
    residual_row_sums = _make_residual(False)
    residual_and_weights = _make_residual(True)
    # the float64 Gram of pass 1: GRAM_TILE_ROWS × GRAM_TILE_COLS sums per tile
    gram_tile = _make_gram_tile(GRAM_TILE_ROWS, GRAM_TILE_COLS)
    # backward on the column panels Q: W (row-major, COLUMN_W_COLS columns) broadcast against the w
    # coordinates of Q[m], sums added into G
    _column_tile = _make_tile(TILE_ROWS, PANEL_WIDTH // VECTOR, COLUMN_W_COLS, 1, accumulate=True)

    @njit(nogil=True, cache=True)
    def aligned_zeros_1d(size, dtype):  # pragma: no cover - compiled
        """np.zeros(size, dtype) starting on a CACHE_LINE boundary: :func:`aligned_zeros` for compiled
        code (Numba's own arrays start on 32 bytes)."""
        raw = np.zeros(size + CACHE_LINE, dtype=dtype)
        start = (-raw.ctypes.data % CACHE_LINE) // raw.itemsize
        return raw[start:start + size]

    @njit(nogil=True, cache=True)
    def _pack_tiles_into(X, Xt):  # pragma: no cover - compiled
        """Xt = pack_tiles(X) written into an existing (⌈rows/T⌉, d, T) float32 array (T = TILE_ROWS)."""
        rows = X.shape[0]
        for s in range(Xt.shape[0]):
            for k in range(Xt.shape[1]):
                for r in range(TILE_ROWS):
                    i = s * TILE_ROWS + r
                    Xt[s, k, r] = X[i, k] if i < rows else np.float32(0.0)

    @njit(nogil=True, cache=True)
    def _forward_blocks(Xt, P, Z, block_lo, block_hi):  # pragma: no cover - compiled
        """Z[T·s + r, w·b + c] = Σ_k Xt[s, k, r] P[b, k, c] (T = TILE_ROWS, w = PANEL_WIDTH)
        for block_lo ≤ b < block_hi (Xt = pack_tiles(X̂))."""
        tiles, d, _ = Xt.shape
        d_pad, z_cols = P.shape[1], Z.shape[1]
        for b in range(block_lo, block_hi):
            for s in range(tiles):
                _forward_tile(Xt, s * d * TILE_ROWS, P, b * d_pad * PANEL_WIDTH, PANEL_WIDTH,
                              Z, s * TILE_ROWS * z_cols + b * PANEL_WIDTH, z_cols, d)

    @njit(nogil=True, cache=True)
    def _backward_blocks(W, P, G8, block_lo, block_hi, w_base):  # pragma: no cover - compiled
        """G8[i, k, l] += Σ_{block_lo ≤ b < block_hi} Σ_{h=0,1} W[i, w·b + L·h + l − w_base]
                                                              · P[b, k, L·h + l]   (L = VECTOR)

        Σ_l G8[i, k, l] then holds Σ_j W[i, j] V[j, k] over the features of
        those panels: G = W V with V read from the forward panels and W in
        its row-major layout (columns offset by w_base); W has a multiple of
        B_TILE_ROWS rows (zero rows as padding), G8 is (W's rows × d_pad × VECTOR).
        """
        rows, w_cols = W.shape
        d_pad = P.shape[1]
        for b0 in range(block_lo, block_hi, BACKWARD_CHUNK_BLOCKS):
            panels = min(BACKWARD_CHUNK_BLOCKS, block_hi - b0)
            for s in range(0, rows, B_TILE_ROWS):  # the tile's rows of W stay in L1 over all coordinates
                for k0 in range(0, d_pad, B_TILE_COORDS):
                    _backward_tile(W, s * w_cols + b0 * PANEL_WIDTH - w_base, w_cols,
                                   P, (b0 * d_pad + k0) * PANEL_WIDTH, d_pad * PANEL_WIDTH, panels,
                                   G8, (s * d_pad + k0) * VECTOR, d_pad * VECTOR)


if _HAVE_NUMBA:
    @njit(nogil=True, cache=True)
    def _column_blocks(W, Q, G, j0, count):  # pragma: no cover - compiled
        """G[i, w·m + c] += Σ_{0 ≤ t < count} W[i, t] Q[m, j0 + t, c] for every row i of W and column
        panel m (w = PANEL_WIDTH), that is G += W V[j0 : j0 + count] with Q = pack_columns(V).

        W is row-major with COLUMN_W_COLS columns (count ≤ COLUMN_W_COLS) and a multiple of TILE_ROWS
        rows; G is (W's rows × ≥ Q.shape[0]·w).  Tiles of TILE_ROWS rows × w coordinates keep their
        sums in registers over all ``count`` features (loaded from G once, stored once), reading
        Q[m, j0 : j0 + count] as one contiguous run; the row tiles are the outer loop, so each
        tile's rows of G stay in cache over the column panels.  Each entry of G gets its terms in
        feature order, one fused multiply–add each.
        """
        rows = W.shape[0]
        panels, p_pad = Q.shape[0], Q.shape[1]
        g_row = G.shape[1]
        for s in range(0, rows, TILE_ROWS):
            for m in range(panels):
                _column_tile(W, s * COLUMN_W_COLS, Q, (m * p_pad + j0) * PANEL_WIDTH, PANEL_WIDTH,
                             G, s * g_row + m * PANEL_WIDTH, g_row, count)


def _require_numba():
    if not _HAVE_NUMBA:
        raise RuntimeError("the packed-panel kernels need Numba")


def panel_matmul_forward(X: np.ndarray, P: np.ndarray, p: int) -> np.ndarray:
    """X Vᵀ (rows×p, float32) from the panels P = pack_forward(V)."""
    _require_numba()
    rows = X.shape[0]
    Xt = pack_tiles(np.asarray(X, dtype=np.float32))
    Z = aligned_zeros((Xt.shape[0] * TILE_ROWS, P.shape[0] * PANEL_WIDTH))
    _forward_blocks(Xt, P, Z, 0, P.shape[0])
    return Z[:rows, :p]


def panel_matmul_backward(W: np.ndarray, P: np.ndarray, d: int) -> np.ndarray:
    """W V (rows×d, float32) from the same panels P = pack_forward(V)."""
    _require_numba()
    rows, p = W.shape
    padded = aligned_zeros((-(-rows // TILE_ROWS) * TILE_ROWS, P.shape[0] * PANEL_WIDTH))
    padded[:rows, :p] = W
    G8 = aligned_zeros((padded.shape[0], P.shape[1], VECTOR))
    _backward_blocks(padded, P, G8, 0, P.shape[0], 0)
    return G8[:rows, :d].sum(axis=2)


def column_matmul_backward(W: np.ndarray, Q: np.ndarray, d: int) -> np.ndarray:
    """W V (rows×d, float32) from the column panels Q = pack_columns(V), COLUMN_W_COLS features at a time."""
    _require_numba()
    rows, p = W.shape
    w = PANEL_WIDTH
    rows_pad = -(-rows // TILE_ROWS) * TILE_ROWS
    G = aligned_zeros((rows_pad, Q.shape[0] * w))
    chunk = aligned_zeros((rows_pad, COLUMN_W_COLS))
    for j0 in range(0, p, COLUMN_W_COLS):
        j1 = min(j0 + COLUMN_W_COLS, p)
        chunk[:rows, :j1 - j0] = W[:, j0:j1]
        chunk[:, j1 - j0:] = 0.0
        _column_blocks(chunk, Q, G, j0, -(-(j1 - j0) // w) * w)
    return G[:rows, :d]
