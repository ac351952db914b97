"""Importance criteria ("higher = keep"), one file each, plus a registry.

Use :func:`score` (also exported as ``prunelab.score``); list names with
``CRITERIA.names()``.
"""

from prunelab.scores import (
    baselines,  # noqa: F401  (registers magnitude, random)
    cov_scaled,  # noqa: F401  (registers cov_scaled)
    pai,  # noqa: F401  (snip, grasp, fisher_pai, hutchinson_pai)
    smart_ratio,  # noqa: F401  (registers smart_ratio)
    sparsegpt,  # noqa: F401  (registers sparsegpt)
    synflow,  # noqa: F401  (registers synflow)
    taylor,  # noqa: F401  (registers taylor1, obd, taylor2)
    wanda,  # noqa: F401  (registers wanda)
)
from prunelab.scores.base import CRITERIA, Criterion, reconstruct, score

__all__ = ["CRITERIA", "Criterion", "reconstruct", "score"]
