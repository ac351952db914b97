"""Fine-tuning after any procedure, with the mask kept exact."""

from __future__ import annotations

from torch import nn

from prunelab.data.base import DataBundle
from prunelab.masks import Mask
from prunelab.procedures.record import stage_metrics
from prunelab.train import TrainConfig, train_model


def finetune(
    model: nn.Module,
    data: DataBundle,
    mask: Mask,
    config: TrainConfig,
    eval_train: bool = True,
) -> tuple[list[dict], dict]:
    """Train ``model`` in place with ``mask`` (pruned weights stay exactly 0).

    Args:
        model: The pruned network.
        data: The dataset.
        mask: The mask to keep.
        config: Training configuration (a fresh optimiser is made).
        eval_train: Also evaluate the training split in the returned metrics.

    Returns:
        ``(history rows, metrics after fine-tuning)``.
    """
    history = train_model(model, data, config, mask=mask).history
    return history, stage_metrics(model, data, eval_train)
