"""``rftheory reconstruct``: train an RF model on a data set, attack its θ, report.

The default is a complete embedded example (synthetic sphere data n=10,
d=20, relu+tanh, p = 20·dn) that needs no download and no GPU.

``--model mlp|resnet`` trains a torch-free network (rftheory.models.adapters) by
full-batch gradient descent instead, attacks Θ = (W_L − W_L^init)ᵀ with the
last-layer features of the trained body, and prints p_L/(dn) and total p.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ..backend import to_numpy
from ..data import digits, photos, synthetic_sphere
from ..data.photos import PHOTOS
from ..attack.metrics import DEFAULT_THRESHOLD, chance_levels, reconstruction_errors
from ..models.random_features import RandomFeatures
from ..attack.reconstruct import reconstruct
from ..attack.subspace import subspace_reconstruct
from ..attack.subspace_estimate import estimate_subspace_from_training
from ..data.subspace import synthetic_subspace
from ._resources import check_output_dir, check_rf_resources, require_memory, require_work, rf_pass
from ._types import (add_activation_option, add_attack_options, add_feature_count_options, attack_options,
                     bounded_int, feature_count, output_count, positive_float, positive_int, seed_int)

DEFAULT_D = 20  # --d of synthetic data
DIGITS_D = 64
PHOTOS_D = 3072  # --data photos: 32×32×3 images, CIFAR's resolution
DATA_D = {"digits": DIGITS_D, "photos": PHOTOS_D}  # fixed input dimension of each image set
DEFAULT_TRAIN_STEPS = 20000
DIGIT_CLASSES = (0, 1, 2, 3)  # the classes of --data digits (rftheory.data.digits' default)

HELP = "train a random-features model and reconstruct its training set from θ"


def add_parser(sub):
    p = sub.add_parser(
        "reconstruct",
        help=HELP,
        description=(
            "Train the random-features model f(x) = σ(Vx)ᵀθ (V ~ N(0,1/d), θ = min-norm "
            "interpolator) on a data set, then run the reconstruction attack: minimise the "
            "projection loss L(X̂) = ‖θ − P_rowspan σ(X̂Vᵀ) θ‖²/‖θ‖² over X̂ on the √d-sphere, "
            "knowing only θ, V's seed, σ and n. Prints the configuration, p/(dn), the train "
            "residual, the final loss, and the recovered fraction and errors beside chance "
            "level. Loss ≈ 0 alone is not success: below p ≈ dn wrong X̂ reach it too."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", choices=("synthetic", "digits", "photos"), default="synthetic",
                   help="synthetic: rows uniform on the √d-sphere with linear labels; digits: "
                        "scikit-learn's bundled 8×8 digits (d=64), pixel-standardised, rows on the √d-sphere; "
                        "photos: scikit-image's bundled colour photographs at 32×32×3 (d=3072; random 128-px "
                        f"crops when n > {len(PHOTOS)}), pixel-standardised, rows on the √d-sphere (use a small "
                        "--ratio, e.g. 2: V has p·d entries)")
    p.add_argument("--n", type=positive_int, default=10, help="number of training samples")
    p.add_argument("--d", type=positive_int, default=None,
                   help=f"input dimension, at least 2 (synthetic only, default {DEFAULT_D}; digits have d={DIGITS_D})")
    add_feature_count_options(p, ratio_default=20.0)
    add_activation_option(p)
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the data, of V (seed+1000) and of the attack")
    p.add_argument("--outputs", type=output_count, default=1, metavar="C",
                   help="outputs of the model: synthetic data get C independent linear labels (Θ is p×C, the "
                        "attack holds C vectors of the feature span: counting needs C(p − n) ≥ nd); digits "
                        "accept 1 (scalar labels) or 4, the number of classes (one-hot labels)")
    p.add_argument("--n-guess", type=positive_int, default=None,
                   help="n̂, the attacker's guess of n (default: the true n); metrics need n̂ = n")
    add_attack_options(p.add_argument_group("attack (rftheory.attack.options.AttackOptions; --seed seeds it)"))
    p.add_argument("--stream-weights", action="store_true",
                   help="do not store V; regenerate it block by block from the seed (for p·d beyond memory)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array backend (cupy needs a GPU)")
    p.add_argument("--threshold", type=positive_float, default=DEFAULT_THRESHOLD,
                   help="a sample is recovered when its sign-aware relative error is at most this")
    p.add_argument("--save-images", metavar="DIR", default=None,
                   help="image data only (e.g. --data digits): write DIR/<data>_reconstruction.png (originals "
                        "above, Hungarian-matched sign-corrected reconstructions below, errors annotated, each "
                        "picture min-max scaled) and print per-image PSNR/SSIM")
    p.add_argument("--subspace", choices=("none", "auto", "known"), default="none",
                   help="search X̂ = Z Uᵀ inside an r-dim subspace U (rows of norm √d): known = the true "
                        "subspace of --data synthetic (rank --subspace-rank); auto = estimated from ΔW₁ of a "
                        "two-layer net (no bias, no weight decay, GD from a seeded init) trained on the same "
                        "data, r by the largest singular-value gap; none = search all of R^d")
    p.add_argument("--subspace-rank", type=positive_int, default=None,
                   help="synthetic data only: put the rows in a random r-dim subspace (default 4 when "
                        "--subspace is known/auto, full-dimensional data otherwise)")
    _add_network_arguments(p)
    p.set_defaults(func=run)
    return p


def _check_options(args) -> None:
    """Refuse options that the chosen data or model would ignore, and sizes that cannot run, before
    any data is drawn."""
    if args.data in DATA_D and args.d is not None:
        raise ValueError(f"--d {args.d} applies to --data synthetic only (the {args.data} have d={DATA_D[args.data]}); "
                         "drop --d")
    if args.d is None:
        args.d = DATA_D.get(args.data, DEFAULT_D)
    if args.data == "synthetic" and args.d < 2:
        raise ValueError(f"--d {args.d}: expected d ≥ 2 (the sphere in one dimension is the two points ±1, so the "
                         "samples repeat and the Gram is singular)")
    model = getattr(args, "model", "rf")
    for option, dest, models in (("--width", "width", ("mlp",)), ("--channels", "channels", ("resnet",)),
                                 ("--blocks", "blocks", ("resnet",)), ("--pool", "pool", ("resnet",)),
                                 ("--train", "train", ("mlp", "resnet")),
                                 ("--train-tol", "train_tol", ("mlp", "resnet")),
                                 ("--train-steps", "train_steps", ("mlp", "resnet")),
                                 ("--train-lr", "train_lr", ("mlp", "resnet"))):
        if getattr(args, dest, None) is not None and model not in models:
            raise ValueError(f"{option} applies to --model {'/'.join(models)} only, not --model {model}")
    if getattr(args, "save_images", None) is not None:
        if args.data not in DATA_D:
            raise ValueError(f"--save-images needs image data (--data digits or photos); --data {args.data} rows are "
                             "not images")
        check_output_dir(args.save_images, "--save-images")


def _check_resources(args, n: int, d: int, p: int) -> None:
    """Memory and work of the configuration from its sizes (rftheory.cli._resources)."""
    n_hat = max(n, args.n_guess or n)
    itemsize = 4 if args.dtype == "float32" else 8
    if getattr(args, "model", "rf") == "rf":
        check_rf_resources(n_hat, d, p, what=f"RF p={p}, d={d}, n={n_hat}", stored=not args.stream_weights,
                           attack_itemsize=itemsize, restarts=args.restarts, batch_restarts=args.batch_restarts,
                           can_stream=True, size_options="--n or --p/--ratio")
        return
    # networks: weights (and their initial copy and gradient), the activations of every layer for the n
    # samples in training, and the attack's n̂×p_L features per restart; p_L is the width (MLP) or c·H·W
    if args.model == "mlp":
        width = args.width or p
        weights = 3.0 * width * (d + 2)
        acts = 6.0 * n_hat * width
        p_L = width
        what = f"MLP width {width}, d={d}, n={n_hat}"
        remedy = "use a smaller --width (or --p/--ratio)"
    else:
        hw = 1 if args.data == "synthetic" else 64
        c = args.channels or (max(1, -(-p // hw)) if (args.pool or "flatten") == "flatten" else p)
        blocks = args.blocks if args.blocks is not None else 1
        weights = 3.0 * c * c * 9 * (2 * blocks + 1)
        acts = 3.0 * n_hat * c * hw * (2 * blocks + 2)
        p_L = c * hw if (args.pool or "flatten") == "flatten" else c
        what = f"ResNet c={c}, {blocks} block(s), n={n_hat}"
        remedy = "use fewer --channels (or a smaller --p/--ratio)"
    need = 8.0 * (weights + acts) + 3.0 * itemsize * n_hat * p_L * (args.restarts if args.batch_restarts else 1)
    require_memory(need, what, remedy)
    require_work(rf_pass(n_hat, d, p_L) + weights, f"{what}: one pass over the network", remedy,
                 limit=1e13)


def run(args) -> int:
    start = time.perf_counter()
    _check_options(args)
    if args.data == "digits":
        n_max = 1797
        if args.n > n_max:
            raise ValueError(f"--n {args.n}: the digits data set has {n_max} images")
    n0, d0 = args.n, args.d
    _check_resources(args, n0, d0, feature_count(args, d0, n0))
    outputs = getattr(args, "outputs", 1)
    if args.data == "digits":
        if outputs not in (1, len(DIGIT_CLASSES)):
            raise ValueError(f"--outputs {outputs}: the digits have {len(DIGIT_CLASSES)} classes {DIGIT_CLASSES}; give "
                             f"--outputs 1 (scalar labels) or {len(DIGIT_CLASSES)} (one-hot labels, one output per class)")
        ds = digits(args.n, classes=DIGIT_CLASSES, seed=args.seed, one_hot=outputs > 1)
    elif args.data == "photos":
        if outputs != 1:
            raise ValueError(f"--outputs {outputs}: --data photos has one label per image; give --outputs 1")
        ds = photos(args.n, seed=args.seed)
    elif _subspace_data_rank(args) is not None:
        if outputs > 1:
            raise ValueError("--outputs > 1 applies to full-dimensional synthetic data or digits, not to "
                             "--subspace/--subspace-rank data")
        ds = synthetic_subspace(args.n, args.d, _subspace_data_rank(args), seed=args.seed)
    else:
        ds = synthetic_sphere(args.n, args.d, seed=args.seed, outputs=outputs if outputs > 1 else None)
    if getattr(args, "model", "rf") != "rf":
        return _run_network(args, ds, start)
    n, d = ds.X.shape
    p = feature_count(args, d, n)
    n_guess = args.n_guess or n
    options = attack_options(args)
    model = RandomFeatures(
        p, d, args.activation, seed=args.seed + 1000, dtype=np.float64,
        store_weights=not args.stream_weights, backend=args.backend,
    )
    print("rftheory reconstruct")
    print(f"  data        {ds.description}")
    print(f"  model       RF p={p}, d={d}, σ={model.activation.name}, V seed={model.seed}, attack dtype={options.dtype}, "
          f"V {'streamed' if args.stream_weights else 'stored'}, backend={args.backend}")
    print(f"  p/(dn)      {p / (d * n):.3g}   (threshold of the law ≈ 1; p/n = {p / n:.3g})")
    model.fit(ds.X, ds.y)
    print(f"  train       min-norm interpolator, relative train residual {model.train_residual:.2e}")
    if outputs > 1:
        from ..theory.identifiability import counting_limits, counting_ratio  # noqa: PLC0415

        C = model.outputs
        lim = counting_limits(n, d, p, C)
        print(f"  outputs     Θ is {p}×{C}: counting on the sphere C(p − n) = {lim['equations']} vs n(d − 1) = "
              f"{lim['unknowns']} (identifiable by counting for p > n + n(d − 1)/C = {lim['boundary']:.4g}, "
              f"p/(dn) > 1/d + (d − 1)/(dC) = {counting_ratio(d, C):.3g})")
    attack = _subspace_attack(args, ds, model, n)
    print(f"  attack      n̂={n_guess}, {options.describe()}")

    progress = _progress_printer(options)

    result = _diverged_is_an_error(args, lambda: attack(model.theta, model, n_guess, options=options,
                                                          progress=progress))
    _print_outcome(result)
    if n_guess != n:
        print(f"  metrics     skipped: n̂={n_guess} ≠ n={n} (one-to-one matching needs n̂ = n)")
        if getattr(args, "save_images", None):
            print("  images      not written: --save-images matches samples one to one and needs n̂ = n")
    else:
        print_errors(ds.X, result.X_hat, args.threshold, args.seed)
        if getattr(args, "save_images", None):
            from ..data.images import compare_images, save_image_grid  # noqa: PLC0415

            cmp = compare_images(ds.X, to_numpy(result.X_hat), ds.image_shape, args.threshold)
            png = save_image_grid(
                f"{args.save_images}/{args.data}_reconstruction.png", cmp,
                title=f"{ds.description}; RF p={p} (p/(dn)={p / (d * n):.3g}), σ={model.activation.name}, L={result.loss:.1e}",
            )
            s = cmp.summary()
            print(f"  images      PSNR mean {s['psnr_mean']:.2f} dB (min {s['psnr_min']:.2f}), SSIM mean "
                  f"{s['ssim_mean']:.4f} (min {s['ssim_min']:.4f}); data space, range of each original, matched + sign-corrected")
            print(f"  saved       {png}")
    print(f"  wall time   {time.perf_counter() - start:.1f} s")
    return 0


def _subspace_data_rank(args):
    """r of the synthetic low-rank data (--subspace-rank; 4 by default for --subspace known/auto), or None."""
    sub = getattr(args, "subspace", "none")
    rank = getattr(args, "subspace_rank", None)
    if args.data != "synthetic":
        if rank is not None:
            raise ValueError(f"--subspace-rank applies to --data synthetic only, not --data {args.data}")
        return None
    if rank is None and sub in ("known", "auto"):
        rank = min(4, args.d)
    if rank is not None and rank > args.d:
        raise ValueError(f"--subspace-rank {rank} exceeds --d {args.d}")
    return rank


def _subspace_attack(args, ds, model, n):
    """Print the --subspace choice and return the attack callable (reconstruct or its subspace form)."""
    sub = getattr(args, "subspace", "none")
    _subspace_data_rank(args)  # validates --subspace-rank for non-synthetic data
    true_basis = getattr(ds, "basis", None)
    if sub == "none":
        return reconstruct
    if sub == "known":
        if true_basis is None:
            raise ValueError(f"--subspace known needs data with a known subspace (--data synthetic); "
                             f"--data {args.data} has none: use --subspace auto")
        basis = true_basis
        print(f"  subspace    known: the true {basis.shape[1]}-dim subspace; search X̂ = √(d/r)·Z Uᵀ, "
              f"p/(rn) = {model.p / (basis.shape[1] * n):.3g}")
    else:
        est, net = estimate_subspace_from_training(ds.X, ds.y, activation=args.activation, seed=args.seed,
                                                   true_basis=true_basis)
        basis = est.basis
        angle = "" if est.max_angle is None else f"; largest principal angle to the true subspace {est.max_angle:.2e} rad"
        print(f"  subspace    auto: r̂={est.rank} by the largest singular-value gap of ΔW₁ (s_r̂/s_r̂+1 = {est.gap:.3g})"
              f"{angle}; p/(r̂n) = {model.p / (est.rank * n):.3g}")
        print(f"  ΔW₁ from    {net.description}")

    def attack(theta, model, k, **kwargs):
        return subspace_reconstruct(theta, model, model.xp.asarray(basis), k, **kwargs)

    return attack


# ---- --model mlp|resnet (rftheory.models.adapters) ---------------------------------------------------

def _add_network_arguments(p):
    net = p.add_argument_group(
        "networks (--model mlp|resnet)",
        "Train a torch-free network (rftheory.models.adapters) by full-batch gradient descent on the squared loss "
        "(one-hot targets for --data digits, y for synthetic data) from a seeded init (seed+1000), then attack "
        "Θ = (W_L − W_L^init)ᵀ with the last-layer features h(x) of the trained body (multi-output head: one "
        "n×n Gram solve for all outputs). --p/--ratio set the last-layer feature count p_L (the MLP width; "
        "the ResNet's channels ⌈p_L/(H·W)⌉ with --pool flatten); --activation is σ of every layer.",
    )
    net.add_argument("--model", choices=("rf", "mlp", "resnet"), default="rf",
                     help="rf: random features, min-norm interpolator; mlp: two-layer MLP W₂σ(W₁x+b₁)+b₂; "
                          "resnet: 3×3 conv stem, residual blocks of two 3×3 convs, linear head "
                          "(synthetic rows are read as 1×1×d images)")
    net.add_argument("--width", type=positive_int, default=None,
                     help="MLP hidden width m = p_L (unset: from --p/--ratio); --model mlp only")
    net.add_argument("--channels", type=positive_int, default=None,
                     help="ResNet channels c (unset: ⌈p_L/(H·W)⌉ with --pool flatten, p_L with --pool avg); "
                          "--model resnet only")
    net.add_argument("--blocks", type=int, choices=range(0, 9), default=None, metavar="B",
                     help="ResNet residual blocks of two 3×3 convs (0..8, default 1)")
    net.add_argument("--pool", choices=("flatten", "avg"), default=None,
                     help="ResNet last-layer features: the flattened map (p_L = c·H·W, the default) or its global "
                          "average (p_L = c)")
    net.add_argument("--train", choices=("all", "last"), default=None,
                     help="GD on all layers (the default), or on the head only (the body stays at its random init)")
    net.add_argument("--train-tol", type=positive_float, default=None,
                     help="GD stops once the relative train loss ‖F−Y‖²/‖Y‖² is at most this (default 1e-8)")
    net.add_argument("--train-steps", default=None,
                     type=bounded_int(1, 100_000_000, "full-batch gradient steps"),
                     help=f"cap on GD steps (default {DEFAULT_TRAIN_STEPS})")
    net.add_argument("--train-lr", type=positive_float, default=None,
                     help="initial GD step (unset: n/λ_max of the head's Gram [H,1][H,1]ᵀ); halved whenever "
                          "a step does not lower the loss")
    net.add_argument("--reseed", dest="net_reseed", action="store_true",
                     help="networks only: turn greedy re-seeding on (off by default for networks: when all "
                          "layers train, the loss at the true X is a small floor > 0, and re-seeding at a stall "
                          "above --tol replaces correct candidates)")


def _run_network(args, ds, start) -> int:
    """--model mlp|resnet: train the adapter by GD, attack ΔW_L, print as the RF case."""
    from ..models.adapters import SmallResNet, TwoLayerMLP, one_hot_targets  # noqa: PLC0415
    from ..attack.loss import projection_loss  # noqa: PLC0415
    from ..attack.options import network_options  # noqa: PLC0415

    if getattr(args, "subspace", "none") != "none":
        raise ValueError("--subspace applies to --model rf only")
    if getattr(args, "save_images", None):
        raise ValueError("--save-images applies to --model rf only")
    if args.derivative != "true":
        raise ValueError("--derivative relu is defined for --model rf only; networks use the true σ'")
    if args.stream_weights:
        raise ValueError("--stream-weights applies to --model rf only")
    blocks = 1 if args.blocks is None else args.blocks
    pool = args.pool or "flatten"
    train = args.train or "all"
    train_tol = 1e-8 if args.train_tol is None else args.train_tol
    train_steps = DEFAULT_TRAIN_STEPS if args.train_steps is None else args.train_steps
    n, d = ds.X.shape
    p_target = feature_count(args, d, n)
    if ds.y.ndim == 2:
        Y = ds.y
        targets = f"one-hot, C={Y.shape[1]} classes" if args.data == "digits" else f"Y, C={Y.shape[1]} linear outputs"
    elif args.data == "digits":
        Y, _ = one_hot_targets(ds.y)
        targets = f"one-hot, C={Y.shape[1]} classes"
    else:
        Y, targets = ds.y[:, None], "y, C=1 output"
    # networks take NETWORK_OPTIONS (the API's record for them) for every option left at its default;
    # re-seeding is off there unless --reseed (see its help)
    options = network_options(attack_options(args))
    if args.net_reseed:
        options = options.replace(reseed=True)
    dtype = np.dtype(options.dtype)
    seed = args.seed + 1000
    if args.model == "mlp":
        model = TwoLayerMLP(d, args.width or p_target, Y.shape[1], args.activation, seed=seed, dtype=dtype,
                            backend=args.backend)
    else:
        shape = (1,) + tuple(ds.image_shape) if ds.image_shape is not None else (1, 1, d)
        hw = shape[1] * shape[2]
        channels = args.channels or (max(1, math.ceil(p_target / hw)) if pool == "flatten" else p_target)
        model = SmallResNet(shape, channels, blocks, Y.shape[1], args.activation, pool=pool, seed=seed,
                            dtype=dtype, backend=args.backend)
    n_guess = args.n_guess or n
    p_L = model.p
    print("rftheory reconstruct")
    print(f"  data        {ds.description}")
    print(f"  model       {model.describe()}, dtype={options.dtype}, backend={args.backend}")
    print(f"  p_L/(dn)    {p_L / (d * n):.3g}   (threshold of the law ≈ 1; p_L = {p_L} last-layer features, "
          f"p_L/n = {p_L / n:.3g}); total p = {model.n_params} (p/(dn) = {model.n_params / (d * n):.3g})")
    report = model.fit(ds.X, model.xp.asarray(Y), train=train, lr=args.train_lr, tol=train_tol,
                       max_steps=train_steps)
    print(f"  train       {report.summary()}, targets {targets}, {report.wall_time:.1f} s")
    theta = model.delta_theta()
    floor = projection_loss(model.xp.asarray(ds.X, dtype=model.dtype), theta, model, with_grad=False).loss
    print(f"  Θ           (W_L − W_L^init)ᵀ, {theta.shape[0]}×{theta.shape[1]}; loss at the true X {floor:.2e} "
          f"(reference only: > 0 when the body moved during training)")
    print(f"  attack      n̂={n_guess}, {options.describe()}")

    progress = _progress_printer(options)

    result = _diverged_is_an_error(args, lambda: reconstruct(theta, model, n_guess, options, progress=progress))
    _print_outcome(result)
    if n_guess != n:
        print(f"  metrics     skipped: n̂={n_guess} ≠ n={n} (one-to-one matching needs n̂ = n)")
    else:
        print_errors(ds.X, result.X_hat, args.threshold, args.seed)
    print(f"  wall time   {time.perf_counter() - start:.1f} s")
    return 0


def _progress_printer(options):
    """progress(r, loss) for reconstruct: one line per restart, and one per pursuit step (r = restarts): its
    start, then every re-growth move, with the loss of the state kept."""
    steps = [0]

    def progress(r, loss):
        if r < options.restarts:
            what = f"restart {r + 1}/{options.restarts}"
        else:
            what = ("pursuit start (the restart ended above --tol)" if steps[0] == 0
                    else f"pursuit move {steps[0]}/{options.moves}")
            steps[0] += 1
        print(f"    {what}: loss {loss:.3e}", flush=True)

    return progress


def _print_outcome(result) -> None:
    """The attack's 'loss' and 'stopped' lines (random features and networks alike)."""
    print(f"  loss        {result.loss:.3e} after {result.iterations} iterations ({result.evaluations} evaluations, "
          f"{result.reseeds} re-seeds, {_moves_words(result)}{result.wall_time:.1f} s)")
    print(f"  stopped     {result.stop_reason}; {result.verdict_words()}")


