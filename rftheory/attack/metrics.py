"""Reconstruction error metrics (docs/design.md, "Error metrics").

Rows of the reconstruction X̂ are matched to the true rows X by the Hungarian
algorithm (scipy.optimize.linear_sum_assignment) on the sign-aware cost

    C_ij = min_{s=±1} ‖x_i − s·x̂_j‖ / ‖x_i‖,

and for the matching π three per-sample relative errors are reported:

    signed           e_i = ‖x_i − x̂_π(i)‖ / ‖x_i‖
    sign-aware       e_i = min_{s=±1} ‖x_i − s·x̂_π(i)‖ / ‖x_i‖
    entrywise-abs    e_i = ‖|x_i| − |x̂_π(i)|‖ / ‖x_i‖   (lenient; kept only to
                     compare with the original code, never the headline)

A sample counts as recovered when its sign-aware error ≤ ``threshold``
(0.05 by default).  Chance levels are the same metrics for a random guess:
points uniform on the sphere of the same radius, matched the same way.  For
isotropic data in high dimension the signed chance level is ≈ √2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..backend import to_numpy
from ..validation import check_count, check_matrix

__all__ = ["ReconstructionErrors", "match_rows", "reconstruction_errors", "chance_levels", "DEFAULT_THRESHOLD"]

DEFAULT_THRESHOLD = 0.05


def _pairwise(X, Y):
    """(‖x_i − y_j‖, ‖x_i + y_j‖) for all i, j, computed stably."""
    diff = np.linalg.norm(X[:, None, :] - Y[None, :, :], axis=2)
    summ = np.linalg.norm(X[:, None, :] + Y[None, :, :], axis=2)
    return diff, summ


def _check_pair(X, X_hat):
    X = check_matrix(to_numpy(X), "X")
    X_hat = check_matrix(to_numpy(X_hat), "X_hat")
    if X_hat.shape[1] != X.shape[1]:
        raise ValueError(f"X_hat has d={X_hat.shape[1]} columns but X has d={X.shape[1]}")
    if X_hat.shape[0] != X.shape[0]:
        raise ValueError(
            f"X_hat has n̂={X_hat.shape[0]} rows but X has n={X.shape[0]}: the metrics match "
            "samples one to one, so reconstruct with n̂ = n (or select rows first)"
        )
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError("X has an all-zero row: relative errors are undefined")
    return X.astype(np.float64), X_hat.astype(np.float64), norms


def match_rows(X, X_hat) -> np.ndarray:
    """Permutation π (array, π[i] = row of X̂ matched to x_i) minimising the
    total sign-aware relative error."""
    X, X_hat, norms = _check_pair(X, X_hat)
    diff, summ = _pairwise(X, X_hat)
    cost = np.minimum(diff, summ) / norms[:, None]
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(X.shape[0], dtype=np.intp)
    perm[rows] = cols
    return perm


@dataclass
class ReconstructionErrors:
    """Per-sample errors after matching; see the module docstring."""

    permutation: np.ndarray
    signed: np.ndarray
    sign_aware: np.ndarray
    entrywise_abs: np.ndarray
    wrong_sign: np.ndarray  # recovered only up to sign: sign-aware ok, signed not
    threshold: float

    @property
    def recovered(self) -> np.ndarray:
        return self.sign_aware <= self.threshold

    @property
    def recovered_fraction(self) -> float:
        return float(np.mean(self.recovered))

    @property
    def wrong_sign_fraction(self) -> float:
        return float(np.mean(self.wrong_sign))

    def summary(self) -> dict:
        return {
            "recovered_fraction": self.recovered_fraction,
            "wrong_sign_fraction": self.wrong_sign_fraction,
            "signed_mean": float(self.signed.mean()),
            "signed_max": float(self.signed.max()),
            "sign_aware_mean": float(self.sign_aware.mean()),
            "sign_aware_max": float(self.sign_aware.max()),
            "entrywise_abs_mean": float(self.entrywise_abs.mean()),
        }


def reconstruction_errors(X, X_hat, threshold: float = DEFAULT_THRESHOLD) -> ReconstructionErrors:
    """Match X̂ to X and return the per-sample errors (NumPy, host)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    perm = match_rows(X, X_hat)
    X, X_hat, norms = _check_pair(X, X_hat)
    Xm = X_hat[perm]
    signed = np.linalg.norm(X - Xm, axis=1) / norms
    flipped = np.linalg.norm(X + Xm, axis=1) / norms
    sign_aware = np.minimum(signed, flipped)
    entrywise = np.linalg.norm(np.abs(X) - np.abs(Xm), axis=1) / norms
    wrong_sign = (flipped <= threshold) & (flipped < signed)
    return ReconstructionErrors(perm, signed, sign_aware, entrywise, wrong_sign, float(threshold))


def chance_levels(X, trials: int = 20, seed: int = 0, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Mean metrics of random guesses: rows uniform on the sphere of radius
    ‖x_i‖ (one radius per row), matched to X exactly as a reconstruction is.

    Returns a dict with the means of ``signed``, ``sign_aware``,
    ``entrywise_abs`` and ``recovered_fraction`` over ``trials`` guesses
    (an integer ≥ 1: a mean over no guesses is undefined).
    """
    trials = check_count(trials, "trials")
    seed = check_count(seed, "seed", minimum=0)
    X = check_matrix(to_numpy(X), "X").astype(np.float64)
    rng = np.random.default_rng([seed, 0xC4A7CE])  # a stream no data generator uses
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    acc = {"signed": 0.0, "sign_aware": 0.0, "entrywise_abs": 0.0, "recovered_fraction": 0.0}
    for _ in range(trials):
        G = rng.standard_normal(X.shape)
        G *= norms / np.linalg.norm(G, axis=1, keepdims=True)
        e = reconstruction_errors(X, G, threshold)
        acc["signed"] += e.signed.mean()
        acc["sign_aware"] += e.sign_aware.mean()
        acc["entrywise_abs"] += e.entrywise_abs.mean()
        acc["recovered_fraction"] += e.recovered_fraction
    return {k: float(v / trials) for k, v in acc.items()}
