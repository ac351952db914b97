"""The train job: build a model, train it densely, measure it, save one checkpoint.

``prunelab train``, the sweep's dense models and the demo all call :func:`train_job`,
so every trained checkpoint has the same ``meta.json`` shape::

    run_id, job = "train", model, data (DataBundle.spec), train (TrainConfig),
    prunable, weights, seed, history, metrics = {dense, num_weights, weights}, seconds

plus whatever the caller adds under ``extra`` keys (a sweep adds its dense hash).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from prunelab import checkpoint, models
from prunelab import data as datasets
from prunelab._hashing import stable_hash
from prunelab._model_errors import check_model_fits
from prunelab.device import resolve_device
from prunelab.experiments.jobs.metrics import nonfinite, weight_statistics
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec
from prunelab.train import DivergedError, TrainConfig, evaluate, loss_function, train_model


def run_identity(
    model_name: str,
    data: datasets.DataBundle,
    config: TrainConfig,
    spec: PrunableSpec,
    weights: str | Path | None = None,
) -> str:
    """The ``run_id`` of a training run: what determines the trained weights.

    ``progress`` (how a run is watched) and ``data_dir`` (where the files live) do not
    change the weights, so they are not part of it.
    """
    train = {k: v for k, v in config.to_dict().items() if k != "progress"}
    data_spec = {k: v for k, v in data.spec.items() if k != "data_dir"}
    run = {"job": "train", "model": model_name, "data": data_spec, "train": train,
           "prunable": spec.to_dict(), "weights": str(weights) if weights else None}  # fmt: skip
    return stable_hash(run)


def train_job(
    model_name: str,
    data: datasets.DataBundle,
    config: TrainConfig,
    out: str | Path,
    *,
    spec: PrunableSpec | None = None,
    weights: str | Path | None = None,
    force: bool = False,
    extra: dict | None = None,
    device: str | None = None,
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
        extra: More ``meta.json`` keys (e.g. a sweep's dense hash).
        device: Where the model is built and trained (``cpu``, ``cuda``, ``auto``).

    Returns:
        The checkpoint's ``meta`` dict.

    Raises:
        DivergedError: The loss or a final metric is not finite (nothing is written).
        PrunelabError: ``out`` cannot be written, or the model does not fit the data
            (checked on two examples before training; nothing is written).
    """
    config.validate()
    spec = spec or PrunableSpec()
    run_id = run_identity(model_name, data, config, spec, weights)
    checkpoint.check_output_dir(out, run_id, force)
    torch.manual_seed(config.seed)  # the initialisation is part of the run's identity
    model = models.build(model_name, data).to(resolve_device(device))
    if weights:
        models.load_user_weights(model, weights)
    check_model_fits(model, data, loss_function(data), model_name)  # before any training
    start = time.perf_counter()
    history = train_model(model, data, config, mask=Mask.dense(model, spec)).history
    test, train = evaluate(model, data, "test"), evaluate(model, data, "train")
    metrics = {
        "dense": {**test, "train_loss": train["loss"], "train_accuracy": train["accuracy"]},
        "num_weights": Mask.dense(model, spec).total,
        "weights": weight_statistics(model, spec),
    }
    bad = nonfinite(metrics)
    if bad:  # never leave a checkpoint of a diverged model
        raise DivergedError(config.epochs, None, float("nan"), metric=bad)
    meta = {
        "run_id": run_id,
        "job": "train",
        "model": model_name,
        "data": data.spec,
        "train": config.to_dict(),
        "prunable": spec.to_dict(),
        "weights": str(weights) if weights else None,
        "seed": config.seed,
        "history": history,
        "metrics": metrics,
        "seconds": time.perf_counter() - start,
        **(extra or {}),
    }
    return checkpoint.save(out, model, Mask.dense(model, spec), meta)
