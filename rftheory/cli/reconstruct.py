"""``rftheory reconstruct``: train an RF model on a data set, attack its θ, report.

The default is a complete embedded example (synthetic sphere data n=10,
d=20, relu+tanh, p = 20·dn) that needs no download and no GPU.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ..activations import known_activations
from ..backend import to_numpy
from ..data import digits, synthetic_sphere
from ..metrics import DEFAULT_THRESHOLD, chance_levels, reconstruction_errors
from ..random_features import RandomFeatures
from ..reconstruct import OPTIMIZERS, reconstruct

HELP = "train a random-features model and reconstruct its training set from θ"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


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
    p.add_argument("--data", choices=("synthetic", "digits"), default="synthetic",
                   help="synthetic: rows uniform on the √d-sphere with linear labels; digits: "
                        "scikit-learn's bundled 8×8 digits (d=64), pixel-standardised, rows on the √d-sphere")
    p.add_argument("--n", type=positive_int, default=10, help="number of training samples")
    p.add_argument("--d", type=positive_int, default=20, help="input dimension (synthetic only; digits has d=64)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--p", type=positive_int, default=None, help="number of random features (overrides --ratio)")
    size.add_argument("--ratio", type=positive_float, default=20.0, help="p as a multiple of d·n: p = ratio·d·n")
    p.add_argument("--activation", default="relu+tanh",
                   help=f"σ: one of {', '.join(known_activations())}, or a sum such as '0.5*relu+tanh'")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, of V (seed+1000) and of the attack")
    p.add_argument("--n-guess", type=positive_int, default=None,
                   help="n̂, the attacker's guess of n (default: the true n); metrics need n̂ = n")
    p.add_argument("--restarts", type=positive_int, default=3, help="random restarts of the attack (lowest loss wins)")
    p.add_argument("--max-iter", type=positive_int, default=3000, help="iteration cap per restart")
    p.add_argument("--tol", type=positive_float, default=1e-10, help="stop once the loss is below this")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs",
                   help="lbfgs: Riemannian L-BFGS with line search (no learning rate); momentum: "
                        "heavy-ball projected gradient with fixed --lr")
    p.add_argument("--lr", type=positive_float, default=0.01, help="learning rate of --optimizer momentum")
    p.add_argument("--no-reseed", action="store_true", help="disable greedy re-seeding of stalled candidates")
    p.add_argument("--derivative", choices=("true", "relu"), default="true",
                   help="σ' used in the gradient: the activation's own (true) or the ReLU surrogate 1[z>0]")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="working precision of the attack's big products (the Gram, α, r and the loss are always "
                        "float64; the model is trained in float64 and the final loss re-evaluated in float64)")
    p.add_argument("--stream-weights", action="store_true",
                   help="do not store V; regenerate it block by block from the seed (for p·d beyond memory)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array backend (cupy needs a GPU)")
    p.add_argument("--threshold", type=positive_float, default=DEFAULT_THRESHOLD,
                   help="a sample is recovered when its sign-aware relative error is at most this")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    start = time.perf_counter()
    if args.data == "digits":
        ds = digits(args.n, seed=args.seed)
    else:
        ds = synthetic_sphere(args.n, args.d, seed=args.seed)
    n, d = ds.X.shape
    p = args.p if args.p is not None else max(1, int(round(args.ratio * d * n)))
    n_guess = args.n_guess or n
    model = RandomFeatures(
        p, d, args.activation, seed=args.seed + 1000, dtype=np.float64,
        store_weights=not args.stream_weights, backend=args.backend,
    )
    print("rftheory reconstruct")
    print(f"  data        {ds.description}")
    print(f"  model       RF p={p}, d={d}, σ={model.activation.name}, V seed={model.seed}, attack dtype={args.dtype}, "
          f"V {'streamed' if args.stream_weights else 'stored'}, backend={args.backend}")
    print(f"  p/(dn)      {p / (d * n):.3g}   (threshold of the law ≈ 1; p/n = {p / n:.3g})")
    model.fit(ds.X, ds.y)
    print(f"  train       min-norm interpolator, relative train residual {model.train_residual:.2e}")
    print(f"  attack      n̂={n_guess}, optimizer={args.optimizer}, restarts={args.restarts}, "
          f"max_iter={args.max_iter}, tol={args.tol:g}, reseed={not args.no_reseed}, σ'={args.derivative}")

    def progress(r, loss):
        print(f"    restart {r + 1}/{args.restarts}: loss {loss:.3e}", flush=True)

    result = reconstruct(
        model.theta, model, n_guess, restarts=args.restarts, max_iter=args.max_iter, tol=args.tol,
        optimizer=args.optimizer, lr=args.lr, reseed=not args.no_reseed, seed=args.seed,
        derivative=args.derivative, progress=progress, dtype=np.dtype(args.dtype),
    )
    print(f"  loss        {result.loss:.3e} after {result.iterations} iterations "
          f"({result.evaluations} evaluations, {result.reseeds} re-seeds, {result.wall_time:.1f} s)")
    if n_guess != n:
        print(f"  metrics     skipped: n̂={n_guess} ≠ n={n} (one-to-one matching needs n̂ = n)")
    else:
        errs = reconstruction_errors(ds.X, to_numpy(result.X_hat), args.threshold)
        chance = chance_levels(ds.X, seed=args.seed, threshold=args.threshold)
        print(f"  recovered   {errs.recovered.sum()}/{n} = {errs.recovered_fraction:.0%} "
              f"(sign-aware error ≤ {args.threshold:g}); chance {chance['recovered_fraction']:.0%}")
        print(f"  wrong sign  {errs.wrong_sign.sum()}/{n} recovered only as −x_i")
        print("  errors      mean (max)        chance (random sphere points, matched the same way)")
        print(f"    signed         {errs.signed.mean():.4f} ({errs.signed.max():.4f})   {chance['signed']:.4f}")
        print(f"    sign-aware     {errs.sign_aware.mean():.4f} ({errs.sign_aware.max():.4f})   {chance['sign_aware']:.4f}")
        print(f"    entrywise-abs  {errs.entrywise_abs.mean():.4f} ({errs.entrywise_abs.max():.4f})   "
              f"{chance['entrywise_abs']:.4f}   (lenient metric of the original code)")
    print(f"  wall time   {time.perf_counter() - start:.1f} s")
    return 0
