"""Training and fine-tuning that keep pruning masks exact.

Pruned weights stay exactly 0 under momentum, weight decay and Adam (methods.md §3): the
gradients of pruned weights are zeroed before every optimiser step *and* the weights are
masked again after it. Masking only the gradients is not enough, because a momentum
buffer or Adam moment that is non-zero from earlier (dense) training still moves the
weight; the optimiser state may keep such values, the weights never do.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm import tqdm

from prunelab._evaluate import (
    evaluate,
    loss_function,
    placement,
    restore_modes,
    save_modes,
    to_model,
)
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.train_config import OPTIMIZERS, SCHEDULES, TrainConfig, lr_at_epoch

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "DivergedError",
    "MaskEnforcer",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "loss_function",
    "lr_at_epoch",
    "make_optimizer",
    "masked_step",
    "penalty",
    "train_model",
]


class DivergedError(PrunelabError):
    """Training produced a NaN or infinite loss.

    Attributes:
        epoch: 1-based epoch in which it happened.
        step: 0-based mini-batch index within that epoch (``None``: end-of-epoch evaluation).
    """

    def __init__(self, epoch: int, step: int | None, value: float, metric: str = "loss") -> None:
        where = f"step {step}" if step is not None else "end-of-epoch evaluation"
        super().__init__(f"training diverged: {metric} {value} at epoch {epoch}, {where}")
        self.epoch, self.step, self.value = epoch, step, value


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        history: One row per epoch (see :func:`train_model`).
        final: The last row (or an evaluation-only row when ``epochs == 0``).
        optimizer: The optimiser, with its state, to continue training.
    """

    history: list[dict]
    final: dict
    optimizer: torch.optim.Optimizer | None = field(default=None, repr=False, compare=False)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config`` over every trainable parameter of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    raise PrunelabError(
        f"unknown optimizer {config.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}"
    )


def penalty(params: Iterable[Tensor], l1: float = 0.0, l2: float = 0.0) -> Tensor | float:
    """``l1·Σ|θ| + l2·Σθ²`` over ``params`` (pass the prunable set); ``0.0`` if both are 0."""
    out: Tensor | float = 0.0
    for p in params:
        if l1:
            out = out + l1 * p.abs().sum()
        if l2:
            out = out + l2 * p.pow(2).sum()
    return out


