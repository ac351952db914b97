"""One typed dataclass per concept is the schema of its settings (open_lth's habit).

A settings dataclass declares each field once, with its default and a one-line help
text (:func:`setting`). From that single declaration

* :func:`prunelab.schema.cli.add_arguments` builds an argparse group (flags, types,
  choices, defaults in ``--help``) and :func:`prunelab.schema.cli.from_arguments` reads
  it back;
* :func:`prunelab.schema.toml.build` reads a TOML table into the dataclass, and
  :func:`prunelab.schema.toml.overrides` reads a partial table (only the keys given),
  each mistake named by its key path.

This package sits at the bottom of the stack (it imports only :mod:`prunelab.errors`),
so every layer may declare its settings with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["fields", "flag", "setting"]


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 (argparse's name)
    *,
    default_factory: Any = dataclasses.MISSING,
    flag: str | None = None,
    minimum: float | None = None,
    cli: bool = True,
    toml: bool = True,
) -> Any:
    """A dataclass field carrying what the CLI and the TOML loader need to know.

    Args:
        default: The default value (declared here and nowhere else).
        help: One line for ``--help``.
        default_factory: For mutable defaults.
        flag: The CLI flag without ``--`` when it differs from the field name with
            ``_`` → ``-`` (e.g. ``iters`` for ``num_iters``).
        minimum: Smallest allowed value of a number; the CLI refuses smaller ones
            while parsing (exit 2, naming the value).
        cli: Whether the field becomes a CLI flag.
        toml: Whether the field may be set in a TOML table.

    Returns:
        A :func:`dataclasses.field`.
    """
    meta = {"help": help, "flag": flag, "minimum": minimum, "cli": cli, "toml": toml}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def fields(cls: type, where: str) -> list[dataclasses.Field]:
    """The init fields of ``cls`` exposed to ``where`` (``"cli"`` or ``"toml"``)."""
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get(where, True)]


def flag(f: dataclasses.Field) -> str:
    """The CLI flag of a field, e.g. ``--warmup-epochs``."""
    return "--" + (f.metadata.get("flag") or f.name.replace("_", "-"))
