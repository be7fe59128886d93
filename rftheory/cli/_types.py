"""argparse value types shared by the sub-commands (clear messages on bad numbers),
the --p/--ratio pair that sizes the random-features model, and the attack's options
(one :class:`~rftheory.attack.options.AttackOptions` record, defaults taken from it)."""
from __future__ import annotations

import argparse
import decimal
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "positive_below", "bounded_int",
           "bounded_float", "seed_int", "add_feature_count_options", "feature_count", "add_activation_option",
           "activation_spec", "add_attack_options", "attack_options", "MAX_INT", "MAX_SEED", "MAX_RESTARTS",
           "MAX_ITER", "MAX_RESEED_CANDIDATES", "MAX_OUTPUTS", "output_count"]

# Integers are at most 2^62: they must fit NumPy's int64 and SQLite's 64-bit INTEGER with room for
# the seed + 1000 of V (and a size that large is refused by the memory checks anyway).
MAX_INT = 2**62
MAX_SEED = 2**62
# Each restart is a complete attack (its cost is that of the whole run): beyond 10⁴ restarts the run
# takes days for any size that is worth attacking, and the best of them no longer improves.
MAX_RESTARTS = 10_000
# Iterations per restart: L-BFGS converges in hundreds to thousands; 10⁷ is a week of the smallest cell.
MAX_ITER = 10_000_000
# Random sphere points scored per re-seeding (an M×d array and M feature rows): 10⁶ is far beyond use.
MAX_RESEED_CANDIDATES = 1_000_000
# Outputs C of a multi-output model: Θ is p×C and each evaluation solves for C right-hand sides;
# C ≥ n already gives the span statement (C(p − n) ≥ nd for every p ≥ n + d), so 10⁴ is far beyond use.
MAX_OUTPUTS = 10_000
# Birth-death moves per restart: each is a joint re-optimisation of n̂ + 1 rows, as costly as a short attack.
MAX_MOVES = 100_000


