"""The one job layer: train, prune, evaluate, score, spectrum and limit, each once.

The CLI, the sweep workers and the demo all call these functions with a settings
object (:class:`~prunelab.train_config.TrainConfig`,
:class:`~prunelab.procedures.PruneSettings`,
:class:`~prunelab.curvature.settings.SpectrumSettings`,
:class:`~prunelab.limits.settings.LimitSettings`); each returns plain values and writes
its files atomically.
"""

from prunelab.experiments.jobs.data import load_data
from prunelab.experiments.jobs.evaluate import evaluate_job
from prunelab.experiments.jobs.limit import limit_job, limit_rows
from prunelab.experiments.jobs.measure import (
    LIMIT_METHODS,
    PREDICTIONS,
    predictions,
    score_job,
    spectrum_job,
)
from prunelab.experiments.jobs.prune import PruneOutcome, prune_job
from prunelab.experiments.jobs.train import train_job

__all__ = [
    "LIMIT_METHODS",
    "PREDICTIONS",
    "PruneOutcome",
    "evaluate_job",
    "limit_job",
    "limit_rows",
    "load_data",
    "predictions",
    "prune_job",
    "score_job",
    "spectrum_job",
    "train_job",
]
