"""Whole jobs behind the CLI and the sweep runner: train a checkpoint, prune a checkpoint.

Each job loads what it needs, calls the library, writes one checkpoint atomically and
returns its ``meta`` dict. The CLI only parses arguments, calls these and prints.
"""

from __future__ import annotations

import copy
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
from prunelab.prunable import PrunableSpec
from prunelab.scores import CRITERIA, score
from prunelab.train import TrainConfig, evaluate, loss_function, train_model

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
    scope: str = "global",
    hparams: dict | None = None,
    finetune: TrainConfig | None = None,
    data_dir: str | Path | None = None,
    score_samples: int = 1000,
    force: bool = False,
) -> dict:
    """Prune a checkpoint one-shot with any criterion, optionally fine-tune, and save.

    Args:
        ckpt: Source checkpoint directory.
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Fraction of prunable weights removed, in ``[0, 1)``.
        out: Output checkpoint directory.
        scope: ``"global"`` or ``"layer"`` ranking.
        hparams: Criterion hyper-parameters.
        finetune: Fine-tuning configuration (``None`` or 0 epochs: no fine-tuning).
        data_dir: Override the dataset directory stored in the checkpoint.
        score_samples: Training examples used by data-dependent criteria.
        force: Replace an existing different run in ``out``.

    Returns:
        The new checkpoint's ``meta`` dict, with metrics right after pruning and, if
        fine-tuned, after fine-tuning.
    """
    sparsity = check_sparsity(sparsity)
    crit = CRITERIA.get(criterion)
    hp = crit.make_hparams(**(hparams or {}))
    if finetune is not None:
        finetune.validate()
    model, parent_mask, parent_meta = checkpoint.load(ckpt)
    run = {
        "job": "prune",
        "parent": parent_meta.get("run_id"),
        "criterion": criterion,
        "hparams": dataclasses.asdict(hp),
        "sparsity": sparsity,
        "scope": scope,
        "finetune": finetune.to_dict() if finetune else None,
        "score_samples": score_samples,
    }
    run_id = stable_hash(run)
    checkpoint.check_output_dir(out, run_id, force)
    data = load_data_for(parent_meta, data_dir)
    loss_fn = loss_function(data)
    before = evaluate(model, data)
    batches = data.batches("train", 256, limit=score_samples) if crit.needs_data else None
    model.eval()
    scores = score(
        model, criterion, batches, loss_fn, spec=parent_mask.spec, **dataclasses.asdict(hp)
    )
    mask = Mask.from_scores(scores, sparsity, scope=scope, previous=parent_mask)
    pruned = copy.deepcopy(model)
    mask.apply(pruned)
    metrics = {"dense": before, "after_prune": evaluate(pruned, data)}
    history: list[dict] = []
    if finetune is not None and finetune.epochs > 0:
        history = train_model(pruned, data, finetune, mask=mask).history
        metrics["after_finetune"] = evaluate(pruned, data)
    meta = {
        "run_id": run_id,
        "job": "prune",
        "parent": str(ckpt),
        "data": parent_meta.get("data"),
        "train": parent_meta.get("train"),
        "seed": parent_meta.get("seed"),
        "criterion": {"name": criterion, "hparams": dataclasses.asdict(hp), "scope": scope},
        "finetune": finetune.to_dict() if finetune else None,
        "metrics": metrics,
        "history": history,
        "per_layer": mask.per_layer(),
        "collapsed": mask.collapsed,
    }
    return checkpoint.save(out, pruned, mask, meta)
