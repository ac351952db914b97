"""Iterative magnitude pruning with weight rewinding (IMP, lottery-ticket style; paper 004).

1. Train the dense network for ``train_config.epochs`` epochs, keeping a copy of the
   whole state (parameters and buffers) at the end of epoch ``rewind_epoch`` (0 = the
   initialisation).
2. For each of ``rounds`` rounds on the exponential density schedule: prune the trained
   weights by global magnitude (masks only shrink), **rewind** every surviving weight,
   bias and buffer to the saved early iterate, and retrain with the mask kept exact for
   the remaining ``epochs − rewind_epoch`` epochs.

Retraining uses a fresh optimiser (no stale momentum, as in paper 001's fine-tuning)
and restarts the learning-rate schedule over the remaining epochs;
:func:`prunelab.train.train_model` has no way to resume a schedule mid-run, so with a
non-constant schedule the retraining schedule is a compressed copy of the original.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask
from prunelab.procedures._common import check_steps
from prunelab.procedures.iterative import density_schedule
from prunelab.procedures.record import PruneRecord, stage_metrics
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score
from prunelab.train import TrainConfig, train_model


def imp(
    model: nn.Module,
    data: DataBundle,
    sparsity: float,
    rounds: int,
    train_config: TrainConfig,
    rewind_epoch: int = 1,
    *,
    scope: str = "global",
    spec: PrunableSpec | None = None,
    min_per_layer: int = 1,
    eval_train: bool = True,
    callback: Callable[[int, nn.Module, Mask], None] | None = None,
) -> tuple[Mask, PruneRecord]:
    """Run IMP with rewinding on ``model`` (trained and pruned in place).

    Args:
        model: The network at initialisation.
        data: The dataset.
        sparsity: Final fraction removed, in ``[0, 1)``.
        rounds: Prune-rewind-retrain rounds (``>= 1``).
        train_config: Dense training configuration; retraining uses the same one with
            ``epochs − rewind_epoch`` epochs.
        rewind_epoch: Epoch whose end state the survivors are rewound to (0 = init).
        scope: ``"global"`` or ``"layer"`` magnitude ranking.
        spec: Prunable set.
        min_per_layer: Weights each layer keeps at least.
        eval_train: Also evaluate the training split in the metrics.
        callback: Called as ``callback(round, model, mask)`` right after rewinding,
            before retraining (e.g. to inspect the rewound weights).

    Returns:
        ``(final mask, PruneRecord)``; ``extra["rounds"]`` has one row per round with the
        metrics of the pruned trained network (``after_prune``) and after retraining.
    """
    sparsity = check_sparsity(sparsity)
    check_steps(rounds, "rounds")
    train_config.validate()
    if isinstance(rewind_epoch, bool) or not isinstance(rewind_epoch, int):
        raise PrunelabError(f"rewind_epoch must be an integer, got {rewind_epoch!r}")
    if not 0 <= rewind_epoch <= train_config.epochs:
        raise PrunelabError(
            f"rewind_epoch must be in [0, epochs={train_config.epochs}], got {rewind_epoch}"
        )
    spec = spec or PrunableSpec()
    if not prunable_parameters(model, spec):
        raise PrunelabError("model has no prunable parameters (no Linear/Conv weights)")
    hparams = {"rounds": rounds, "rewind_epoch": rewind_epoch}
    record = PruneRecord("imp", "magnitude", hparams, sparsity, scope, rounds, [])

    snapshot = {}
    if rewind_epoch == 0:
        snapshot = copy.deepcopy(model.state_dict())

    def keep_early(row: dict) -> None:
        if row["epoch"] == rewind_epoch:
            snapshot.update(copy.deepcopy(model.state_dict()))

    start = time.perf_counter()
    dense_history = train_model(model, data, train_config, callback=keep_early).history
    record.seconds["dense_training"] = time.perf_counter() - start
    record.dense = stage_metrics(model, data, eval_train)
    record.extra["dense_history"] = dense_history

    retrain = dataclasses.replace(train_config, epochs=train_config.epochs - rewind_epoch)
    mask = Mask.dense(model, spec)
    record.densities = density_schedule(1.0 - sparsity, rounds)
    rows = []
    for r, density in enumerate(record.densities, start=1):
        p_r = sparsity if r == rounds else 1.0 - density
        scores = score(model, "magnitude", spec=spec)
        mask = Mask.from_scores(scores, p_r, scope, previous=mask, min_per_layer=min_per_layer)
        mask.apply(model)
        row = {"round": r, "density": mask.density, "nnz": mask.nnz}
        row["after_prune"] = stage_metrics(model, data, eval_train)
        model.load_state_dict(snapshot)
        mask.apply(model)
        if callback is not None:
            callback(r, model, mask)
        t0 = time.perf_counter()
        row["history"] = train_model(model, data, retrain, mask=mask).history
        row["seconds"] = time.perf_counter() - t0
        row["after_retrain"] = stage_metrics(model, data, eval_train)
        rows.append(row)
    record.extra["rounds"] = rows
    record.step_log = [{k: r[k] for k in ("round", "density", "nnz")} for r in rows]
    record.after_prune = rows[-1]["after_prune"]
    record.after_finetune = rows[-1]["after_retrain"]
    record.history = rows[-1]["history"]
    record.set_mask(mask)
    return mask, record
