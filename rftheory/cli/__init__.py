"""Command-line interface: ``rftheory <command> [options]``.

This package is the only part of rftheory that prints.  Every sub-command is
a module ``rftheory/cli/<name>.py`` exposing

    add_parser(subparsers) -> argparse.ArgumentParser   (sets func=run)
    run(args) -> int                                       (exit status)

and is discovered automatically.  User mistakes (ValueError, TypeError,
FileNotFoundError, RuntimeError raised for bad input) and the failures of the
machine that the checks made up front could not foresee (OSError: a disk
full, a path changed meanwhile; MemoryError: an estimate below the true peak)
are printed as one line ``rftheory: error: ...`` with exit status 2 and no
traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

__all__ = ["main", "build_parser"]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError)


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{__name__}.{info.name}")


class _Parser(argparse.ArgumentParser):
    """argparse's parser with one-line errors: ``rftheory COMMAND: error: argument --x: ...`` and a
    pointer to --help, instead of the usage block followed by the message (exit status 2 as before)."""

    def parse_known_args(self, args=None, namespace=None):
        # '--opt=' (nothing after '=') gives some argparse versions an empty list that skips the option's
        # type check; refuse it here, naming the option
        for arg in sys.argv[1:] if args is None else args:
            if isinstance(arg, str) and arg.startswith("--") and arg.endswith("=") and arg.count("=") == 1:
                self.error(f"argument {arg[:-1]}: expected a value after '='")
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__  # noqa: PLC0415

    parser = _Parser(
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
    except MemoryError:
        print("rftheory: error: out of memory: the arrays of this configuration do not fit; use smaller sizes "
              "(--n, --p/--ratio, --width, --starts, ...)", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        print(f"rftheory: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rftheory: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (an OSError with its file name, other messages joined)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename!s}" if exc.filename else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
