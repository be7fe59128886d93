"""Global moves of the reconstruction attack: over-parameterised starts, pruning, birth-death.

The attack minimises the projection loss L(X̂) = ‖θ − P_{rowspan Φ̂} θ‖²/‖θ‖²
over X̂ on the product of √d-spheres (docs/design.md).  Near the counting
limit p ≈ nd (wrong zero-loss X̂ up to p = nd, none from nd + 1: a row on the
sphere has d − 1 freedoms, its coefficient one more; docs/theory.md) a local
optimiser started at random stops at genuine local minima whose rows mix
several true rows; these moves change the set of rows and re-optimise all of
them jointly.  None of them reads the true X.

* Leave-one-out cost of row i: L(X̂ without row i) − L(X̂) ≥ 0 (removing a row can
  only shrink the span).  :func:`leave_one_out_losses` evaluates the k reduced
  sets in one stacked evaluation where the loss supports stacks.
* Near-duplicate pair: two rows with |cos(x̂_i, x̂_j)| > merge_cos.  With large
  opposite coefficients α_i ≈ −α_j such a pair spans ≈ φ(x̂) and the
  directional derivative of φ at x̂ — one extra feature that no sample
  provides, which lowers L without being a sample.  :func:`row_to_drop`
  removes one row of such a pair before anything else; a move never accepts a
  state holding one.
* Over-parameterised start (:func:`overparameterised_start`): n̂ + k random rows,
  optimised jointly, then pruned to n̂ rows one at a time (drop the row of least
  leave-one-out cost, re-optimise).  While (n̂ + k)d < p the global minima
  of the larger problem are the true rows plus k free rows of coefficient 0,
  a larger target for a random start; at and above that count (p ≤ (n̂ + k)d)
  wrong sets reach L = 0 as well, so k is kept below it
  (:func:`extra_rows_for`, which keeps (n̂ + k)(d + 1) < p: one feature per
  row of margin).
* Birth-death move (:func:`birth_death_move`): add one random row, optimise the
  n̂ + 1 rows jointly, drop one (as above), re-optimise; the caller accepts the
  result only if it lowers L.

``local(X, max_iter)`` is the local optimiser, returning (X, L, iterations,
stop reason); ``fun(X, with_grad=False).loss`` evaluates L (a stack (k, m, d)
gives k values when ``stacked``).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import array_namespace, to_numpy
from ..optim.sphere import random_sphere

__all__ = ["extra_rows_for", "near_duplicate_pair", "leave_one_out_losses", "row_to_drop", "prune",
           "least_useful_row", "delete_row", "overparameterised_start", "birth_death_move", "PRUNE_ITERATIONS", "MOVE_ITERATIONS"]

PRUNE_ITERATIONS = 200  # re-optimisation after each pruned row: the others are already near a minimum
MOVE_ITERATIONS = 300  # each joint re-optimisation of a birth-death move (the prototype's budget per move)


def extra_rows_for(n: int, d: int, p: int, requested: int = 0) -> int:
    """k extra rows of an over-parameterised start.

    ``requested`` > 0 is used as given (capped so that n + k ≤ p).  Otherwise
    k = min(n, ⌊p/(d + 1)⌋ − n − 1), at least 1: the largest count that keeps
    (n + k)(d + 1) < p, and no more than n (the pruning costs k
    re-optimisations).  The larger problem is identifiable up to the k free
    rows once (n + k)d < p (counting on the sphere: (n + k)(d − 1) directions
    and n + k coefficients), so the rule is conservative by one feature per
    row: it implies (n + k)d < p and can give a smaller k than that limit
    allows.  It is kept as it is so that the attack's runs stay what they were.
    """
    if requested > 0:
        return max(0, min(int(requested), p - n))
    return max(1, min(n, p // (d + 1) - n - 1, p - n))


def near_duplicate_pair(X, merge_cos: float):
    """(i, j, |cos|) of the most parallel pair of rows if |cos| > merge_cos, else None."""
    Xn = to_numpy(X).astype(np.float64)
    if Xn.shape[0] < 2:
        return None
    Xn = Xn / np.maximum(np.linalg.norm(Xn, axis=1, keepdims=True), 1e-300)
    C = np.abs(Xn @ Xn.T)
    np.fill_diagonal(C, 0.0)
    i, j = np.unravel_index(int(np.argmax(C)), C.shape)
    return (int(i), int(j), float(C[i, j])) if C[i, j] > merge_cos else None


def leave_one_out_losses(fun, X, stacked: bool) -> np.ndarray:
    """L(X̂ without row i) for every row i (float64 host array); 1 for a single row (no rows explain nothing)."""
    if X.shape[0] == 1:
        return np.ones(1)
    reduced = [delete_row(X, i) for i in range(X.shape[0])]
    if stacked:
        xp = array_namespace(X)
        return np.asarray(to_numpy(fun(xp.stack(reduced), with_grad=False).loss), dtype=np.float64)
    return np.array([fun(Y, with_grad=False).loss for Y in reduced], dtype=np.float64)


def least_useful_row(fun, X, stacked: bool) -> int:
    """The row whose removal raises the loss least (argmin of :func:`leave_one_out_losses`); 0 for one row."""
    return int(np.argmin(leave_one_out_losses(fun, X, stacked)))


def row_to_drop(fun, X, merge_cos: float, stacked: bool) -> int:
    """The row to remove: of a near-duplicate pair the one whose removal costs less; else the least useful row."""
    pair = near_duplicate_pair(X, merge_cos)
    if pair is None:
        return least_useful_row(fun, X, stacked)
    losses = leave_one_out_losses(fun, X, stacked)
    i, j, _ = pair
    return i if losses[i] <= losses[j] else j


def delete_row(X, i):
    """X̂ without row i."""
    xp = array_namespace(X)
    return X[xp.asarray([j for j in range(X.shape[0]) if j != i], dtype=np.int64)]


def prune(fun, local, X, n: int, merge_cos: float, stacked: bool, iters: int = PRUNE_ITERATIONS):
    """Drop rows (:func:`row_to_drop`) and re-optimise after each until n remain; (X, L, iterations, reason).

    Always returns n rows, also after the attack was asked to stop (every
    re-optimisation then ends after its first step).
    """
    total, L, reason = 0, math.nan, ""
    while X.shape[0] > n:
        X = delete_row(X, row_to_drop(fun, X, merge_cos, stacked))
        X, L, it, reason = local(X, iters)
        total += it
    return X, L, total, reason


def overparameterised_start(fun, local, model, n: int, k: int, rng, max_iter: int, merge_cos: float,
                            stacked: bool, first=None):
    """n + k rows (``first`` (n, d) plus k random, or all random), optimised jointly, pruned to n; (X, L, iterations, reason)."""
    xp = model.xp if hasattr(model, "xp") else np
    extra = random_sphere(k if first is not None else n + k, model.d, rng, xp, model.dtype)
    X = extra if first is None else xp.concatenate([first, extra], axis=0)
    X, L, total, reason = local(X, max_iter)
    if X.shape[0] > n:  # also when the attack was stopped: the caller needs n rows (each refit then stops at once)
        X, L, it, reason = prune(fun, local, X, n, merge_cos, stacked)
        total += it
    return X, L, total, reason


def birth_death_move(fun, local, model, X, rng, merge_cos: float, stacked: bool, iters: int = MOVE_ITERATIONS):
    """One birth-death proposal from X (n rows): (X', L', iterations, acceptable).

    ``acceptable`` is False when X' holds a near-duplicate pair; the caller
    accepts X' only if it is acceptable and L' < L(X).
    """
    xp = array_namespace(X)
    n = X.shape[0]
    Y = xp.concatenate([X, random_sphere(1, model.d, rng, xp, model.dtype)], axis=0)
    Y, _, it1, _ = local(Y, iters)
    Z = delete_row(Y, row_to_drop(fun, Y, merge_cos, stacked))
    Z, L, it2, _ = local(Z, iters)
    assert Z.shape[0] == n
    return Z, L, it1 + it2, near_duplicate_pair(Z, merge_cos) is None
