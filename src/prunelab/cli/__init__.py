"""The ``prunelab`` command line: thin wrappers that parse, call the library and print.

Every command has ``--help`` with defaults, prints a one-screen summary (or JSON with
``--json``), and exits with code 2 and a one-line reason on bad input. Failures are
told at one place, :func:`main`: a :class:`~prunelab.errors.PrunelabError`, an
``OSError`` (a read-only folder, a full disk), an error raised inside a user's model and
a usage error each give one line on stderr and exit 2 (with ``--json`` also
``{"error": ..., "kind": ...}`` on stdout); Ctrl-C gives one line and exit 130; a closed
pipe (``prunelab ... --json | head -1``) ends quietly with exit 141.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import NoReturn

from prunelab._model_errors import model_failure
from prunelab._version import __version__
from prunelab.cli import _launch, analysis, basic, sweeps
from prunelab.cli._common import flag_names
from prunelab.errors import PrunelabError
from prunelab.train import DivergedError

#: Modules that contribute sub-commands; each has ``register(subparsers)``.
COMMAND_MODULES = [basic, analysis, sweeps]

#: exit codes: bad input (any one-line error), Ctrl-C, stdout closed by the reader
EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PIPE = 2, 130, 141


class UsageError(Exception):
    """A command line argparse refused; carries its one-line message."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (exit code 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see --help)")


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


def _fail(line: str, kind: str, as_json: bool, code: int = EXIT_ERROR) -> int:
    """Tell a failure: one line on stderr, and under ``--json`` an object on stdout."""
    if as_json:
        try:
            print(json.dumps({"error": line, "kind": kind}), flush=True)
        except BrokenPipeError:
            _quiet_stdout()
    print(" ".join(line.split()), file=sys.stderr)
    return code


def _os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {str(exc.filename)!r}"
    return str(exc) or type(exc).__name__


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 error, 130 interrupted, 141 pipe closed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    name, args = "prunelab", None
    try:
        args = build_parser().parse_args(argv)
        name = f"prunelab {args.command}"
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        if getattr(args, "nproc", 1) != 1 and not _launch.launched():
            return _launch.relaunch(argv, args.nproc)
        if _launch.init_from_env(getattr(args, "device", None) or "cpu") != 0:
            _quiet_stdout()  # every rank computes the same numbers; rank 0 tells them
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe is found here, not at interpreter exit
        return code
    except UsageError as exc:
        return _fail(str(exc), "usage", as_json)
    except PrunelabError as exc:
        kind = "diverged" if isinstance(exc, DivergedError) else getattr(exc, "kind", "input")
        return _fail(f"{name}: error: {flag_names(args, str(exc))}", kind, as_json)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE
    except OSError as exc:
        return _fail(f"{name}: error: {_os_error(exc)}", "os", as_json)
    except KeyboardInterrupt:
        return _fail(f"{name}: interrupted", "interrupted", as_json, EXIT_INTERRUPTED)
    except Exception as exc:
        line = model_failure(exc)
        if line is None:  # not the user's model: a prunelab bug, keep the traceback
            raise
        return _fail(f"{name}: error: {line}", "model", as_json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
