"""Iterative pruning without retraining (paper 001): score, mask, re-score at the masked point.

``k`` steps follow the exponential **density** schedule ``d_t = d_0 (d / d_0)^(t/k)``
(``d_0`` = density of the starting mask, 1 for a dense model; ``d`` = target density),
so every step removes the same fraction of the remaining weights. Before each step the
current mask is applied to the weights, and the criterion is evaluated there (the
gradient and curvature of the *pruned* network). Masks only shrink (previously pruned
weights score ``-inf`` in :meth:`Mask.from_scores`), and the last step uses the target
sparsity itself, so the final count is exactly ``round((1-p)·D)`` (global scope).
Weights are never updated between steps; fine-tuning, if asked, comes after the last one.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from torch import nn

from prunelab._evaluate import restore_modes, save_modes
from prunelab._progress import progress_bar
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask
from prunelab.procedures._common import (
    SCORE_BATCH_SIZE,
    SCORE_SAMPLES,
    check_steps,
    finish,
    mean_loss,
    resolve_data,
    score_batches,
)
from prunelab.procedures.loss_change import SECOND_ORDER, predict_loss_change
from prunelab.procedures.record import PruneRecord, stage_metrics
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import CRITERIA, reconstruct, score
from prunelab.scores._common import check_choice
from prunelab.train import TrainConfig

log = logging.getLogger(__name__)


def density_schedule(target_density: float, steps: int, start_density: float = 1.0) -> list[float]:
    """Densities after each of ``steps`` steps: ``d_0 (d / d_0)^(t/T)``, ``t = 1..T``.

    The last entry is exactly ``target_density``.

    Example:
        >>> [round(d, 4) for d in density_schedule(0.01, 2)]
        [0.1, 0.01]
    """
    check_steps(steps)
    if not 0.0 < target_density <= start_density <= 1.0:
        raise PrunelabError(
            f"target density {target_density!r} must be in (0, start density {start_density!r}]"
        )
    ratio = target_density / start_density
    out = [start_density * ratio ** (t / steps) for t in range(1, steps)]
    return out + [target_density]


def prune_steps(
    model: nn.Module,
    criterion: str,
    sparsity: float,
    steps: int,
    batches: list | None,
    loss_fn,
    record: PruneRecord,
    *,
    hparams: dict,
    scope: str = "global",
    spec: PrunableSpec | None = None,
    previous: Mask | None = None,
    min_per_layer: int = 1,
    loss_batches: list | None = None,
    loss_change: str | None = None,
    nm: str | None = None,
    progress: bool = False,
) -> Mask:
    """The score → mask → apply loop shared by every procedure; fills ``record.step_log``.

    Scores are computed in ``eval()`` mode (the caller's modes are restored); the model
    ends with the final mask applied. A criterion that refits the kept weights
    (``sparsegpt``) does so after each mask, on the scoring batches. ``nm="N:M"`` makes
    every step's mask ``N:M`` (see :meth:`Mask.from_scores`).
    """
    mask = previous if previous is not None else Mask.dense(model, spec)
    schedule = density_schedule(1.0 - sparsity, steps, mask.density)
    record.densities = list(schedule)
    started = time.perf_counter()
    bar = progress_bar(len(schedule), f"scoring ({criterion})", progress)
    for t, density in enumerate(schedule, start=1):
        bar.update()
        mask.apply(model)  # re-score at the masked point
        modes = save_modes(model)
        model.eval()
        try:
            scores = score(model, criterion, batches, loss_fn, spec=mask.spec, **hparams)
        finally:
            restore_modes(modes)
        p_t = sparsity if t == steps else 1.0 - density
        new = Mask.from_scores(
            scores, p_t, scope, previous=mask, min_per_layer=min_per_layer, nm=nm
        )
        row = {"step": t, "density": new.density, "nnz": new.nnz}
        if loss_change is not None and loss_batches:
            row["loss_change"] = predict_loss_change(
                model, new, loss_batches, loss_fn, second_order=loss_change
            ).to_dict()
        # a refitting criterion needs the weights it is about to prune (their error is
        # what it compensates), so it runs before the mask zeroes them; it applies it
        refitted = reconstruct(model, criterion, new, batches, **hparams)
        if refitted is not None:
            row["reconstructed"] = True
            new = refitted
        new.apply(model)
        if loss_batches and loss_fn is not None:
            row["loss"] = mean_loss(model, loss_batches, loss_fn)
        record.step_log.append(row)
        log.debug("step %d/%d: density %.5g", t, steps, new.density)
        mask = new
    bar.close()
    record.seconds["scoring"] = time.perf_counter() - started
    return mask


def iterative(
    model: nn.Module,
    criterion: str,
    sparsity: float,
    steps: int,
    batches: list | None = None,
    loss_fn=None,
    *,
    data: DataBundle | None = None,
    scope: str = "global",
    spec: PrunableSpec | None = None,
    previous: Mask | None = None,
    min_per_layer: int = 1,
    finetune: TrainConfig | None = None,
    score_samples: int = SCORE_SAMPLES,
    score_batch_size: int = SCORE_BATCH_SIZE,
    loss_change: str | None = None,
    track_loss: bool = True,
    eval_train: bool = True,
    procedure: str = "iterative",
    nm: str | None = None,
    progress: bool = False,
    **hparams,
) -> tuple[Mask, PruneRecord]:
    """Prune ``model`` in place in ``steps`` re-scored steps, then optionally fine-tune.

    Args:
        model: The network; its pruned weights are zeroed in place (and it is fine-tuned
            in place when ``finetune`` is given).
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Target fraction removed, in ``[0, 1)``.
        steps: Number of steps ``k >= 1`` (1 = one-shot).
        batches: Scoring ``(x, y)`` batches (default: the first ``score_samples``
            training examples of ``data``).
        loss_fn: Mean-reduced loss (default: the task loss of ``data``).
        data: Dataset for default batches and for the metrics before / right after
            pruning / after fine-tuning.
        scope: ``"global"``, ``"layer"`` or ``"row"`` ranking.
        spec: Prunable set (default: ``previous.spec`` or :class:`PrunableSpec()`).
        previous: A mask to start from; its pruned weights stay pruned.
        min_per_layer: Weights each layer keeps at least.
        finetune: Fine-tuning config (``None`` or 0 epochs: none).
        score_samples: Training examples for default scoring batches.
        score_batch_size: Examples per default scoring batch (memory only).
        loss_change: ``None``, ``"hvp"`` or ``"diagonal"``: also record the predicted
            vs measured loss change of every step (see :mod:`.loss_change`).
        track_loss: Record the loss on the scoring batches after every step.
        eval_train: Also evaluate the training split in the metrics.
        procedure: Name stored in the record.
        progress: Draw a bar of the scoring steps on stderr (not a setting).
        nm: ``"N:M"`` semi-structured masks (e.g. ``"2:4"``; ``sparsity >= 1 - N/M``).
        **hparams: The criterion's hyper-parameters (e.g. ``curvature``, ``locality``).

    Returns:
        ``(final mask, PruneRecord)``.

    Raises:
        PrunelabError: Bad sparsity / steps / hparams, a data criterion without data,
            a model without prunable parameters.
    """
    sparsity = check_sparsity(sparsity)
    check_steps(steps)
    if loss_change is not None:
        check_choice(loss_change, "loss_change", SECOND_ORDER)
    crit = CRITERIA.get(criterion)
    hp = dataclasses.asdict(crit.make_hparams(**hparams))
    if data is not None and "input_shape" in hp and hp["input_shape"] is None:
        hp["input_shape"] = tuple(data.input_shape)  # data-free scores still need a shape
    spec = spec or (previous.spec if previous is not None else PrunableSpec())
    if not prunable_parameters(model, spec):
        raise PrunelabError("model has no prunable parameters (no Linear/Conv weights)")
    batches, loss_fn = resolve_data(
        data, batches, loss_fn, score_samples, score_batch_size, crit.needs_data
    )
    if crit.needs_data and not batches:
        raise PrunelabError(f"criterion {criterion!r} needs data: pass batches or data")
    loss_batches = batches
    if loss_batches is None and data is not None and (track_loss or loss_change):
        loss_batches = score_batches(data, score_samples, score_batch_size)
    if loss_change is not None and not loss_batches:
        raise PrunelabError("loss_change needs data: pass batches and loss_fn, or data")
    if not track_loss and loss_change is None:
        loss_batches = None
    record = PruneRecord(procedure, criterion, hp, sparsity, scope, steps, [])
    record.extra["score_examples"] = sum(int(x.shape[0]) for x, _ in batches or [])
    record.dense = stage_metrics(model, data, eval_train)
    mask = prune_steps(
        model,
        criterion,
        sparsity,
        steps,
        batches,
        loss_fn,
        record,
        hparams=hp,
        scope=scope,
        spec=spec,
        previous=previous,
        min_per_layer=min_per_layer,
        loss_batches=loss_batches,
        loss_change=loss_change,
        nm=nm,
        progress=progress,
    )
    if nm is not None:
        record.extra["nm"] = nm
    if not track_loss:
        for row in record.step_log:
            row.pop("loss", None)
    record.after_prune = stage_metrics(model, data, eval_train)
    finish(model, data, mask, record, finetune, eval_train)
    return mask, record
