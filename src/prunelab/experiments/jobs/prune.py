"""The prune job: a model in, pruned (and fine-tuned) as :class:`PruneSettings` say.

``prunelab prune``, the sweep's runs and the demo all call :func:`prune_job`; the kind of
procedure is decided in one place, :func:`prunelab.procedures.run_procedure`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from prunelab import checkpoint
from prunelab._hashing import stable_hash
from prunelab.data.base import DataBundle
from prunelab.errors import check_sparsity
from prunelab.experiments.jobs.data import load_data
from prunelab.masks import Mask
from prunelab.procedures import PruneRecord, PruneSettings, run_procedure
from prunelab.prunable import PrunableSpec
from prunelab.scores import CRITERIA
from prunelab.train import TrainConfig


@dataclass
class PruneOutcome:
    """What :func:`prune_job` returns.

    Attributes:
        meta: The pruned checkpoint's ``meta.json`` (written only when ``out`` was given).
        model: The pruned (fine-tuned) network.
        mask: Its mask.
        record: The procedure's record (metrics right after pruning and after fine-tuning).
        data: The dataset used.
    """

    meta: dict
    model: nn.Module
    mask: Mask
    record: PruneRecord
    data: DataBundle


def identity(record_settings: dict) -> dict:
    """The settings that name a prune run: how it is watched (``progress``) is not one."""
    finetune = record_settings.get("finetune")
    if finetune:
        finetune = {k: v for k, v in finetune.items() if k != "progress"}
    return {**record_settings, "finetune": finetune}


def prune_job(
    source: str | Path | tuple[nn.Module, dict | None],
    criterion: str,
    sparsity: float,
    settings: PruneSettings | None = None,
    *,
    hparams: dict | None = None,
    finetune: TrainConfig | None = None,
    out: str | Path | None = None,
    data: DataBundle | None = None,
    data_dir: str | Path | None = None,
    data_options: dict | None = None,
    spec: PrunableSpec | None = None,
    force: bool = False,
    device: str | None = None,
    eval_train: bool = True,
    progress: bool = False,
) -> PruneOutcome:
    """Prune a checkpoint (or a model in memory), optionally fine-tune, optionally save.

    Args:
        source: A checkpoint directory, or ``(model, meta)`` for a model built in
            memory (e.g. a sweep's seeded initialisation; ``meta`` may be ``None``).
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Fraction of prunable weights removed, in ``[0, 1)``.
        settings: The procedure (default: one-shot, global).
        hparams: Criterion hyper-parameters (defaults filled in and recorded).
        finetune: Fine-tuning after pruning (for ``at-init`` / ``imp``: the training).
        out: Checkpoint directory to write (``None``: nothing is written).
        data: The dataset (default: reloaded from the checkpoint's ``meta.json``).
        data_dir: Directory to reload the dataset from instead of the stored one.
        data_options: Loader options overriding the stored ones (e.g. ``verify_counts``).
        spec: Prunable set of a model in memory (a checkpoint brings its own).
        force: Replace an existing different run in ``out``.
        device: Where a checkpoint's model is put (``cpu``, ``cuda``, ``auto``).
        eval_train: Also evaluate the training split at every stage (``train_loss``,
            ``train_accuracy``); not part of the run id, since the mask does not change.
        progress: Draw a bar of the scoring steps on stderr (never part of the run id).

    Returns:
        A :class:`PruneOutcome`.
    """
    sparsity = check_sparsity(sparsity)
    settings = (settings or PruneSettings()).validate()
    hp = dataclasses.asdict(CRITERIA.get(criterion).make_hparams(**(hparams or {})))
    if finetune is not None:
        finetune.validate()
    if isinstance(source, tuple):
        model, parent_meta = source
        parent_mask = None
    else:
        model, parent_mask, parent_meta = checkpoint.load(source, device)
    parent_meta = parent_meta or {}
    record_settings = {
        "criterion": criterion,
        "hparams": hp,
        "sparsity": sparsity,
        "procedure": settings.to_dict(),
        "finetune": finetune.to_dict() if finetune else None,
    }
    run_id = stable_hash(
        {"job": "prune", "parent": parent_meta.get("run_id"), **identity(record_settings)}
    )
    if out is not None:
        checkpoint.check_output_dir(out, run_id, force)
    if data is None:
        data = load_data(parent_meta.get("data"), data_dir, options=data_options)
    mask, record = run_procedure(
        model, data, criterion, sparsity, settings, hparams=hp,
        spec=parent_mask.spec if parent_mask is not None else spec, previous=parent_mask,
        finetune=finetune, parent_meta=parent_meta, eval_train=eval_train, progress=progress,
    )  # fmt: skip
    meta = {
        "run_id": run_id,
        "job": "prune",
        "parent": None if isinstance(source, tuple) else str(source),
        "model": parent_meta.get("model"),
        "data": parent_meta.get("data", data.spec),
        "train": parent_meta.get("train"),
        "prunable": mask.spec.to_dict(),
        "seed": parent_meta.get("seed"),
        "settings": record_settings,
        "record": record.to_dict(),
    }
    if out is not None:
        meta = checkpoint.save(out, model, mask, meta)
    return PruneOutcome(meta, model, mask, record, data)
