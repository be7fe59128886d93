"""Reference computations shared by the identifiability tests: Gaussian weights, least-squares
residuals and central finite differences."""
import numpy as np


def gaussian_V(rng, p, d):
    return rng.standard_normal((p, d)) / np.sqrt(d)


def lstsq_residual(F, Phi):
    """Reference R: relative least-squares residual of each row of F on the rows of Phi."""
    coef, *_ = np.linalg.lstsq(Phi.T, F.T, rcond=None)
    return np.linalg.norm(F.T - Phi.T @ coef, axis=0) / np.linalg.norm(F, axis=1)


def fd_gradient(fun, X, h=1e-6):
    """Central differences of the per-problem values of ``fun`` (summed) w.r.t. every entry of X."""
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        E = np.zeros_like(X)
        E[idx] = h
        G[idx] = (fun(X + E)[0].sum() - fun(X - E)[0].sum()) / (2 * h)
    return G
