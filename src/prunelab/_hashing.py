"""Stable content hashes of configs, used as run identities."""

from __future__ import annotations

import hashlib
import json


def stable_hash(obj: object, length: int = 12) -> str:
    """Hash a JSON-able object independently of dict key order and of the process.

    Args:
        obj: Nested dicts / lists / scalars (dataclasses should be converted first).
        length: Number of hex characters to keep.

    Returns:
        A hex digest prefix.

    Example:
        >>> stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
        True
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
