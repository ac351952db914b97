"""What is measured about a trained or pruned model and stored with it.

No timings in here, so identical runs store identical numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import kurtosis

from prunelab.experiments.jobs.flops import multiply_adds
from prunelab.limits import kurtosis_of_kurtoses, layer_kurtoses
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters

#: metric blocks whose loss / accuracy must be finite for a run to count as "ok"
CHECKED = ("dense", "after_prune", "after_finetune")
HIST_BINS = 60


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
