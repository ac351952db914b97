"""Settings dataclass ⇄ argparse: flags generated from the fields, values read back.

Types come from the annotations: ``int`` / ``float`` / ``str``, ``bool`` (a
``--flag`` / ``--no-flag`` pair, or a plain switch when the default is ``False``),
``Literal[...]`` (choices), ``X | None`` (default ``None`` = "not given"), and
``tuple[X, ...]`` (several values). A field's ``minimum`` is enforced while parsing, so
a bad value exits 2 with argparse's one-line message.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
from typing import Any, Literal, Union, get_args, get_origin

from prunelab.schema import fields, flag
from prunelab.schema.toml import hints

__all__ = ["add_arguments", "from_arguments", "number"]


def number(kind: type, minimum: float | None = None):
    """An argparse ``type`` parsing a finite ``kind`` (int or float) ``>= minimum``.

    Example:
        >>> number(int, 0)("3")
        3
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if minimum is not None and value < minimum:
            if minimum == 0:
                raise argparse.ArgumentTypeError(f"{value} is negative; expected >= 0")
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else tp
    return tp


def _number_or_text(text: str) -> float | str:
    """``float | Literal[...]`` fields: a number when it parses, else the word."""
    try:
        return float(text)
    except ValueError:
        return text


def _argument(f: dataclasses.Field, tp: Any, default: Any) -> dict:
    tp = _unwrap_optional(tp)
    kw: dict[str, Any] = {"dest": f.name, "default": default, "help": f.metadata.get("help", "")}
    minimum = f.metadata.get("minimum")
    if tp is bool:
        kw["action"] = "store_true" if default is False else argparse.BooleanOptionalAction
    elif get_origin(tp) is Literal:
        kw["choices"] = list(get_args(tp))
    elif get_origin(tp) is tuple:
        item = _unwrap_optional(get_args(tp)[0])
        kw["nargs"] = "+"
        kw["type"] = number(item, minimum) if item in (int, float) else item
    elif tp in (int, float):
        kw["type"] = number(tp, minimum)
    elif get_origin(tp) in (Union, types.UnionType):
        kw["type"] = _number_or_text  # checked by the settings' owner
    else:
        kw["type"] = str
    return kw


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    defaults: dict | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Add one flag per CLI field of the dataclass ``cls`` to ``parser``.

    Args:
        parser: A parser or argument group.
        cls: A settings dataclass (fields made with :func:`prunelab.schema.setting`).
        defaults: Command-specific defaults overriding the dataclass's (e.g. fine-tuning
            uses a smaller learning rate than training); everything else comes from
            ``cls``, so each default is declared once.
        skip: Field names the command does not expose.
    """
    defaults = defaults or {}
    instance_defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    tps = hints(cls)
    for f in fields(cls, "cli"):
        if f.name in skip:
            continue
        default = defaults.get(f.name, instance_defaults.get(f.name))
        parser.add_argument(flag(f), **_argument(f, tps[f.name], default))


def from_arguments(
    cls: type, args: argparse.Namespace, *, skip: tuple[str, ...] = (), **values: Any
) -> Any:
    """Build ``cls`` from parsed arguments (fields absent from ``args`` keep defaults).

    Args:
        cls: The dataclass given to :func:`add_arguments`.
        args: Parsed arguments.
        skip: Field names not read from ``args`` (the ``skip`` of :func:`add_arguments`).
        **values: Values that do not come from flags (e.g. ``seed``, ``progress``).

    Returns:
        An instance of ``cls``; tuples come back as tuples.
    """
    kwargs = {}
    for f in fields(cls, "cli"):
        if f.name not in skip and hasattr(args, f.name):
            value = getattr(args, f.name)
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**{**kwargs, **values})
