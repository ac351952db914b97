"""The work a sweep hands to its workers: train a dense model, prune, predict, study.

Every job is a module-level function of one plain dict (picklable for spawned worker
processes) that returns a plain dict ``{"status", "error", "payload", "seconds"}`` and
never raises for a problem of the run itself: a :class:`~prunelab.train.DivergedError`
or non-finite metric gives ``"diverged"``, any other exception ``"failed"`` with its
message. The parent process alone writes results to the store. The work itself is done
by the job layer (:mod:`prunelab.experiments.jobs`), the same functions the CLI calls.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from prunelab import checkpoint, models
from prunelab.curvature.settings import SpectrumSettings
from prunelab.device import resolve_device
from prunelab.experiments.jobs import load_data, predictions, prune_job, train_job
from prunelab.experiments.jobs.metrics import nonfinite, run_metrics
from prunelab.limits.linear_theory import simulate_linear_pruning
from prunelab.limits.settings import ActualSettings, LimitSettings, TruthSettings
from prunelab.procedures import PruneSettings
from prunelab.procedures.settings import FROM_INIT
from prunelab.prunable import PrunableSpec
from prunelab.train import DivergedError, TrainConfig

log = logging.getLogger(__name__)


def init_worker(threads: int) -> None:
    """Initialiser of a spawned worker: share the cores between workers."""
    torch.set_num_threads(max(1, threads))
    logging.basicConfig(level=logging.WARNING)


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


def _train_dense(job: dict) -> dict:
    spec = job["spec"]
    data = load_data(spec["data"], job["data_dir"], cache=True)
    meta = train_job(
        spec["model"], data, TrainConfig(**spec["train"]), job["path"],
        spec=PrunableSpec(**spec["prunable"]), force=True,
        extra={"sweep_dense_hash": job["hash"], "sweep_dense": spec},
        device=job.get("device"),
    )  # fmt: skip
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in meta["history"]]
    return {**meta["metrics"], "history": history}


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


def _prune(job: dict) -> dict:
    run = job["run"]
    data = load_data(run["data"], job["data_dir"], cache=True)
    proc = {k: v for k, v in run["procedure"].items() if k != "label"}
    settings = PruneSettings(**proc)
    if settings.kind in FROM_INIT:  # prune the seeded initialisation, then train
        torch.manual_seed(run["seed"])
        source = (models.build(run["model"], data).to(resolve_device(job.get("device"))), None)
        finetune = TrainConfig(**run["train"])
    else:
        source = job["dense_path"]
        finetune = TrainConfig(**run["finetune"]) if run["finetune"] else None
        if finetune is not None and finetune.epochs == 0:
            finetune = None
    outcome = prune_job(
        source, run["criterion"], job["sparsity"], settings, hparams=run["hparams"],
        finetune=finetune, data=data, spec=PrunableSpec(**run["prunable"]),
        device=job.get("device"), eval_train=job.get("eval_train", True),
    )  # fmt: skip
    return run_metrics(outcome.record, outcome.mask, outcome.model, data)


def prune(job: dict) -> dict:
    """Run one grid point: prune (and fine-tune / train) as its procedure says."""
    return _guard(_prune, job)


def predict(job: dict) -> dict:
    """Every prediction method asked for, on one trained dense checkpoint.

    A method that raises is recorded in ``payload["errors"]`` (the others are kept)
    and the row is ``failed``.
    """
    start = time.perf_counter()
    payload: dict = {"errors": {}}
    settings = job["settings"]
    options = dict(
        limit=LimitSettings(**settings["gaussian_width"]) if "gaussian_width" in settings else None,
        actual=ActualSettings(**settings["actual"]) if "actual" in settings else None,
        spectrum_settings=SpectrumSettings(**settings["spectrum"])
        if "spectrum" in settings
        else None,
        truth=TruthSettings(**settings["truth"]) if "truth" in settings else None,
        cosine_grid=settings.get("cosine_grid", 100001),
        kurtosis_tensors=settings.get("kurtosis_tensors", "weights"),
        spec=PrunableSpec(**job["prunable"]),
        seed=job["seed"],
    )
    try:
        model, _, _ = checkpoint.load(job["dense_path"], job.get("device"))
        data = load_data(job["data"], job["data_dir"], cache=True)
        for name in settings["methods"]:
            try:
                found = predictions(model, data, [name], **options)
                payload.setdefault("seconds", {}).update(found.pop("seconds", {}))
                payload.update(found)
            except Exception as exc:  # one failing method must not lose the others
                payload["errors"][name] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        payload["errors"]["load"] = f"{type(exc).__name__}: {exc}"
    errors = payload["errors"]
    return {
        "status": "failed" if errors else "ok",
        "error": "; ".join(f"{k}: {v}" for k, v in errors.items()) or None,
        "payload": payload,
        "seconds": time.perf_counter() - start,
    }


def _study(job: dict) -> dict:
    s = {k: v for k, v in job.items() if k not in ("kind", "device")}  # numpy: no device
    return simulate_linear_pruning(
        s.pop("sparsities"), s.pop("seeds"), methods=s.pop("methods"), **s
    ).to_dict()


def study(job: dict) -> dict:
    """Paper 000's linear-theory simulation for one feature-scale setting."""
    return _guard(_study, job)
