"""Read TOML tables into settings dataclasses, naming the key path of every mistake.

A small, strict converter (no third-party schema library): each dataclass field's type
annotation is the schema. Supported annotations: ``str``, ``int``, ``float`` (an integer
is accepted and converted), ``bool``, ``Literal[...]``, ``X | None`` (TOML has no null:
``None`` only means "key absent"), ``A | B`` (first match wins), ``tuple[X, ...]``,
``dict[str, Any]`` (free-form tables of scalars and lists), nested dataclasses, and
``Annotated[dict, Overrides(Cls)]`` (a partial table of ``Cls``'s fields: only the keys
given, each type-checked against ``Cls``, e.g. a sweep's ``[train]`` table over
:class:`~prunelab.train_config.TrainConfig`). Fields declared with ``toml=False``
(:func:`prunelab.schema.setting`) are unknown keys.
Unknown keys, missing required keys and wrong types raise
:class:`~prunelab.errors.PrunelabError` with messages such as
``criteria[2].name: expected str, got int``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from prunelab.errors import PrunelabError
from prunelab.schema import fields as schema_fields

__all__ = ["Overrides", "build", "convert", "fail", "hints", "join", "overrides", "type_name"]

_TOML_NAMES = {dict: "table", list: "list", str: "str", int: "int", float: "float", bool: "bool"}


def type_name(value: object) -> str:
    """How a TOML value's type is called in error messages."""
    for py, name in _TOML_NAMES.items():
        if type(value) is py:
            return name
    return type(value).__name__


def join(path: str, key: str | int) -> str:
    """Extend a key path: ``join("a", "b") == "a.b"``, ``join("a", 2) == "a[2]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def fail(path: str, message: str) -> PrunelabError:
    """A :class:`PrunelabError` whose message starts with the key path."""
    return PrunelabError(f"{path or '(top level)'}: {message}")


@dataclass(frozen=True)
class Overrides:
    """Annotation marker: a partial table of ``cls``'s TOML fields.

    Attributes:
        cls: The settings dataclass whose fields (types, allowed keys) the table uses.
        extra: ``(name, type, default)`` of keys the table has besides ``cls``'s
            (e.g. a training variant's ``name``); their defaults are always filled in.
    """

    cls: type
    extra: tuple[tuple[str, Any, Any], ...] = ()


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_describe(get_args(tp)[0])}"
    if origin is dict:
        return "table"
    if dataclasses.is_dataclass(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _scalar_or_list(value: object, path: str) -> object:
    """Free-form table values: scalars or (nested) lists of scalars, copied."""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        return [_scalar_or_list(v, join(path, i)) for i, v in enumerate(value)]
    raise fail(path, f"expected a number, string, bool or list, got {type_name(value)}")


def convert(tp: Any, value: object, path: str) -> object:
    """Check ``value`` against the annotation ``tp`` and convert it (lists become tuples)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        marker = next(m for m in tp.__metadata__ if isinstance(m, Overrides))
        return overrides(marker.cls, value, path, marker.extra)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        for option in options:
            try:
                return convert(option, value, path)
            except PrunelabError:
                continue
        raise fail(path, f"expected {_describe(tp)}, got {type_name(value)} {value!r}")
    if origin is Literal:
        if value not in get_args(tp) or type(value) is bool:
            raise fail(path, f"expected {_describe(tp)}, got {value!r}")
        return value
    if tp is bool:
        if type(value) is not bool:
            raise fail(path, f"expected bool, got {type_name(value)}")
        return value
    if tp is int:
        if type(value) is not int:
            raise fail(path, f"expected int, got {type_name(value)}")
        return value
    if tp is float:
        if type(value) not in (int, float):
            raise fail(path, f"expected float, got {type_name(value)}")
        return float(value)
    if tp is str:
        if type(value) is not str:
            raise fail(path, f"expected str, got {type_name(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise fail(path, f"expected {_describe(tp)}, got {type_name(value)}")
        (item,) = [a for a in get_args(tp) if a is not Ellipsis]
        return tuple(convert(item, v, join(path, i)) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(path, f"expected table, got {type_name(value)}")
        return {k: _scalar_or_list(v, join(path, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    raise TypeError(f"unsupported schema annotation {tp!r} at {path}")  # a bug, not user input


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of ``cls`` (cached)."""
    return typing.get_type_hints(cls, include_extras=True)


def overrides(cls: type, raw: object, path: str = "", extra: tuple = ()) -> dict:
    """Type-check a partial TOML table of ``cls``'s fields; return only the keys given.

    Args:
        cls: The settings dataclass.
        raw: The parsed table.
        path: Its key path for error messages.
        extra: ``(name, type, default)`` of additional keys (see :class:`Overrides`).

    Returns:
        A plain dict: the converted values given, plus the ``extra`` defaults.

    Example:
        >>> from prunelab.train_config import TrainConfig
        >>> overrides(TrainConfig, {"epochs": 3}, "train")
        {'epochs': 3}
        >>> overrides(TrainConfig, {"epoch": 3}, "train")
        Traceback (most recent call last):
        ...
        prunelab.errors.PrunelabError: train.epoch: unknown key; valid keys: epochs, ...
    """
    if not isinstance(raw, dict):
        raise fail(path, f"expected table, got {type_name(raw)}")
    types_ = {name: tp for name, tp, _ in extra}
    types_.update({f.name: hints(cls)[f.name] for f in schema_fields(cls, "toml")})
    unknown = [k for k in raw if k not in types_]
    if unknown:
        valid = ", ".join(types_)
        raise fail(join(path, unknown[0]), f"unknown key; valid keys: {valid}")
    out = {name: default for name, _, default in extra}
    out.update({k: convert(types_[k], v, join(path, k)) for k, v in raw.items()})
    return out


def build(cls: type, raw: object, path: str = "") -> Any:
    """Build the frozen dataclass ``cls`` from a TOML table.

    Args:
        cls: A dataclass type whose field annotations are the schema.
        raw: The parsed TOML table.
        path: Key path of ``raw`` for error messages (``""`` at the top level).

    Returns:
        An instance of ``cls``.

    Raises:
        PrunelabError: Unknown key, missing required key, or a wrong type.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class P:
        ...     name: str
        ...     steps: int = 1
        >>> build(P, {"name": "x", "steps": 3})
        P(name='x', steps=3)
        >>> build(P, {"name": 1}, "procedures[0]")
        Traceback (most recent call last):
        ...
        prunelab.errors.PrunelabError: procedures[0].name: expected str, got int
    """
    if not isinstance(raw, dict):
        raise fail(path, f"expected table, got {type_name(raw)}")
    fields = schema_fields(cls, "toml")
    names = [f.name for f in fields]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise fail(join(path, unknown[0]), f"unknown key; valid keys: {', '.join(names)}")
    tps = hints(cls)
    kwargs = {}
    for f in fields:
        if f.name in raw:
            kwargs[f.name] = convert(tps[f.name], raw[f.name], join(path, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise fail(join(path, f.name), "required key is missing")
    return cls(**kwargs)