def _integer(text: str):
    """An integer from its decimal text, also written as an integral number such as 1e6 or 2.0."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = decimal.Decimal(text.strip())
    except (decimal.InvalidOperation, ValueError):
        raise ValueError(text) from None
    if not value.is_finite() or value.adjusted() > 30 or value != value.to_integral_value():
        raise ValueError(text)  # 10^30 and more are refused as sizes anyway; no giant int is built
    return int(value)


def _number(text: str, kind, minimum: float, strict: bool, what: str, maximum: float | None = None):
    try:
        value = _integer(text) if kind is int else kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if maximum is None and kind is int:
        maximum = MAX_INT
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"expected {what} of at most {maximum:g}, got {text!r}")
    return value


def bounded_int(minimum: int, maximum: int, why: str):
    """An argparse type for integers in [minimum, maximum]; ``why`` states the reason for the bound."""
    what = "a positive integer" if minimum == 1 else "a non-negative integer" if minimum == 0 else \
        f"an integer ≥ {minimum}"
    return _bounded(int, minimum, maximum, why, False, what)


def bounded_float(minimum: float, maximum: float, why: str, strict: bool = True):
    """An argparse type for finite numbers in (minimum, maximum] ([minimum, …] unless ``strict``)."""
    what = "a positive number" if (minimum == 0 and strict) else f"a number ≥ {minimum:g}"
    return _bounded(float, minimum, maximum, why, strict, what)


def _bounded(kind, minimum, maximum, why: str, strict: bool, what: str):
    """The parser of :func:`bounded_int` and :func:`bounded_float`: ``kind`` above ``minimum`` (strictly if
    ``strict``) and at most ``maximum``, ``why`` stating the reason for the bound."""

    def parse(text: str):
        value = _number(text, kind, minimum, strict, what)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected {what} of at most {maximum:g} ({why}), got {text!r}")
        return value

    return parse


def seed_int(text: str) -> int:
    """A seed: an integer in [0, 2^62]."""
    return _number(text, int, 0, False, "a non-negative integer", MAX_SEED)


def check_coefficients(spec: str, option: str) -> None:
    """Refuse a sum 'c*name+…' with a coefficient that is not finite or beyond the bound of
    :data:`rftheory.models.activations.MAX_COEFFICIENT` (for names the registry may not know, such
    as hermite's 'step', whose own parser reads the rest)."""
    from ..models.activations import MAX_COEFFICIENT  # noqa: PLC0415

    for term in spec.split("+"):
        head, star, _ = term.partition("*")
        if not star:
            continue
        try:
            c = float(head)
        except ValueError:
            continue  # not a number: the parser's own message
        if not math.isfinite(c) or abs(c) > MAX_COEFFICIENT:
            raise ValueError(f"{option} {spec!r}: coefficient {head.strip()} must be finite with magnitude at most "
                             f"{MAX_COEFFICIENT:g} (the feature Gram scales as its square)")


def activation_spec(text: str) -> str:
    """An activation spec (a registered name or a sum such as '0.5*relu+tanh'), checked by
    :func:`rftheory.models.activations.get_activation` when parsed (unknown names, non-finite or
    out-of-range coefficients are refused here, naming the option)."""
    from ..models.activations import get_activation  # noqa: PLC0415

    if not text.strip():
        raise argparse.ArgumentTypeError("expected an activation, got an empty string")
    try:
        get_activation(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def output_count(text: str) -> int:
    """C, the number of outputs of a multi-output model: an integer in 1..MAX_OUTPUTS."""
    return bounded_int(1, MAX_OUTPUTS, "Θ has one column per output")(text)


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

    parser.add_argument("--activation", default="relu+tanh", type=activation_spec,
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

    if args.p is not None:
        return args.p
    p = args.ratio * d * n
    if not p <= MAX_INT:
        raise ValueError(f"--ratio {args.ratio:g} gives p = ratio·d·n = {p:.3g} features, beyond any memory; "
                         "use a smaller --ratio")
    return features_for_ratio(args.ratio, d, n)


def add_attack_options(parser, default=None) -> None:
    """The attack's settings, one option per field of AttackOptions except ``seed`` (each command
    has its own --seed/--seeds), with the defaults of the record ``default`` (AttackOptions()
    when None).  A boolean field that is on by default gets ``--no-<name>``, one that is off
    gets ``--<name>``."""
    from ..attack.options import DERIVATIVES, OPTIMIZERS, STRATEGIES, AttackOptions  # noqa: PLC0415

    default = AttackOptions() if default is None else default
    parser.add_argument("--restarts", type=bounded_int(1, MAX_RESTARTS, "each restart is a complete attack"),
                        metavar="R", default=default.restarts,
                        help=f"random restarts of the attack (lowest final loss wins; at most {MAX_RESTARTS})")
    parser.add_argument("--max-iter", type=bounded_int(1, MAX_ITER, "iterations per restart"), metavar="N",
                        default=default.max_iter,
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
    parser.add_argument("--reseed-candidates", metavar="M", default=default.reseed_candidates,
                        type=bounded_int(1, MAX_RESEED_CANDIDATES, "an M×d array of sphere points is scored"),
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
    parser.add_argument("--strategy", choices=STRATEGIES, default=default.strategy,
                        help="the global search when restarts end above --tol. pursuit: once the first restart has "
                             "failed, a start grown row by row by matching pursuit on θ, then re-growth moves (drop "
                             "the least useful rows, grow them back, refit all), the other restarts only if it "
                             "fails too; birthdeath: after each failed restart, birth-death moves (add a random "
                             "row, optimise all jointly, drop the least useful row); restarts: nothing (independent restarts only); "
                             "overparam: each restart starts with n̂ + k rows, pruned to n̂. Moves are kept only if "
                             "they lower the loss")
    parser.add_argument("--moves", metavar="M", default=default.moves,
                        type=bounded_int(0, MAX_MOVES, "each move re-optimises all rows"),
                        help="re-growth moves of --strategy pursuit, or birth-death moves per restart of "
                             "--strategy birthdeath")
    parser.add_argument("--extra-rows", metavar="K", default=default.extra_rows,
                        type=bounded_int(0, MAX_INT, "extra candidate rows"),
                        help="k extra rows of --strategy overparam (0: the largest k below the counting limit)")
    parser.add_argument("--merge-cos", metavar="C", default=default.merge_cos,
                        type=positive_below(1.0, "a cosine in (0, 1)"),
                        help="two rows with |cos| above this count as one (a near-duplicate pair is refused)")


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
