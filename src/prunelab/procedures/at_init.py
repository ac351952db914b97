"""Pruning at initialisation (paper 002): optional BatchNorm recalibration, score, mask, train.

At initialisation BatchNorm's running statistics are ``mean = 0, var = 1``, so a network
scored in ``eval()`` mode sees badly scaled activations. :func:`recalibrate_bn` resets the
statistics and recomputes them from the training data: forward passes in ``train()``
mode under ``no_grad`` (no loss, no optimiser), with BatchNorm's ``momentum`` set to
``None`` for the pass so the statistics are the exact cumulative average over the
batches rather than paper 002's exponential average (an EMA over one epoch mostly
reflects the last few batches). Only ``running_mean``, ``running_var`` and
``num_batches_tracked`` change; parameters are bit-identical.

Scoring is in ``eval()`` mode. SynFlow runs Synaptic-Flow's 100 rounds on the exponential
density schedule (rounds configurable); other criteria score once unless ``steps`` says
otherwise. The masked network is then trained with the mask kept exact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from prunelab._evaluate import placement, restore_modes, save_modes
from prunelab.data.base import DataBundle
from prunelab.masks import Mask
from prunelab.procedures._common import check_steps
from prunelab.procedures.iterative import iterative
from prunelab.procedures.record import PruneRecord
from prunelab.train import TrainConfig

log = logging.getLogger(__name__)

#: Synaptic-Flow's number of SynFlow rounds (``prune_epochs`` in its stored experiments).
SYNFLOW_ROUNDS = 100


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers of ``model`` that track running statistics."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def recalibrate_bn(model: nn.Module, batches: Iterable) -> int:
    """Reset and recompute BatchNorm running statistics from ``batches``.

    Args:
        model: The network; its train/eval flags and BatchNorm momenta are restored.
        batches: ``(x, y)`` or ``x``-only batches of training data (``y`` is unused).
            Batches of a single example are skipped (train-mode BatchNorm needs two).

    Returns:
        Number of examples forwarded (0 when the model has no BatchNorm layer, in which
        case nothing is done).
    """
    layers = batchnorm_layers(model)
    if not layers:
        log.info("BatchNorm recalibration: the model has no BatchNorm layer; nothing to do")
        return 0
    device, dtype = placement(model)
    modes = save_modes(model)
    momenta = [m.momentum for m in layers]
    seen = 0
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        model.train()
        with torch.no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, tuple | list) else batch
                if x.shape[0] < 2:
                    continue
                x = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
                model(x)
                seen += int(x.shape[0])
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        restore_modes(modes)
    log.info("BatchNorm recalibration: %d layers, %d examples", len(layers), seen)
    return seen


def at_init(
    model: nn.Module,
    data: DataBundle,
    criterion: str,
    sparsity: float,
    bn_recalibrate: bool = False,
    *,
    train_config: TrainConfig | None = None,
    rounds: int | None = None,
    bn_samples: int | None = None,
    bn_batch_size: int = 256,
    already_trained: bool = False,
    **options,
) -> tuple[Mask, PruneRecord]:
    """Prune a freshly initialised ``model`` in place, then train it with the mask.

    Args:
        model: The network at initialisation.
        data: The dataset (scoring batches, BN recalibration, training, metrics).
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Fraction removed, in ``[0, 1)``.
        bn_recalibrate: Recompute BatchNorm statistics from the training data first.
        train_config: Training after pruning (``None``: prune only).
        rounds: Score-and-mask rounds; default 100 for ``synflow``
            (:data:`SYNFLOW_ROUNDS`), 1 otherwise.
        bn_samples: Training examples for recalibration (default: the whole split).
        bn_batch_size: Examples per recalibration batch.
        already_trained: The caller knows the weights are trained; pruning still runs
            but a warning is logged and recorded (pruning "at init" a trained model is
            usually a mistake).
        **options: Options of :func:`~prunelab.procedures.iterative.iterative`
            (``batches``, ``scope``, ``spec``, ``score_samples``, ...) and the
            criterion's hyper-parameters.

    Returns:
        ``(mask, PruneRecord)``; ``after_prune`` is the untrained pruned network and
        ``after_finetune`` the trained one.
    """
    if rounds is None:
        rounds = SYNFLOW_ROUNDS if criterion == "synflow" else 1
    check_steps(rounds, "rounds")
    warnings = []
    if already_trained:
        warnings.append("at-init pruning was applied to a model that is already trained")
        log.warning(warnings[-1])
    if bn_recalibrate:
        recalibrate_bn(model, data.batches("train", bn_batch_size, limit=bn_samples))
    mask, record = iterative(
        model,
        criterion,
        sparsity,
        rounds,
        data=data,
        finetune=train_config,
        procedure="at-init",
        **options,
    )
    record.bn_recalibrated = bool(bn_recalibrate)
    record.warnings.extend(warnings)
    return mask, record
