"""Package version (kept in one place; ``meta.json`` records it)."""

__version__ = "0.1.0"
