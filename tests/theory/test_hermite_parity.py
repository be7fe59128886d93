"""Tests for rftheory.theory.hermite.parity: the parity verdict from the μ_k."""
from __future__ import annotations

import pytest
import sympy as sp

from rftheory.theory.hermite import (
    AMBIGUOUS_AFFINE,
    DEGENERATE_AFFINE,
    IDENTIFIABLE,
    SIGN_SYMMETRIC,
    hermite_coefficients,
    parity_report,
)


pytestmark = pytest.mark.usefixtures("private_hermite_cache")


# --- parity report --------------------------------------------------------------


@pytest.mark.parametrize(
    "name,prediction",
    [
        ("relu", AMBIGUOUS_AFFINE),
        ("leaky_relu", AMBIGUOUS_AFFINE),
        ("abs", SIGN_SYMMETRIC),
        ("tanh", SIGN_SYMMETRIC),
        ("erf", SIGN_SYMMETRIC),
        ("sigmoid", AMBIGUOUS_AFFINE),
        ("softplus", AMBIGUOUS_AFFINE),
        ("gelu", AMBIGUOUS_AFFINE),
        ("silu", AMBIGUOUS_AFFINE),
        ("step", AMBIGUOUS_AFFINE),
        ("relu+tanh", IDENTIFIABLE),
        ("0.5*relu+2*erf", IDENTIFIABLE),
    ],
)
def test_parity_predictions(name, prediction):
    rep = parity_report(name, 12)
    assert rep.prediction == prediction, rep
    assert rep.order == 12


def test_parity_details():
    relu = parity_report("relu", 10)
    assert relu.even_nonzero == (2, 4, 6, 8, 10) and relu.odd_nonzero == ()
    assert relu.mu0_nonzero and relu.mu1_nonzero
    sig = parity_report("sigmoid", 10)
    assert sig.even_nonzero == () and sig.mu0_nonzero and sig.odd_nonzero[:2] == (3, 5)
    x = sp.Symbol("x")
    assert parity_report(3 * x + 1, 6).prediction == DEGENERATE_AFFINE
    # an expansion can be passed directly
    e = hermite_coefficients("relu+tanh", 10)
    assert parity_report(e).prediction == IDENTIFIABLE
    with pytest.raises(ValueError):
        parity_report("relu", 4, tol=-1)
