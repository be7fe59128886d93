r"""Hermite expansions of activations: exact where possible, certified numbers elsewhere.

Conventions (docs/design.md)
----------------------------
* ``He_k`` are the probabilists' Hermite polynomials (He_0 = 1, He_1 = x,
  He_{k+1} = x He_k − k He_{k−1}) and ``h_k = He_k / √(k!)`` the orthonormal
  ones: E[h_j(g) h_k(g)] = δ_jk for g ~ N(0, 1).
* The Hermite coefficients of σ are

      μ_k(σ) = E_{g~N(0,1)}[σ(g) h_k(g)],   σ = Σ_k μ_k h_k  in L²(N(0,1)),

  so Parseval gives Σ_k μ_k² = E[σ(g)²].
* For rows on the √d-sphere the limiting random-features kernel is
  K∞ = Σ_k μ_k² (X Xᵀ/d)^{∘k} (Mehler's formula, exact for every d).

The package's modules:

* :mod:`.polynomials` — h_k (:func:`orthonormal_hermite`) and shared constants;
* :mod:`.expansion` — the result record :class:`HermiteExpansion`;
* :mod:`.coefficients` — :func:`hermite_coefficients` and which path makes each μ_k:
  :mod:`.closed_form` (exact recurrences), :mod:`.sympy_terms` (SymPy
  expressions in closed form), :mod:`.quadrature` (adaptive quadrature,
  mpmath), :mod:`.symbolic` (``sympy.integrate`` under a time budget);
* :mod:`.spec` — what an activation argument resolves to;
* :mod:`.cache` — memory and disk caches (:func:`cache_dir`, :func:`clear_cache`);
* :mod:`.kernel` — :func:`kernel_limit`;
* :mod:`.parity` — :func:`parity_report` and the verdict words
  (``SIGN_SYMMETRIC``, ``AMBIGUOUS_AFFINE``, ``IDENTIFIABLE``, ``DEGENERATE_AFFINE``).

Importing the package loads neither SciPy, SymPy nor mpmath; each is
imported by the path that needs it.
"""
from __future__ import annotations

from .cache import cache_dir, clear_cache
from .coefficients import hermite_coefficients
from .expansion import HermiteExpansion
from .kernel import KernelLimit, kernel_limit
from .parity import AMBIGUOUS_AFFINE, DEGENERATE_AFFINE, IDENTIFIABLE, SIGN_SYMMETRIC, ParityReport, parity_report
from .polynomials import orthonormal_hermite

__all__ = [
    "HermiteExpansion",
    "ParityReport",
    "KernelLimit",
    "hermite_coefficients",
    "parity_report",
    "kernel_limit",
    "orthonormal_hermite",
    "cache_dir",
    "clear_cache",
    "SIGN_SYMMETRIC",
    "AMBIGUOUS_AFFINE",
    "IDENTIFIABLE",
    "DEGENERATE_AFFINE",
]
