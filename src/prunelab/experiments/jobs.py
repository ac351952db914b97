"""Whole jobs behind the CLI and the sweep runner: train a checkpoint, prune a checkpoint.

Each job loads what it needs, calls the library, writes one checkpoint atomically and
returns its ``meta`` dict. The CLI only parses arguments, calls these and prints.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from prunelab import checkpoint, models
from prunelab import data as datasets
from prunelab._hashing import stable_hash
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask
from prunelab.procedures import run_procedure
from prunelab.prunable import PrunableSpec
from prunelab.scores import CRITERIA
from prunelab.train import TrainConfig, evaluate, train_model

log = logging.getLogger(__name__)


def load_data_for(meta: dict, data_dir: str | Path | None = None) -> datasets.DataBundle:
    """Reload the dataset a checkpoint was trained on (optionally from another directory)."""
    spec = dict(meta.get("data") or {})
    name = spec.pop("name", None)
    if name is None:
        raise PrunelabError("checkpoint meta.json has no data spec; cannot reload its dataset")
    seed = spec.pop("seed", 0)
    stored_dir = spec.pop("data_dir", None)
    return datasets.load(name, seed=seed, data_dir=data_dir or stored_dir, **spec)


def train_checkpoint(
    model_name: str,
    data: datasets.DataBundle,
    config: TrainConfig,
    out: str | Path,
    spec: PrunableSpec | None = None,
    weights: str | Path | None = None,
    force: bool = False,
) -> dict:
    """Build a model, train it densely and save a checkpoint.

    Args:
        model_name: A registered model name or ``package.module:factory``.
        data: The dataset.
        config: Training configuration (its ``seed`` also seeds the initialisation).
        out: Output checkpoint directory.
        spec: Prunable set recorded with the checkpoint.
        weights: Optional ``state_dict`` file to start from (user models).
        force: Replace an existing different run in ``out``.

    Returns:
        The checkpoint's ``meta`` dict.
    """
    config.validate()
    spec = spec or PrunableSpec()
    run = {
        "job": "train",
        "model": model_name,
        "data": data.spec,
        "train": config.to_dict(),
        "prunable": spec.to_dict(),
        "weights": str(weights) if weights else None,
    }
    run_id = stable_hash(run)
    checkpoint.check_output_dir(out, run_id, force)
    torch.manual_seed(config.seed)  # the initialisation is part of the run's identity
    model = models.build(model_name, data)
    if weights:
        models.load_user_weights(model, weights)
    start = time.perf_counter()
    result = train_model(model, data, config, mask=Mask.dense(model, spec))
    meta = {
        "run_id": run_id,
        "job": "train",
        "data": data.spec,
        "train": config.to_dict(),
        "seed": config.seed,
        "history": result.history,
        "metrics": {"dense": evaluate(model, data)},
        "seconds": time.perf_counter() - start,
    }
    return checkpoint.save(out, model, Mask.dense(model, spec), meta)


def prune_checkpoint(
    ckpt: str | Path,
    criterion: str,
    sparsity: float,
    out: str | Path,
    *,
    scope: str = "global",
    hparams: dict | None = None,
    steps: int = 1,
    at_init: bool = False,
    bn_recalibrate: bool = False,
    rounds: int | None = None,
    finetune: TrainConfig | None = None,
    loss_change: str | None = None,
    data_dir: str | Path | None = None,
    score_samples: int = 1000,
    force: bool = False,
) -> dict:
    """Prune a checkpoint with any criterion and procedure, optionally fine-tune, and save.

    Args:
        ckpt: Source checkpoint directory.
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Fraction of prunable weights removed, in ``[0, 1)``.
        out: Output checkpoint directory.
        scope: ``"global"`` or ``"layer"`` ranking.
        hparams: Criterion hyper-parameters.
        steps: Re-scored pruning steps (1 = one-shot; paper 001's iterative pruning).
        at_init: Treat the checkpoint as an initialisation (paper 002): prune, then train.
        bn_recalibrate: Recompute BatchNorm statistics before scoring at init.
        rounds: Scoring rounds at init (SynFlow defaults to 100).
        finetune: Fine-tuning (or, with ``at_init``, training) configuration.
        loss_change: ``"hvp"`` or ``"diagonal"``: record predicted vs measured ΔL per step.
        data_dir: Override the dataset directory stored in the checkpoint.
        score_samples: Training examples used by data-dependent criteria.
        force: Replace an existing different run in ``out``.

    Returns:
        The new checkpoint's ``meta`` dict; ``meta["record"]`` is the procedure's
        :class:`~prunelab.procedures.PruneRecord` with metrics right after pruning and
        after fine-tuning.
    """
    sparsity = check_sparsity(sparsity)
    crit = CRITERIA.get(criterion)
    hp = dataclasses.asdict(crit.make_hparams(**(hparams or {})))
    if finetune is not None:
        finetune.validate()
    model, parent_mask, parent_meta = checkpoint.load(ckpt)
    settings = {
        "criterion": criterion,
        "hparams": hp,
        "sparsity": sparsity,
        "scope": scope,
        "steps": steps,
        "at_init": at_init,
        "bn_recalibrate": bn_recalibrate,
        "rounds": rounds,
        "finetune": finetune.to_dict() if finetune else None,
        "loss_change": loss_change,
        "score_samples": score_samples,
    }
    run_id = stable_hash({"job": "prune", "parent": parent_meta.get("run_id"), **settings})
    checkpoint.check_output_dir(out, run_id, force)
    data = load_data_for(parent_meta, data_dir)
    mask, record = run_procedure(
        model,
        data,
        criterion,
        sparsity,
        steps=steps,
        at_init=at_init,
        bn_recalibrate=bn_recalibrate,
        rounds=rounds,
        scope=scope,
        spec=parent_mask.spec,
        previous=parent_mask,
        hparams=hp,
        score_samples=score_samples,
        finetune=finetune,
        loss_change=loss_change,
        parent_meta=parent_meta,
    )
    meta = {
        "run_id": run_id,
        "job": "prune",
        "parent": str(ckpt),
        "data": parent_meta.get("data"),
        "train": parent_meta.get("train"),
        "seed": parent_meta.get("seed"),
        "settings": settings,
        "record": record.to_dict(),
    }
    return checkpoint.save(out, model, mask, meta)
