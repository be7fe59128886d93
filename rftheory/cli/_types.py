"""argparse value types shared by the sub-commands (clear messages on bad numbers),
and the --p/--ratio pair that sizes the random-features model."""
from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "positive_below", "add_feature_count_options",
           "feature_count", "add_activation_option"]


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


def positive_below(limit: float, what: str):
    """An argparse type for numbers in (0, limit); ``what`` names that interval in the error message."""

    def parse(text: str) -> float:
        value = positive_float(text)
        if not value < limit:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def add_activation_option(parser) -> None:
    """--activation: one σ by name, or a weighted sum of them."""
    from ..models.activations import known_activations  # noqa: PLC0415

    parser.add_argument("--activation", default="relu+tanh",
                        help=f"σ: one of {', '.join(known_activations())}, or a sum such as '0.5*relu+tanh'")


def add_feature_count_options(parser, ratio_default: float) -> None:
    """--p (an explicit number of features) or --ratio (p as a multiple of d·n), not both."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--p", type=positive_int, default=None, help="number of random features (overrides --ratio)")
    size.add_argument("--ratio", type=positive_float, default=ratio_default,
                      help="p as a multiple of d·n: p = ratio·d·n")


def feature_count(args, d: int, n: int) -> int:
    """p from the options of :func:`add_feature_count_options`."""
    from ..models.random_features import features_for_ratio  # noqa: PLC0415

    return args.p if args.p is not None else features_for_ratio(args.ratio, d, n)
