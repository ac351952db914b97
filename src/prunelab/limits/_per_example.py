"""Per-example test results for the ground truths' bootstrap, one branch per task (private).

The bootstrap of :func:`~prunelab.limits.truth.one_shot_limit` resamples test examples,
so it needs each example's contribution to the compared metric:

* classification: correct (0/1) and the cross-entropy of each example;
* language model: the fraction of an example's ``T`` next-token predictions that are
  right and its mean token cross-entropy (every example has ``T`` tokens, so the mean
  over examples of these is the split's token accuracy and loss);
* any other task with a mean-reduced loss (embedding: ``1 − cos`` per sentence): the
  task loss of each example on its own, no accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunelab._evaluate import loss_function, placement, restore_modes, save_modes, to_model
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError


def _rows(out: torch.Tensor, y: torch.Tensor, task: str, loss_fn):
    """``(correct or None, loss)`` per example of one batch, as float64 CPU tensors."""
    if task == "classification":
        return (out.argmax(1) == y).double(), F.cross_entropy(out, y, reduction="none").double()
    if task == "language-model":
        tokens = F.cross_entropy(out.transpose(1, 2), y, reduction="none")  # (N, T)
        return (out.argmax(-1) == y).double().mean(1), tokens.double().mean(1)
    losses = [loss_fn(out[i : i + 1], y[i : i + 1]) for i in range(y.shape[0])]
    return None, torch.stack(losses).double()


def per_example(model: nn.Module, data: DataBundle, batch_size: int = 1024):
    """Per-example results on the whole test split, model in ``eval()`` (flags restored).

    Returns:
        ``(correct, loss)``: ``correct`` a float64 ``(N,)`` array of per-example accuracy
        in ``[0, 1]`` (``None`` for a task without accuracy), ``loss`` float64 ``(N,)``.

    Raises:
        PrunelabError: A regression task, or an empty test split.
    """
    if data.task == "regression":
        raise PrunelabError(f"dataset {data.name!r} is a regression task: no limit metric")
    device, dtype = placement(model)
    loss_fn = loss_function(data)
    modes = save_modes(model)
    model.eval()
    correct, losses = [], []
    try:
        with torch.no_grad():
            for x, y in data.batches("test", batch_size):
                x, y = to_model(x, y, device, dtype)
                c, lo = _rows(model(x), y, data.task, loss_fn)
                correct.append(None if c is None else c.cpu())
                losses.append(lo.cpu())
    finally:
        restore_modes(modes)
    if not losses:
        raise PrunelabError(f"dataset {data.name!r} has no test data to measure the limit on")
    acc = None if correct[0] is None else torch.cat(correct).numpy()
    return acc, torch.cat(losses).numpy().astype(np.float64)
