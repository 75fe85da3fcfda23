"""The ``labhub`` command line.

Each sub-command group lives in its own module with a ``register(subparsers)`` function that adds
its parser and sets ``func`` (a callable taking the parsed namespace and returning an exit code).

Exit codes shared by all commands: 0 success, 1 failure reported to the user, 2 bad input,
3 "not feasible" (``labhub plan``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from hub_ext import __version__

#: Sub-command modules, in the order they appear in ``labhub --help``.
COMMAND_MODULES = (
    "hub_ext.cli.mig",
    "hub_ext.cli.plan",
    "hub_ext.cli.profiles",
    "hub_ext.cli.values",
    "hub_ext.cli.devcluster",
    "hub_ext.cli.demo",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the problem (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="labhub",
        description="LabHub: JupyterHub for GPU teaching labs.",
    )
    parser.add_argument("--version", action="version", version=f"labhub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command group is not part of this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``labhub plan ... | head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
