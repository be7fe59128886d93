"""argparse value types shared by the sub-commands (clear messages on bad numbers),
the --p/--ratio pair that sizes the random-features model, and the attack's options
(one :class:`~rftheory.attack.options.AttackOptions` record, defaults taken from it)."""
from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "positive_below", "add_feature_count_options",
           "feature_count", "add_activation_option", "add_attack_options", "attack_options"]


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


def add_attack_options(parser) -> None:
    """The attack's settings, one option per field of AttackOptions except ``seed`` (each command
    has its own --seed/--seeds), with AttackOptions' defaults.  A boolean field that is on by
    default gets ``--no-<name>``, one that is off gets ``--<name>``."""
    from ..attack.options import DERIVATIVES, OPTIMIZERS, AttackOptions  # noqa: PLC0415

    default = AttackOptions()
    parser.add_argument("--restarts", type=positive_int, metavar="R", default=default.restarts,
                        help="random restarts of the attack (lowest final loss wins)")
    parser.add_argument("--max-iter", type=positive_int, metavar="N", default=default.max_iter,
                        help="iteration cap per restart (all re-seeding rounds together)")
    parser.add_argument("--tol", type=nonneg_float, metavar="L", default=default.tol,
                        help="a restart stops once the projection loss is at most this")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=default.optimizer,
                        help="lbfgs: Riemannian L-BFGS with line search (no learning rate); momentum: "
                             "heavy-ball projected gradient with fixed --lr and --momentum")
    parser.add_argument("--lr", type=positive_float, metavar="η", default=default.lr,
                        help="learning rate η of --optimizer momentum")
    parser.add_argument("--momentum", type=_momentum, metavar="β", default=default.momentum,
                        help="β of --optimizer momentum, in [0, 1)")
    _flag(parser, "reseed", default.reseed,
          on="greedy re-seeding of the least useful candidate when a restart stalls",
          off="disable greedy re-seeding of stalled candidates")
    parser.add_argument("--reseed-candidates", type=positive_int, metavar="M", default=default.reseed_candidates,
                        help="random sphere points scored when a candidate is re-seeded")
    parser.add_argument("--derivative", choices=DERIVATIVES, default=default.derivative,
                        help="σ' used in the gradient: the activation's own (true) or the ReLU surrogate 1[z>0]")
    _flag(parser, "stop_at_tol", default.stop_at_tol,
          on="skip the remaining restarts once one reaches --tol",
          off="run every restart even after one has reached --tol")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=default.dtype,
                        help="working precision of the attack's products X̂Vᵀ and (·)V (random-features models are "
                             "trained in float64 and the final loss re-evaluated in float64; the Gram, α, r and the "
                             "loss are always accumulated in float64). float32 with stored V and a relu/tanh "
                             "activation runs on the compiled panel kernels (RFTHEORY_NUMBA=0 switches them off)")
    _flag(parser, "batch_restarts", default.batch_restarts,
          on="run the restarts together, sharing each pass over V (L-BFGS, random features)",
          off="run the restarts one after the other")


def _momentum(text: str) -> float:
    value = nonneg_float(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"expected a momentum β in [0, 1), got {text!r}")
    return value


def _flag(parser, name: str, default: bool, on: str, off: str) -> None:
    option = name.replace("_", "-")
    shown = f" (default: {name}=%(default)s)"  # names the setting, not the flag, whose default is shown
    if default:
        parser.add_argument(f"--no-{option}", dest=name, action="store_false", default=True, help=off + shown)
    else:
        parser.add_argument(f"--{option}", dest=name, action="store_true", default=False, help=on + shown)


def attack_options(args, **changes):
    """The AttackOptions record of the options added by :func:`add_attack_options` (and
    ``args.seed`` when the command has one), with ``changes`` applied."""
    import dataclasses  # noqa: PLC0415

    from ..attack.options import AttackOptions  # noqa: PLC0415

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(AttackOptions) if hasattr(args, f.name)}
    values.update(changes)
    return AttackOptions(**values)