def _moves_words(result) -> str:
    """'k accepted <strategy> proposals, ' when the global strategy changed X̂, else ''."""
    k = result.moves
    return f"{k} accepted {result.options.strategy} proposal{'' if k == 1 else 's'}, " if k else ""


def _diverged_is_an_error(args, attack):
    """Run the attack; non-finite iterates (a step size too large for --optimizer momentum) become a
    one-line error in the user's terms instead of an internal array message."""
    try:
        return attack()
    except (FloatingPointError, ValueError) as exc:
        if not (isinstance(exc, FloatingPointError) or "non-finite" in str(exc)):
            raise
        if args.optimizer == "momentum":
            raise ValueError(f"the attack diverged with --lr {args.lr:g} (--optimizer momentum); lower --lr") from None
        raise ValueError("the attack diverged (its iterates became non-finite); check the sizes and --activation") \
            from None


def print_errors(X, X_hat, threshold: float, seed: int) -> None:
    """Recovered fraction, wrong signs and the three error metrics beside chance level."""
    n = X.shape[0]
    errs = reconstruction_errors(X, to_numpy(X_hat), threshold)
    chance = chance_levels(X, seed=seed, threshold=threshold)
    print(f"  recovered   {errs.recovered.sum()}/{n} = {errs.recovered_fraction:.0%} "
          f"(sign-aware error ≤ {threshold:g}); chance {chance['recovered_fraction']:.0%}")
    print(f"  wrong sign  {errs.wrong_sign.sum()}/{n} recovered only as −x_i")
    print("  errors      mean (max)        chance (random sphere points, matched the same way)")
    print(f"    signed         {errs.signed.mean():.4f} ({errs.signed.max():.4f})   {chance['signed']:.4f}")
    print(f"    sign-aware     {errs.sign_aware.mean():.4f} ({errs.sign_aware.max():.4f})   {chance['sign_aware']:.4f}")
    print(f"    entrywise-abs  {errs.entrywise_abs.mean():.4f} ({errs.entrywise_abs.max():.4f})   "
          f"{chance['entrywise_abs']:.4f}   (lenient metric of the original code)")
