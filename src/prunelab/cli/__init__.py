"""The ``prunelab`` command line: thin wrappers that parse, call the library and print.

Every command has ``--help`` with defaults, prints a one-screen summary (or JSON with
``--json``), and exits with code 2 and a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from prunelab._version import __version__
from prunelab.cli import analysis, basic, sweeps
from prunelab.cli._common import flag_names
from prunelab.errors import PrunelabError

#: Modules that contribute sub-commands; each has ``register(subparsers)``.
COMMAND_MODULES = [basic, analysis, sweeps]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (exit code 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = _Parser(
        prog="prunelab",
        description="Which weights matter, how far a network can be pruned, and proof.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"prunelab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except PrunelabError as exc:
        print(f"prunelab {args.command}: error: {flag_names(args, str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
