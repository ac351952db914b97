"""A tiny name → object registry, one per concept (datasets, models, criteria, ...).

A typo in a name gives a :class:`~prunelab.errors.PrunelabError` that lists every
valid choice, so users never have to read the source to find what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from prunelab.errors import PrunelabError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to objects of one kind.

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"model"``).

    Example:
        >>> reg = Registry("colour")
        >>> reg.add("red", 1)
        1
        >>> reg.get("red")
        1
        >>> reg.get("blue")
        Traceback (most recent call last):
        ...
        prunelab.errors.PrunelabError: unknown colour 'blue'; valid choices: red
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` and return it."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} registered twice")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(obj: T) -> T:
            return self.add(name, obj)

        return deco

    def get(self, name: str) -> T:
        """Return the object called ``name``, or raise naming the valid choices."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise PrunelabError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
