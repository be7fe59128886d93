"""Set-up shared by the notebooks in this folder (not a notebook itself).

A notebook runs as a script, ``python notebooks/0X_....py [--small | --full]
[--out DIR]`` (or with the environment variables RFTHEORY_NOTEBOOK_SIZE and
RFTHEORY_NOTEBOOK_OUT), or in Jupyter with this folder as working directory.
Each notebook puts its own folder on ``sys.path`` and imports this module
before it imports ``matplotlib.pyplot``: run as a script, figures are drawn
off-screen (Agg).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

IN_JUPYTER = "ipykernel" in sys.modules
if not IN_JUPYTER:  # run as a script: draw off-screen
    matplotlib.use("Agg")

SIZES = ("small", "full")


def notebook_settings(name, **extra):
    """Size ("small" or "full") and output folder, from flags or environment; prints them.

    ``name`` names the temporary output folder made when neither ``--out`` nor
    RFTHEORY_NOTEBOOK_OUT is given.  Each keyword ``flag="ENV_VAR"`` adds an
    option ``--flag VALUE`` that falls back to the environment variable; their
    values (None when neither is set) follow ``(size, out)`` in the returned
    tuple, in the order given.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--out", default=None)
    for flag in extra:
        parser.add_argument(f"--{flag}", default=None)
    args, _ = parser.parse_known_args()  # a Jupyter kernel passes arguments of its own
    size = "full" if args.full else "small" if args.small else os.environ.get("RFTHEORY_NOTEBOOK_SIZE", "small")
    if size not in SIZES:
        raise ValueError(f"RFTHEORY_NOTEBOOK_SIZE must be 'small' or 'full', got {size!r}")
    out = args.out or os.environ.get("RFTHEORY_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix=f"rftheory_{name}_")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"size: {size}; figures in {out}")
    return (size, out, *(getattr(args, flag) or os.environ.get(env) for flag, env in extra.items()))


def figure_saver(out):
    """``save(fig, name)``: write ``fig`` to ``out / name`` (shown first in Jupyter), close it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    def save(fig, name):
        path = Path(out) / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        if IN_JUPYTER:
            plt.show()
        plt.close(fig)
        print(f"  wrote {path}")

    return save


def repository_root():
    """The checkout holding proofs_numeric/ (it is not part of the installed package)."""
    start = Path(__file__).resolve().parent
    for folder in (start, *start.parents):
        if (folder / "proofs_numeric" / "run_all.py").is_file():
            return folder
    raise FileNotFoundError("run this notebook from a checkout of rftheory (proofs_numeric/ not found)")
