"""Jobs behind ``prunelab spectrum``, ``prunelab limit`` and ``prunelab score``.

Each loads a checkpoint and its data, calls the library, writes its files into the
checkpoint's ``report/`` folder (atomically) and returns a JSON-able dict.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_tensors

from prunelab import checkpoint, curvature, limits
from prunelab._io import atomic_write_bytes, atomic_write_json
from prunelab.errors import PrunelabError
from prunelab.experiments import html, plots
from prunelab.experiments.jobs import load_data_for
from prunelab.scores import CRITERIA, score
from prunelab.train import loss_function

LIMIT_METHODS = ("gaussian-width", "cosine", "all")


def spectrum_job(
    ckpt: str | Path,
    samples: int = 1024,
    iters: int = 64,
    runs: int = 4,
    seed: int = 0,
    per_layer: bool = False,
    batch_size: int = 256,
    data_dir: str | Path | None = None,
) -> dict:
    """SLQ spectrum of a checkpoint's Hessian over its prunable set.

    Writes ``report/spectrum/{spectral_density.png, ritz.csv, spectrum.json}``.

    Returns:
        The :class:`~prunelab.curvature.SpectrumSummary` as a dict plus ``files``.
    """
    model, _, meta = checkpoint.load(ckpt)
    data = load_data_for(meta, data_dir)
    batches = list(data.batches("train", batch_size, limit=samples))
    summary = curvature.spectrum_summary(
        model, loss_function(data), batches, num_iters=iters, num_runs=runs, seed=seed,
        per_layer=per_layer,
    )  # fmt: skip
    files = curvature.write_spectrum_report(summary, Path(ckpt) / "report" / "spectrum")
    return {**summary.to_dict(), "files": {k: str(v) for k, v in files.items()}}


def limit_job(
    ckpt: str | Path,
    method: str = "all",
    verify: bool = False,
    tolerance: float = 0.5,
    samples: int = 1024,
    iters: int = 64,
    runs: int = 4,
    seeds: int = 3,
    seed: int = 0,
    eps: float | None = None,
    data_dir: str | Path | None = None,
) -> dict:
    """Predict a checkpoint's pruning limit and optionally measure the real one.

    Writes ``report/limit/`` : ``rho.png`` (``ρ(R(p))`` vs ``p``), ``limit.json``, and with
    ``verify`` ``accuracy_vs_sparsity.png`` with every prediction as a vertical line and
    the CSV of the accuracies the ground-truth search evaluated.

    Returns:
        ``{"rows": [...], "estimates": {...}, "actual": {...} | None, "files": [...]}``.
    """
    if method not in LIMIT_METHODS:
        raise PrunelabError(f"unknown limit method {method!r}; valid: {', '.join(LIMIT_METHODS)}")
    model, _, meta = checkpoint.load(ckpt)
    data = load_data_for(meta, data_dir)
    methods = ["gaussian-width", "cosine"] if method == "all" else [method]
    out = Path(ckpt) / "report" / "limit"
    estimates = {
        m: limits.predict_limit(
            model,
            data,
            m,
            eps=eps,
            num_iters=iters,
            num_runs=runs,
            num_seeds=seeds,
            samples=samples,
            seed=seed,
        )  # fmt: skip
        for m in methods
    }
    actual = limits.find_actual_limit(model, data, tolerance=tolerance) if verify else None
    rows = []
    for m, est in estimates.items():
        row = {"method": m, "prediction": est.p_hat, "spread": est.spread, "lower": est.lower,
               "upper": est.upper}  # fmt: skip
        if actual is not None:
            row["actual"] = actual.p_actual
            row["delta_pp"] = limits.delta_pp(est.p_hat, actual.p_actual)
        rows.append(row)
    files = []
    if "gaussian-width" in estimates:
        curve = estimates["gaussian-width"].curve
        files.append(
            plots.line_plot(
                {"ρ(R(p))": (curve["p"], curve["rho"]), "p": (curve["p"], curve["p"])},
                out / "rho.png",
                xlabel="sparsity p",
                ylabel="ρ(R(p))",
                title="Gaussian-width crossing ρ(R(p)) = p",
            )  # fmt: skip
        )
    if actual is not None:
        ps, accs, losses = zip(*actual.curve, strict=True)
        vlines = {f"{m} p̂": est.p_hat for m, est in estimates.items()}
        vlines["measured limit"] = actual.p_actual
        files.append(
            plots.accuracy_vs_sparsity(
                {"one-shot magnitude": (list(ps), list(accs), None)},
                out / "accuracy_vs_sparsity.png",
                title=str(ckpt),
                vlines=vlines,
                reference=actual.dense_accuracy,
            )  # fmt: skip
        )
        files.append(
            html.write_csv(
                out / "accuracy_vs_sparsity.csv",
                [{"sparsity": p, "accuracy": a, "loss": lo} for p, a, lo in actual.curve],
            )
        )
    payload = {
        "checkpoint": str(ckpt),
        "rows": rows,
        "estimates": {m: est.to_dict() for m, est in estimates.items()},
        "actual": dataclasses.asdict(actual) if actual is not None else None,
    }
    files.append(atomic_write_json(out / "limit.json", payload))
    payload["files"] = [str(f) for f in files]
    return payload


def score_job(
    ckpt: str | Path,
    criterion: str,
    hparams: dict | None = None,
    samples: int = 1000,
    data_dir: str | Path | None = None,
) -> dict:
    """Score every prunable weight of a checkpoint and save the scores and a histogram.

    Writes ``report/scores/<criterion>.safetensors`` (one tensor per parameter) and
    ``<criterion>.png`` (histogram of log10 scores over surviving weights).

    Returns:
        Per-layer summary statistics of the scores and the file paths.
    """
    crit = CRITERIA.get(criterion)
    hp = dataclasses.asdict(crit.make_hparams(**(hparams or {})))
    model, mask, meta = checkpoint.load(ckpt)
    batches = loss_fn = None
    if crit.needs_data:
        data = load_data_for(meta, data_dir)
        batches, loss_fn = list(data.batches("train", 256, limit=samples)), loss_function(data)
    scores = score(model, criterion, batches, loss_fn, spec=mask.spec, **hp)
    out = Path(ckpt) / "report" / "scores"
    tensors = {k: v.detach().cpu().contiguous() for k, v in scores.items()}
    st = atomic_write_bytes(out / f"{criterion}.safetensors", save_tensors(tensors))
    alive = torch.cat([v[mask.masks[k]].flatten().double() for k, v in tensors.items()])
    counts, edges = np.histogram(torch.log10(alive.abs().clamp_min(1e-30)).numpy(), bins=80)
    png = plots.histogram(
        edges.tolist(), counts.tolist(), out / f"{criterion}.png",
        title=f"{criterion} scores of surviving weights", xlabel=f"log10 |{criterion} score|",
    )  # fmt: skip
    rows = [
        {"layer": k, "kept": int(mask.masks[k].sum()), "mean": float(v[mask.masks[k]].mean()),
         "max": float(v.max()), "min": float(v[mask.masks[k]].min())}
        for k, v in tensors.items()
    ]  # fmt: skip
    return {"criterion": criterion, "hparams": hp, "layers": rows,
            "files": [str(st), str(png)]}  # fmt: skip
