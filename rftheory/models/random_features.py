"""The random features (RF) model φ(x) = σ(Vx) and its minimum-norm interpolator.

Conventions (docs/design.md):

* data X ∈ R^{n×d}, one sample per row (theory: ‖x_i‖ = √d);
* weights V ∈ R^{p×d}, entries i.i.d. N(0, 1/d);
* features Φ = σ(X Vᵀ) ∈ R^{n×p}, no 1/√p factor;
* model f(x) = φ(x)ᵀθ, trained as θ* = Φᵀ(ΦΦᵀ)⁻¹y = Φ⁺y; with C outputs
  (labels Y ∈ R^{n×C}) Θ* = Φᵀ(ΦΦᵀ)⁻¹Y ∈ R^{p×C} and f(x) = Θᵀφ(x) ∈ R^C.

V is a pure function of (seed, p, d, dtype).  Rows are produced in blocks of
``WEIGHT_BLOCK_ROWS`` rows; block b is drawn from its own counter-based
Philox stream keyed by (seed, b), so any block can be regenerated alone, bit
for bit, without the others.  Rows never depend on p: the V of a smaller p is
a prefix of the V of a larger p.  Values are drawn in float64 and cast to the
requested dtype; on a GPU they are drawn on the host and copied once, so the
CPU and GPU V agree exactly (up to the dtype cast).
"""
from __future__ import annotations

from types import ModuleType
from typing import Iterator

import numpy as np

from .activations import Activation, get_activation
from ..backend import array_namespace, resolve_backend
from ..linalg import SingularGramError, gram_solve
from ..validation import check_count, check_float_dtype, check_matrix, check_vector

__all__ = [
    "WEIGHT_BLOCK_ROWS",
    "RandomFeatures",
    "weight_block",
    "random_weights",
    "features_for_ratio",
    "SingularGramError",
]

WEIGHT_BLOCK_ROWS = 4096


def features_for_ratio(ratio: float, d: int, n: int) -> int:
    """The RF width at a given ratio p/(dn): p = max(1, round(ratio·d·n))."""
    return max(1, int(round(ratio * d * n)))


def weight_block(seed: int, block: int, d: int, rows: int | None = None) -> np.ndarray:
    """Rows [block·B, block·B + rows) of V in float64, B = WEIGHT_BLOCK_ROWS.

    Entries are N(0, 1/d) drawn from ``Philox(key=seed, counter=(0, 0, 0, block))``
    (the block index in the most significant counter word, so the streams of
    different blocks never overlap).  A
    shorter block (``rows`` < B) is the prefix of the full block, because the
    generator emits normals in row-major order.
    """
    if rows is None:
        rows = WEIGHT_BLOCK_ROWS
    if not 0 < rows <= WEIGHT_BLOCK_ROWS:
        raise ValueError(f"rows must be in 1..{WEIGHT_BLOCK_ROWS}, got {rows}")
    key = np.uint64(int(seed) % 2**64)
    # Philox advances counter word 0 first, so the block index goes in the top
    # word: block b's stream starts 2^192 draws after block b−1's and never overlaps it.
    counter = np.array([0, 0, 0, block], dtype=np.uint64)
    gen = np.random.Generator(np.random.Philox(key=key, counter=counter))
    return gen.standard_normal((rows, d)) / np.sqrt(d)


def _block_ranges(p: int, block_rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, p, block_rows):
        yield start, min(start + block_rows, p)