class MaskEnforcer:
    """Keeps the pruned weights of ``model`` exactly zero across optimiser steps.

    Gradients and weights are multiplied by a 0/1 mask in the parameter's dtype: on the
    CPU that is about ten times faster than ``masked_fill_`` and exact, since ``x·0`` is
    ``±0.0``, which compares equal to 0 (the weights are finite: a NaN/inf loss stops
    training before the step). :meth:`prunelab.masks.Mask.apply` uses ``masked_fill_``.

    Args:
        model: The network; ``mask`` is applied to it on construction.
        mask: The mask, or ``None`` (then :meth:`step` is a plain ``optimizer.step()``).
    """

    def __init__(self, model: nn.Module, mask: Mask | None) -> None:
        self.pairs: list[tuple[Tensor, Tensor]] = []
        if mask is None:
            return
        mask.apply(model)  # also checks that names and shapes match
        for name, p in prunable_parameters(model, mask.spec).items():
            keep = mask.masks[name]
            if not bool(keep.all()):  # dense layers need no work in the hot loop
                self.pairs.append((p, keep.to(device=p.device, dtype=p.dtype)))

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned gradients, take the step, then zero the pruned weights again."""
        with torch.no_grad():
            for p, keep in self.pairs:
                if p.grad is not None:
                    p.grad.mul_(keep)
        optimizer.step()
        with torch.no_grad():
            for p, keep in self.pairs:
                p.mul_(keep)


def masked_step(optimizer: torch.optim.Optimizer, model: nn.Module, mask: Mask | None) -> None:
    """One mask-preserving optimiser step (gradients must already be computed)."""
    MaskEnforcer(model, mask).step(optimizer)


def train_model(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig,
    mask: Mask | None = None,
    callback: Callable[[dict], bool | None] | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    spec: PrunableSpec | None = None,
) -> TrainResult:
    """Train ``model`` in place, keeping ``mask`` exact.

    Each epoch shuffles the training split with a seed drawn from ``config.seed`` (same
    seed → identical weights), sets the learning rate of the schedule, and runs
    mini-batch steps in ``train()`` mode; then it evaluates the test split in ``eval()``
    mode. The global RNG is forked and seeded with ``config.seed`` for the run (dropout
    becomes reproducible; the caller's RNG state is left as it was). Submodule modes are
    restored at the end.

    History rows: ``epoch`` (1-based), ``lr``, ``train_loss`` / ``train_accuracy``
    (running means over the epoch's mini-batches in ``train()`` mode, data loss without
    the penalty; accuracy in percent, ``None`` for regression), ``test_loss``,
    ``test_accuracy``, ``seconds`` (wall time of the epoch, evaluation included).

    Args:
        model: The network (trained in place).
        data: The dataset.
        config: Hyper-parameters (validated here).
        mask: Pruned weights to zero now and keep at zero; ``None`` trains densely.
        callback: Called with each history row; returning ``True`` stops training.
        optimizer: An existing optimiser to continue with (its state, e.g. momentum, is
            kept; its learning rate is overwritten by the schedule each epoch).
        spec: Prunable set for ``l1`` / ``l2`` (default: ``mask.spec`` or ``PrunableSpec()``).

    Returns:
        The history, the final row and the optimiser.

    Raises:
        PrunelabError: Invalid config or a mask that does not fit the model.
        DivergedError: A NaN / infinite loss (training stops at once).
    """
    config.validate()
    spec = spec or (mask.spec if mask is not None else PrunableSpec())
    enforcer = MaskEnforcer(model, mask)
    penalised = list(prunable_parameters(model, spec).values()) if config.l1 or config.l2 else []
    opt = optimizer if optimizer is not None else make_optimizer(model, config)
    seeds = torch.Generator().manual_seed(config.seed)
    device = placement(model)[0]
    modes = save_modes(model)
    history: list[dict] = []
    bar = tqdm(total=config.epochs, disable=not config.progress, file=sys.stderr, unit="epoch")
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            for epoch in range(1, config.epochs + 1):
                t0 = time.perf_counter()
                lr = config.lr_at(epoch - 1)
                for group in opt.param_groups:
                    group["lr"] = lr
                epoch_seed = int(torch.randint(0, 2**62, (1,), generator=seeds))
                train = _train_epoch(
                    model, data, config, opt, enforcer, penalised, epoch, epoch_seed
                )
                test = evaluate(model, data, "test")
                if not math.isfinite(test["loss"]):
                    raise DivergedError(epoch, None, test["loss"])
                row = {
                    "epoch": epoch,
                    "lr": lr,
                    "train_loss": train["loss"],
                    "train_accuracy": train["accuracy"],
                    "test_loss": test["loss"],
                    "test_accuracy": test["accuracy"],
                    "seconds": time.perf_counter() - t0,
                }
                history.append(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.4g}", test=f"{row['test_loss']:.4g}")
                if callback is not None and callback(row):
                    break
    finally:
        bar.close()
        restore_modes(modes)
    if history:
        final = history[-1]
    else:
        tr, te = evaluate(model, data, "train"), evaluate(model, data, "test")
        final = {
            "epoch": 0,
            "lr": None,
            "train_loss": tr["loss"],
            "train_accuracy": tr["accuracy"],
            "test_loss": te["loss"],
            "test_accuracy": te["accuracy"],
            "seconds": 0.0,
        }
    return TrainResult(history=history, final=final, optimizer=opt)


def _train_epoch(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig,
    opt: torch.optim.Optimizer,
    enforcer: MaskEnforcer,
    penalised: list[Tensor],
    epoch: int,
    seed: int,
) -> dict:
    """One pass over the shuffled training split; running mean data loss and accuracy."""
    device, dtype = placement(model)
    loss_fn = loss_function(data)
    classify = data.has_accuracy
    model.train()
    # Accuracy is summed on the device: one host sync per step (the loss check) is enough.
    loss_sum, correct, n = 0.0, torch.zeros((), dtype=torch.long, device=device), 0
    predictions = 0  # = n, or n·T next-token predictions for a language model
    batches = data.batches("train", config.batch_size, shuffle=True, seed=seed)
    for step, (x, y) in enumerate(batches):
        x, y = to_model(x, y, device, dtype)
        out = model(x)
        data_loss = loss_fn(out, y)
        loss = data_loss + penalty(penalised, config.l1, config.l2) if penalised else data_loss
        value = loss.item()
        if not math.isfinite(value):
            # Checked before the step, so the weights are never overwritten with NaN.
            raise DivergedError(epoch, step, value)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        enforcer.step(opt)
        loss_sum += (data_loss.item() if penalised else value) * y.shape[0]
        if classify:
            correct += (out.detach().argmax(dim=-1 if data.sequence else 1) == y).sum()
            predictions += y.numel()
        n += y.shape[0]
    n, predictions = max(n, 1), max(predictions, 1)
    accuracy = 100.0 * int(correct) / predictions if classify else None
    return {"loss": loss_sum / n, "accuracy": accuracy}
