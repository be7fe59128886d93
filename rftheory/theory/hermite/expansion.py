r"""The result record of a Hermite expansion: :class:`HermiteExpansion`.

μ_k(σ) = E_{g~N(0,1)}[σ(g) h_k(g)] for k = 0..K, with per-k provenance and
stated error bounds, and E[σ(g)²] = Σ_k μ_k² (Parseval, all k) computed
independently, so that E[σ²] − Σ_{k≤K} μ_k² is the truncation tail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .polynomials import EPS, check_order

__all__ = ["HermiteExpansion", "make_expansion", "readonly_array"]


def readonly_array(a) -> np.ndarray:
    """A float64 copy of ``a`` that cannot be written (the record is immutable)."""
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class HermiteExpansion:
    """Hermite coefficients μ_0..μ_K of an activation σ, with provenance.

    Attributes
    ----------
    activation : str
        Display name of σ.
    coefficients : ndarray, shape (K+1,)
        μ_k = E[σ(g) h_k(g)], h_k = He_k/√(k!), float64, read-only.
    methods : tuple of str
        How each μ_k was produced ("closed-form", "sympy-exact",
        "sympy-integrate", "quad", "mpmath", "sum-of-parts[...]"; see the
        module docstring).
    exact : tuple
        Per k a SymPy expression equal to μ_k, or None where no closed form
        was computed (always None with ``exact=False``).
    error_bounds : ndarray, shape (K+1,)
        Stated absolute error bound of each float μ_k (an estimate for the
        quadrature paths, see the module docstring).
    second_moment : float
        E[σ(g)²] = Σ_k μ_k² (all k), computed independently of the μ_k.
    second_moment_error : float
        Stated absolute error of ``second_moment``.
    second_moment_method : str
    second_moment_exact : sympy expression or None
    """

    activation: str
    coefficients: np.ndarray
    methods: tuple
    exact: tuple
    error_bounds: np.ndarray
    second_moment: float
    second_moment_error: float
    second_moment_method: str
    second_moment_exact: object = None

    @property
    def order(self) -> int:
        """K: the highest order held."""
        return len(self.coefficients) - 1

    @property
    def partial_sum(self) -> float:
        """Σ_{k≤K} μ_k²."""
        c = self.coefficients
        return float(np.dot(c, c))

    @property
    def truncation_error(self) -> float:
        """E[σ²] − Σ_{k≤K} μ_k² = Σ_{k>K} μ_k² (≥ 0 up to ``truncation_error_bound``).

        This bounds the entrywise error of the order-K kernel on the sphere.
        """
        return float(self.second_moment - self.partial_sum)

    @property
    def truncation_error_bound(self) -> float:
        """Error bound of :attr:`truncation_error` from the stated numeric errors.

        |Ê − E| + Σ_k (2|μ̂_k| b_k + b_k²), b_k = ``error_bounds[k]``.
        """
        c, b = np.abs(self.coefficients), self.error_bounds
        return float(self.second_moment_error + np.sum(2 * c * b + b * b) + 4 * EPS * abs(self.second_moment))

    def truncate(self, order: int) -> "HermiteExpansion":
        """The same expansion restricted to μ_0..μ_order (order ≤ self.order)."""
        order = check_order(order)
        if order > self.order:
            raise ValueError(f"expansion holds order {self.order} < requested {order}")
        if order == self.order:
            return self
        return HermiteExpansion(
            activation=self.activation,
            coefficients=self.coefficients[: order + 1],
            methods=self.methods[: order + 1],
            exact=self.exact[: order + 1],
            error_bounds=self.error_bounds[: order + 1],
            second_moment=self.second_moment,
            second_moment_error=self.second_moment_error,
            second_moment_method=self.second_moment_method,
            second_moment_exact=self.second_moment_exact,
        )

    def kernel_coefficients(self) -> np.ndarray:
        """μ_k², the weights of (XXᵀ/d)^{∘k} in the limiting kernel."""
        return self.coefficients**2


def make_expansion(spec, vals, methods, exact, bounds, e2, e2err, e2method, e2exact=None) -> HermiteExpansion:
    """A :class:`HermiteExpansion` for ``spec.name`` (exact zeros keep a zero bound)."""
    vals = np.asarray(vals, dtype=np.float64)
    bounds = np.where(vals == 0, np.where(np.asarray(bounds) < 1e-300, 0.0, bounds), bounds)
    return HermiteExpansion(
        activation=spec.name,
        coefficients=readonly_array(vals),
        methods=tuple(methods),
        exact=tuple(exact),
        error_bounds=readonly_array(bounds),
        second_moment=float(e2),
        second_moment_error=float(e2err),
        second_moment_method=e2method,
        second_moment_exact=e2exact,
    )
