"""argparse value types shared by the sub-commands (clear messages on bad numbers)."""
from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float"]


def _number(text: str, kind, minimum: float, strict: bool, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    return _number(text, int, 1, False, "a positive integer")


def nonneg_int(text: str) -> int:
    """An integer ≥ 0."""
    return _number(text, int, 0, False, "a non-negative integer")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, 0.0, True, "a positive number")


def nonneg_float(text: str) -> float:
    """A finite number ≥ 0."""
    return _number(text, float, 0.0, False, "a non-negative number")
