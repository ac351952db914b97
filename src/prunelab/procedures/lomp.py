"""LOMP (paper 004): train with an ``ℓ1`` penalty ``l1·Σ|θ|``, then one-shot global magnitude.

The penalty pushes unimportant weights towards zero during training so that one-shot
magnitude pruning afterwards removes little that matters. The penalty is applied to the
prunable set only (see :class:`prunelab.train.TrainConfig`).
"""

from __future__ import annotations

import dataclasses
import time

from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import check_sparsity
from prunelab.masks import Mask
from prunelab.procedures.iterative import iterative
from prunelab.procedures.record import PruneRecord
from prunelab.scores._common import check_nonneg
from prunelab.train import TrainConfig, train_model

#: ℓ1 coefficient used when neither the call nor the config sets one (paper 004's value).
DEFAULT_L1 = 5e-5


def lomp(
    model: nn.Module,
    data: DataBundle,
    sparsity: float,
    train_config: TrainConfig,
    l1: float | None = None,
    *,
    finetune: TrainConfig | None = None,
    **options,
) -> tuple[Mask, PruneRecord]:
    """Train ``model`` in place with an ``ℓ1`` penalty, then prune it by global magnitude.

    Args:
        model: The network (usually at initialisation).
        data: The dataset.
        sparsity: Fraction removed, in ``[0, 1)``.
        train_config: Dense training configuration.
        l1: Penalty coefficient; ``None`` = ``train_config.l1`` if non-zero, else
            :data:`DEFAULT_L1` (5e-5).
        finetune: Optional fine-tuning after pruning.
        **options: Options of :func:`~prunelab.procedures.iterative.iterative`
            (``scope``, ``spec``, ``min_per_layer``, ``eval_train``, ...).

    Returns:
        ``(mask, PruneRecord)``; ``extra`` holds ``l1`` and the training history.
    """
    sparsity = check_sparsity(sparsity)
    l1 = check_nonneg(l1 if l1 is not None else (train_config.l1 or DEFAULT_L1), "l1")
    config = dataclasses.replace(train_config, l1=l1).validate()
    start = time.perf_counter()
    history = train_model(model, data, config, spec=options.get("spec")).history
    seconds = time.perf_counter() - start
    mask, record = iterative(
        model, "magnitude", sparsity, 1, data=data, finetune=finetune, procedure="lomp", **options
    )
    record.extra.update(l1=l1, train=config.to_dict(), train_history=history)
    record.seconds["training"] = seconds
    return mask, record