def random_weights(seed: int, p: int, d: int, dtype=np.float64, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of the (p×d) weight matrix V for ``seed``, as NumPy."""
    stop = p if stop is None else stop
    if not (0 <= start <= stop <= p):
        raise ValueError(f"row range {start}:{stop} outside 0:{p}")
    out = np.empty((stop - start, d), dtype=dtype)
    if stop == start:
        return out
    B = WEIGHT_BLOCK_ROWS
    for b in range(start // B, (stop - 1) // B + 1):
        lo, hi = max(start, b * B), min(stop, (b + 1) * B)
        block = weight_block(seed, b, d, rows=hi - b * B)
        out[lo - start : hi - start] = block[lo - b * B :]
    return out


def with_dtype(model, dtype, array_attr: str):
    """``model`` itself if it already computes in ``dtype``, else a shallow copy whose ``dtype`` is
    ``dtype`` and whose stored weight array ``array_attr`` (unless None) is cast to it.

    The copy shares everything else (seed, θ, activation), so it is the same map in another
    precision; a cast of float64 weights to float32 is exact rounding of each entry.
    """
    dtype = check_float_dtype(dtype)
    if dtype == model.dtype:
        return model
    other = type(model).__new__(type(model))
    other.__dict__.update(model.__dict__)
    other.dtype = dtype
    weights = getattr(model, array_attr)
    if weights is not None:
        setattr(other, array_attr, weights.astype(dtype))
    return other


class RandomFeatures:
    """Random features model φ(x) = σ(Vx) with V ~ N(0, 1/d) from a seed.

    Parameters
    ----------
    p, d : int
        Number of features and input dimension.
    activation : str or Activation
        σ; names as in :func:`rftheory.models.activations.get_activation`.
    seed : int
        Seed of V (see module docstring for the exact stream).
    dtype : numpy dtype
        Dtype of V and of the features (float32 or float64).
    store_weights : bool
        Keep V in memory (default).  If False, V is regenerated block by
        block whenever it is needed (``weight_blocks``), so memory stays
        O(block·d) for V; use this for p·d too large to hold.
    backend : "numpy" or "cupy"
        Where V lives.  Inputs of the other kind are accepted and moved.
    block_rows : int
        Rows per streamed block (a multiple of WEIGHT_BLOCK_ROWS is fastest).
    """

    def __init__(
        self,
        p: int,
        d: int,
        activation="relu+tanh",
        seed: int = 0,
        dtype=np.float64,
        store_weights: bool = True,
        backend: str | ModuleType | None = "numpy",
        block_rows: int = WEIGHT_BLOCK_ROWS * 4,
    ):
        check_count(p, "p")
        check_count(d, "d")
        check_count(seed, "seed", minimum=0)
        dtype = check_float_dtype(dtype)
        self.p, self.d, self.seed, self.dtype = int(p), int(d), int(seed), dtype
        self.activation: Activation = get_activation(activation)
        self.xp = resolve_backend(backend)
        self.block_rows = int(block_rows)
        self.store_weights = bool(store_weights)
        self._V = None
        if self.store_weights:
            self._V = self.xp.asarray(random_weights(self.seed, self.p, self.d, self.dtype))

    # -- weights ---------------------------------------------------------------

    @property
    def weights(self):
        """V (p×d) on the model's backend; regenerated if not stored."""
        if self._V is not None:
            return self._V
        return self.xp.asarray(random_weights(self.seed, self.p, self.d, self.dtype))

    def weight_blocks(self) -> Iterator[tuple[slice, object]]:
        """Yield (row slice, V[rows]) covering V; one block when V is stored.

        Streamed blocks are generated one ahead on a worker thread (NumPy's
        generators release the GIL), so regenerating block b+1 overlaps the
        products on block b.
        """
        if self._V is not None:
            yield slice(0, self.p), self._V
            return
        ranges = list(_block_ranges(self.p, self.block_rows))
        if len(ranges) == 1:
            lo, hi = ranges[0]
            yield slice(lo, hi), self.xp.asarray(random_weights(self.seed, self.p, self.d, self.dtype, lo, hi))
            return
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        def make(bounds):
            return random_weights(self.seed, self.p, self.d, self.dtype, *bounds)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(make, ranges[0])
            for k, (lo, hi) in enumerate(ranges):
                block = pending.result()
                if k + 1 < len(ranges):
                    pending = pool.submit(make, ranges[k + 1])
                yield slice(lo, hi), self.xp.asarray(block)

    def astype(self, dtype) -> "RandomFeatures":
        """The same model (same seed, V cast to ``dtype``, same θ if fitted) in another dtype.

        Used by the attack to work in float32 on a model trained in float64:
        V₃₂ = fl32(V₆₄) exactly, because V is always drawn in float64.
        """
        return with_dtype(self, dtype, "_V")

    # -- features --------------------------------------------------------------

    def _as_input(self, X, name="X"):
        X = check_matrix(X, name, cols=self.d, cols_name="d")
        return self.xp.asarray(X, dtype=self.dtype) if array_namespace(X) is not self.xp or X.dtype != self.dtype else X

    def preactivations(self, X):
        """Z = X Vᵀ (n×p)."""
        X = self._as_input(X)
        if self._V is not None:
            return X @ self._V.T
        return self.xp.concatenate([X @ Vb.T for _, Vb in self.weight_blocks()], axis=1)

    def features(self, X):
        """Φ = σ(X Vᵀ) ∈ R^{n×p}, one row per sample, no 1/√p factor."""
        X = self._as_input(X)
        if self._V is not None:
            return self.activation.fn(X @ self._V.T)
        return self.xp.concatenate([self.activation.fn(X @ Vb.T) for _, Vb in self.weight_blocks()], axis=1)

    # -- training --------------------------------------------------------------

    def fit(self, X, y, rtol: float = 1e-6):
        """Minimum-norm interpolator θ* = Φᵀ(ΦΦᵀ)⁻¹y, solved in float64.

        ``y`` is a vector (n,) — one output, θ of shape (p,) — or a matrix
        Y (n, C) — C outputs, Θ = Φᵀ(ΦΦᵀ)⁻¹Y of shape (p, C), one column per
        output, all from one Cholesky factorisation of ΦΦᵀ (each column is
        the minimum-norm interpolator of its own labels).

        Sets ``self.theta`` (dtype float64, same backend, the shape above),
        ``self.dual_coef`` ((ΦΦᵀ)⁻¹y, shape (n,) or (n, C)) and
        ``self.train_residual`` = ‖Φθ − y‖_F/‖y‖_F, and returns ``self``.

        Raises
        ------
        ValueError
            If p < n (no interpolation is possible), if y has the wrong
            length, shape or NaN, if Φ or ΦΦᵀ overflows (X far off the
            sphere's scale), or if ΦΦᵀ is numerically singular (see
            :func:`rftheory.linalg.gram_solve`).
        """
        X = self._as_input(X)
        n = X.shape[0]
        if getattr(y, "ndim", np.ndim(y)) == 2:
            y = check_matrix(y, "y", rows=n, rows_name="n (rows of X)")
            if y.shape[1] < 1:
                raise ValueError("y has no columns: give at least one output")
        else:
            y = check_vector(y, "y", length=n, length_name="n (rows of X)")
        if self.p < n:
            raise ValueError(f"p={self.p} < n={n}: the RF model cannot interpolate n samples with fewer than n features")
        xp = self.xp
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
            Phi = self.features(X).astype(np.float64)
            gram = Phi @ Phi.T
        y64 = xp.asarray(y, dtype=np.float64)
        if not bool(xp.all(xp.isfinite(gram))):  # σ(XVᵀ) or ΦΦᵀ overflowed: no eigen-solver can recover
            scale = float(xp.max(xp.abs(X)))
            where = "features σ(XVᵀ)" if not bool(xp.all(xp.isfinite(Phi))) else "feature Gram ΦΦᵀ"
            raise ValueError(
                f"fit: the {where} overflows float64 for X with entries up to {scale:.3g} in magnitude; "
                f"put the rows of X on the √d-sphere (norm √d = {self.d ** 0.5:.3g}) or rescale them"
            )
        lam = gram_solve(gram, y64, what="feature Gram ΦΦᵀ", strict=True)
        theta = Phi.T @ lam
        resid = float(xp.linalg.norm(Phi @ theta - y64) / max(float(xp.linalg.norm(y64)), 1e-300))
        if not resid < rtol:
            raise ValueError(
                f"interpolation failed: relative train residual {resid:.2e} >= {rtol:.0e}; "
                "ΦΦᵀ is too ill-conditioned for float64 (duplicate samples?)"
            )
        self.theta = theta
        self.dual_coef = lam
        self.train_residual = resid
        return self

    @property
    def outputs(self) -> int:
        """C, the number of outputs of the fitted θ: 1 for a vector θ (p,), C for Θ (p, C)."""
        theta = getattr(self, "theta", None)
        if theta is None:
            raise ValueError("model has no θ yet: call fit(X, y) first or set .theta")
        return 1 if theta.ndim == 1 else int(theta.shape[1])

    def predict(self, X):
        """f(x) = φ(x)ᵀθ for each row of X (requires :meth:`fit` or ``theta``).

        Returns (n,) for a vector θ and (n, C) for Θ (p, C).
        """
        theta = getattr(self, "theta", None)
        if theta is None:
            raise ValueError("model has no θ yet: call fit(X, y) first or set .theta")
        return self.features(X).astype(np.float64) @ theta

    def __repr__(self) -> str:
        return (
            f"RandomFeatures(p={self.p}, d={self.d}, activation={self.activation.name!r}, "
            f"seed={self.seed}, dtype={self.dtype.name}, store_weights={self.store_weights}, "
            f"backend={self.xp.__name__})"
        )

