"""The work a sweep hands to its workers: train a dense model, predict, prune, study.

Every job is a module-level function of one plain dict (picklable for spawned worker
processes) that returns a plain dict ``{"status", "error", "payload", "seconds"}`` and
never raises for a problem of the run itself: a :class:`~prunelab.train.DivergedError`
or non-finite metric gives ``"diverged"``, any other exception ``"failed"`` with its
message. The parent process alone writes results to the store.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kurtosis

from prunelab import checkpoint, models
from prunelab import data as datasets
from prunelab._hashing import stable_hash
from prunelab.experiments.flops import multiply_adds
from prunelab.limits import kurtosis_of_kurtoses, layer_kurtoses
from prunelab.masks import Mask
from prunelab.procedures import at_init, imp, iterative
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.train import DivergedError, TrainConfig, evaluate, train_model

log = logging.getLogger(__name__)

_DATA_CACHE: dict[str, datasets.DataBundle] = {}
#: metric blocks whose loss / accuracy must be finite for a run to count as "ok"
CHECKED = ("dense", "after_prune", "after_finetune")
HIST_BINS = 60


def init_worker(threads: int) -> None:
    """Initialiser of a spawned worker: share the cores between workers."""
    torch.set_num_threads(max(1, threads))
    logging.basicConfig(level=logging.WARNING)


def load_data(spec: dict, data_dir: str = "") -> datasets.DataBundle:
    """Load (and cache per process) the dataset ``{"name", "seed", "options"}``."""
    key = stable_hash([spec, data_dir])
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = datasets.load(
            spec["name"], seed=spec["seed"], data_dir=data_dir or None, **spec["options"]
        )
    return _DATA_CACHE[key]


def _guard(fn, job: dict) -> dict:
    start = time.perf_counter()
    try:
        payload = fn(job)
        status, error = "ok", None
        bad = nonfinite(payload) if isinstance(payload, dict) else None
        if bad:
            status, error = "diverged", f"non-finite metric {bad}"
    except DivergedError as exc:
        payload, status, error = None, "diverged", str(exc)
    except Exception as exc:  # a failing run is recorded, the sweep goes on
        log.debug("job failed", exc_info=True)
        payload, status, error = None, "failed", f"{type(exc).__name__}: {exc}"
    return {
        "status": status,
        "error": error,
        "payload": payload,
        "seconds": time.perf_counter() - start,
    }


def nonfinite(metrics: dict) -> str | None:
    """The first ``<block>.<loss|accuracy>`` that is NaN or infinite, else ``None``."""
    for block in CHECKED:
        values = metrics.get(block) or {}
        for key in ("loss", "accuracy", "train_loss", "train_accuracy"):
            v = values.get(key)
            if isinstance(v, float) and not math.isfinite(v):
                return f"{block}.{key} = {v}"
    return None


def weight_statistics(model: torch.nn.Module, spec: PrunableSpec) -> dict:
    """Histogram of ``|θ|`` over the prunable set and the kurtoses of paper 003.

    Returns:
        ``{"hist_edges", "hist_counts"`` (``|θ|``, :data:`HIST_BINS` equal bins),
        ``"kurtosis"`` (Pearson, all weights pooled), ``"layer_kurtoses"``, ``"k2"``
        (kurtosis of the layer kurtoses, ``None`` when undefined), ``"num_weights"}``.
    """
    flat = torch.cat([p.detach().reshape(-1) for p in prunable_parameters(model, spec).values()])
    w = flat.double().cpu().numpy()
    counts, edges = np.histogram(np.abs(w), bins=HIST_BINS)
    layers = layer_kurtoses(model, spec)
    return {
        "hist_edges": edges.tolist(),
        "hist_counts": counts.tolist(),
        "kurtosis": float(kurtosis(w, fisher=False)),
        "layer_kurtoses": layers,
        "k2": kurtosis_of_kurtoses(list(layers.values())),
        "num_weights": int(w.size),
    }


def _init_model(name: str, data: datasets.DataBundle, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # the initialisation belongs to the run seed
    return models.build(name, data)


def _train_dense(job: dict) -> dict:
    spec = job["spec"]
    data = load_data(spec["data"], job["data_dir"])
    model = _init_model(spec["model"], data, spec["train"]["seed"])
    prunable = PrunableSpec(**spec["prunable"])
    config = TrainConfig(**spec["train"])
    history = train_model(model, data, config, mask=Mask.dense(model, prunable)).history
    test, train = evaluate(model, data, "test"), evaluate(model, data, "train")
    metrics = {
        "dense": {**test, "train_loss": train["loss"], "train_accuracy": train["accuracy"]},
        "history": [{k: v for k, v in row.items() if k != "seconds"} for row in history],
        "num_weights": Mask.dense(model, prunable).total,
        "weights": weight_statistics(model, prunable),
    }
    if nonfinite(metrics) is None:  # never leave a checkpoint of a diverged model
        meta = {"job": "train", "sweep_dense_hash": job["hash"], "sweep_dense": spec}
        meta.update(data=data.spec, train=spec["train"], seed=spec["train"]["seed"])
        checkpoint.save(job["path"], model, Mask.dense(model, prunable), {**meta, **metrics})
    return metrics


def train_dense(job: dict) -> dict:
    """Train a dense model and save it atomically at ``job["path"]``."""
    return _guard(_train_dense, job)


def dense_ready(path: str | Path, hash_: str) -> dict | None:
    """The ``meta.json`` of a complete checkpoint for dense model ``hash_``, else ``None``.

    :func:`prunelab.save` moves a finished temporary directory into place, so a
    directory at ``path`` is complete; the hash check guards against stray directories.
    """
    path = Path(path)
    if not checkpoint.is_checkpoint(path):
        return None
    try:
        meta = checkpoint.load_meta(path)
    except Exception:
        return None
    return meta if meta.get("sweep_dense_hash") == hash_ else None


def _per_layer(record) -> list[dict]:
    keys = ("name", "total", "kept", "density")
    return [{k: r[k] for k in keys} for r in record.per_layer]


def _loss_change(record) -> tuple[list[dict], dict | None]:
    steps = [dict(r["loss_change"], step=r["step"]) for r in record.step_log if "loss_change" in r]
    if not steps:
        return [], None
    total = {k: sum(s[k] for s in steps) for k in ("measured", "first_order", "second_order")}
    return steps, total


def run_metrics(record, mask: Mask, model, data) -> dict:
    """The metrics stored for one run (no timings, so identical runs store identical JSON)."""
    steps, total = _loss_change(record)
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in record.history]
    extra = {k: v for k, v in record.extra.items() if k in ("l1", "rewind_epoch")}
    if "rounds" in record.extra:
        keep = ("round", "density", "nnz", "after_prune", "after_retrain")
        extra["rounds"] = [{k: r[k] for k in keep} for r in record.extra["rounds"]]
    flops = multiply_adds(model, tuple(data.input_shape), mask)
    return {
        "procedure": record.procedure,
        "criterion": record.criterion,
        "target_sparsity": record.target_sparsity,
        "sparsity": record.sparsity,
        "density": 1.0 - record.sparsity,
        "nnz": record.nnz,
        "total": record.total,
        "compression": record.compression_ratio,
        "dense": record.dense,
        "after_prune": record.after_prune,
        "after_finetune": record.after_finetune,
        "per_layer": _per_layer(record),
        "collapsed": list(record.collapsed),
        "densities": list(record.densities),
        "step_log": [{k: v for k, v in r.items() if k != "loss_change"} for r in record.step_log],
        "loss_change": steps,
        "loss_change_total": total,
        "finetune_history": history,
        "bn_recalibrated": record.bn_recalibrated,
        "warnings": list(record.warnings),
        "flops": {k: v for k, v in flops.to_dict().items() if k != "per_layer"},
        "extra": extra,
    }


def _prune(job: dict) -> dict:
    run = job["run"]
    data = load_data(run["data"], job["data_dir"])
    proc, scoring = run["procedure"], run["scoring"]
    spec = PrunableSpec(**run["prunable"])
    p = job["sparsity"]
    options = dict(
        scope=proc["scope"],
        spec=spec,
        min_per_layer=scoring["min_per_layer"],
        score_samples=scoring["samples"],
        score_batch_size=scoring["batch_size"],
        loss_change=None if proc.get("loss_change", "none") == "none" else proc["loss_change"],
    )
    finetune = TrainConfig(**run["finetune"]) if run["finetune"] else None
    if finetune is not None and finetune.epochs == 0:
        finetune = None
    kind = proc["kind"]
    if kind == "at-init":
        model = _init_model(run["model"], data, run["seed"])
        mask, record = at_init(
            model,
            data,
            run["criterion"],
            p,
            proc["bn_recalibrate"],
            train_config=TrainConfig(**run["train"]),
            rounds=proc["rounds"],
            **options,
            **run["hparams"],
        )
    elif kind == "imp":
        model = _init_model(run["model"], data, run["seed"])
        mask, record = imp(
            model,
            data,
            p,
            proc["rounds"],
            TrainConfig(**run["train"]),
            proc["rewind_epoch"],
            scope=proc["scope"],
            spec=spec,
            min_per_layer=scoring["min_per_layer"],
        )
    else:
        model, _, _ = checkpoint.load(job["dense_path"])
        steps = proc.get("steps", 1)
        mask, record = iterative(
            model,
            run["criterion"],
            p,
            steps,
            data=data,
            finetune=finetune,
            procedure=kind,
            **options,
            **run["hparams"],
        )
        if kind == "lomp":
            record.extra["l1"] = proc["l1"]
    return run_metrics(record, mask, model, data)


def prune(job: dict) -> dict:
    """Run one grid point: prune (and fine-tune / train) as its procedure says."""
    return _guard(_prune, job)
