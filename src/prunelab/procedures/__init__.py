"""Pruning procedures (methods.md §3): how scores become masks, and what happens after.

* :func:`one_shot` — score once, mask to ``p``.
* :func:`iterative` — ``k`` steps on the exponential density schedule, re-scoring at the
  masked point, no retraining between steps (paper 001).
* :func:`at_init` — optional BatchNorm recalibration, score in ``eval()`` (SynFlow: 100
  rounds), then train with the mask (paper 002).
* :func:`imp` — iterative magnitude pruning with rewinding; :func:`lomp` — ``ℓ1``
  training then one-shot magnitude (paper 004).
* :func:`rare_gems` — GEM-MINER: scores learned on the frozen initialisation, top-k,
  then training with the mask (the Rare Gems baseline of paper 004).
* :func:`finetune` — train with a mask kept exact.
* :func:`predict_loss_change` — first/second-order predicted vs measured ``ΔL``.
* :class:`PruneSettings` + :func:`run_procedure` — the one dispatch from settings to a
  procedure, used by the CLI, sweeps and the demo.

Every procedure prunes the model in place and returns ``(Mask, PruneRecord)``; the
record has the metrics right after pruning and after fine-tuning.
"""

from prunelab.procedures.at_init import SYNFLOW_ROUNDS, at_init, recalibrate_bn
from prunelab.procedures.dispatch import looks_trained, run_procedure
from prunelab.procedures.finetune import finetune
from prunelab.procedures.imp import imp
from prunelab.procedures.iterative import density_schedule, iterative
from prunelab.procedures.lomp import DEFAULT_L1, lomp
from prunelab.procedures.loss_change import LossChange, predict_loss_change
from prunelab.procedures.oneshot import one_shot
from prunelab.procedures.rare_gems import rare_gems
from prunelab.procedures.record import PruneRecord
from prunelab.procedures.settings import KINDS, PruneSettings

__all__ = [
    "DEFAULT_L1",
    "KINDS",
    "SYNFLOW_ROUNDS",
    "LossChange",
    "PruneRecord",
    "PruneSettings",
    "at_init",
    "density_schedule",
    "finetune",
    "imp",
    "iterative",
    "lomp",
    "looks_trained",
    "one_shot",
    "predict_loss_change",
    "rare_gems",
    "recalibrate_bn",
    "run_procedure",
]
