"""Command-line interface: ``rftheory <command> [options]``.

This package is the only part of rftheory that prints.  Every sub-command is
a module ``rftheory/cli/<name>.py`` exposing

    add_parser(subparsers) -> argparse.ArgumentParser   (sets func=run)
    run(args) -> int                                       (exit status)

and is discovered automatically.  User mistakes (ValueError, TypeError,
FileNotFoundError, RuntimeError raised for bad input) are printed as one line
``rftheory: error: ...`` with exit status 2 and no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

__all__ = ["main", "build_parser"]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError)


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="rftheory",
        description=(
            "Numerical checks and attacks for the law of data reconstruction: in the "
            "random-features model the training set is identifiable from the parameters "
            "once p > d·n. Run 'rftheory COMMAND --help' for each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rftheory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"rftheory: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rftheory: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
