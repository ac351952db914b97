"""Importance criteria ("higher = keep"), one file each, plus a registry.

Use :func:`score` (also exported as ``prunelab.score``); list names with
``CRITERIA.names()``.
"""

from prunelab.scores import baselines  # noqa: F401  (registers magnitude, random)
from prunelab.scores.base import CRITERIA, Criterion, score

__all__ = ["CRITERIA", "Criterion", "score"]
