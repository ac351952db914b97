"""Helpers shared by the procedures (private): scoring data, losses, fine-tuning."""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from prunelab._evaluate import loss_function, placement, restore_modes, save_modes, to_model
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures.record import PruneRecord, stage_metrics
from prunelab.train import TrainConfig, train_model

#: Default number of training examples used by data-dependent criteria (paper 001: 1000).
SCORE_SAMPLES = 1000
#: Default examples per scoring batch (memory only: scores are means over all examples).
SCORE_BATCH_SIZE = 256


def score_batches(
    data: DataBundle, samples: int = SCORE_SAMPLES, batch_size: int = SCORE_BATCH_SIZE
) -> list[tuple[Tensor, Tensor]]:
    """The first ``samples`` training examples in fixed order, as a list of batches."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise PrunelabError(f"score_samples must be an integer >= 1, got {samples!r}")
    return list(data.batches("train", batch_size, limit=samples))


def resolve_data(data, batches, loss_fn, samples, batch_size, needed: bool):
    """Fill in ``batches`` / ``loss_fn`` from ``data`` where the caller left them out."""
    if data is not None:
        if batches is None and needed:
            batches = score_batches(data, samples, batch_size)
        if loss_fn is None:
            loss_fn = loss_function(data)
    if batches is not None:
        batches = list(batches)
    return batches, loss_fn


def mean_loss(model: nn.Module, batches: list, loss_fn) -> float:
    """Mean loss over every example of ``batches`` in ``eval()`` mode, without gradients."""
    device, dtype = placement(model)
    modes = save_modes(model)
    model.eval()
    total, n = 0.0, 0
    try:
        with torch.no_grad():
            for x, y in batches:
                x, y = to_model(x, y, device, dtype)
                total += float(loss_fn(model(x), y)) * int(x.shape[0])
                n += int(x.shape[0])
    finally:
        restore_modes(modes)
    return total / n if n else float("nan")


def check_steps(steps: object, name: str = "steps") -> int:
    """A positive integer number of steps, else a PrunelabError."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PrunelabError(f"{name} must be an integer >= 1, got {steps!r}")
    return steps


def finish(
    model: nn.Module,
    data: DataBundle | None,
    mask: Mask,
    record: PruneRecord,
    finetune: TrainConfig | None,
    eval_train: bool = True,
) -> None:
    """Fine-tune ``model`` with ``mask`` kept exact (if asked) and record the metrics."""
    record.set_mask(mask)
    if finetune is None or finetune.epochs == 0:
        return
    if data is None:
        raise PrunelabError("fine-tuning needs a dataset: pass data=")
    start = time.perf_counter()
    record.history = train_model(model, data, finetune, mask=mask).history
    record.seconds["finetune"] = time.perf_counter() - start
    record.after_finetune = stage_metrics(model, data, eval_train)
