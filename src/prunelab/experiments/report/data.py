"""Read a sweep directory and aggregate its results into report tables (no plotting).

Aggregation is over run seeds: for each (model, data, training, procedure, criterion,
sparsity) the mean and the sample standard deviation (``ddof=1``; 0 with one seed) of
every metric over the runs with status ``ok``. Failed and diverged runs are counted per
group and listed separately; they never enter a mean as accuracy 0.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from prunelab.errors import PrunelabError
from prunelab.experiments.files import CONFIG_FILE, STORE_FILE
from prunelab.experiments.store import ResultStore

GROUP_KEYS = ("model", "data", "training", "procedure", "criterion", "sparsity")
#: (column name, path into a run's metrics)
METRICS = (
    ("achieved_sparsity", ("sparsity",)),
    ("acc_pruned", ("after_prune", "accuracy")),
    ("loss_pruned", ("after_prune", "loss")),
    ("acc_finetuned", ("after_finetune", "accuracy")),
    ("loss_finetuned", ("after_finetune", "loss")),
    ("acc_dense", ("dense", "accuracy")),
    # the task's own measures: validation perplexity (language model), mean cosine to the
    # dense embeddings (embedding fidelity); None for other tasks
    ("ppl_pruned", ("after_prune", "perplexity")),
    ("ppl_finetuned", ("after_finetune", "perplexity")),
    ("ppl_dense", ("dense", "perplexity")),
    ("cos_pruned", ("after_prune", "cosine")),
    ("cos_finetuned", ("after_finetune", "cosine")),
    ("nnz", ("nnz",)),
    ("compression", ("compression",)),
    ("mac_reduction", ("flops", "reduction")),
)


@dataclass
class SweepData:
    """Everything a report needs from a sweep directory.

    Attributes:
        out: The sweep directory.
        config: The resolved config dict stored with the results.
        config_hash: Its hash.
        runs: Rows of the ``runs`` table (``config`` and ``metrics`` decoded).
        dense: ``dense hash -> row`` of the ``dense`` table.
        predictions: ``dense hash -> prediction result`` (rows with a result).
        prediction_rows: Raw rows of the ``predictions`` table (with status / error).
        studies: Rows of the ``studies`` table.
    """

    out: Path
    config: dict
    config_hash: str
    runs: list[dict] = field(default_factory=list)
    dense: dict[str, dict] = field(default_factory=dict)
    predictions: dict[str, dict] = field(default_factory=dict)
    prediction_rows: list[dict] = field(default_factory=list)
    studies: list[dict] = field(default_factory=list)


def load_sweep(out: str | Path) -> SweepData:
    """Read ``OUT/results.sqlite``.

    Raises:
        PrunelabError: If ``out`` has no results store.
    """
    out = Path(out)
    path = out / STORE_FILE
    if not path.is_file():
        raise PrunelabError(f"{str(out)!r} is not a sweep directory (no {STORE_FILE})")
    with ResultStore(path) as store:
        config = store.get_meta("config") or {}
        data = SweepData(out, config, str(store.get_meta("config_hash")))
        data.runs = store.rows("runs")
        data.dense = {r["hash"]: r for r in store.rows("dense")}
        data.prediction_rows = store.rows("predictions")
        data.predictions = {
            r["dense_hash"]: r["result"] for r in data.prediction_rows if r["result"]
        }
        data.studies = store.rows("studies")
    return data


def dig(obj: object, path: tuple) -> object:
    """``obj[path[0]][path[1]]...`` or ``None`` where a level is missing."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def run_key(run: dict) -> dict:
    """The grouping values of a run row (labels, as shown in reports)."""
    c = run["config"]
    return {
        "model": c["model"],
        "data": c["data"].get("label") or c["data"]["name"],
        "training": c["training"],
        "procedure": c["procedure"]["label"],
        "criterion": c["criterion_label"],
        "sparsity": c["sparsity"],
    }


def run_label(run: dict) -> str:
    """``model/data/training/procedure/criterion/p=.../seed=...`` of a run row."""
    k = run_key(run)
    return "/".join(str(k[g]) for g in GROUP_KEYS[:5]) + (
        f"/p={k['sparsity']}/seed={run['config']['seed']}"
    )


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (0 for one value; ``None``s for none)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _sort_value(v: object) -> tuple:
    return (0, float(v), "") if isinstance(v, int | float) else (1, 0.0, str(v))


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per group of :data:`GROUP_KEYS`: ``<metric>_mean`` / ``<metric>_sd`` per metric.

    Also ``seeds`` (ok runs), ``failed`` and ``diverged`` counts. Rows are sorted by the
    group keys (numeric sparsities first, ascending).
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        key = run_key(run)
        groups[tuple(key[g] for g in GROUP_KEYS)].append(run)
    rows = []
    for key, members in groups.items():
        ok = [r for r in members if r["status"] == "ok"]
        row = dict(zip(GROUP_KEYS, key, strict=True))
        # the mask's structure, its own column (the procedure label also names N:M)
        proc = members[0]["config"]["procedure"]
        row["scope"], row["nm"] = proc.get("scope"), proc.get("nm") or "-"
        row["seeds"] = len(ok)
        row["failed"] = sum(r["status"] == "failed" for r in members)
        row["diverged"] = sum(r["status"] == "diverged" for r in members)
        for name, path in METRICS:
            row[f"{name}_mean"], row[f"{name}_sd"] = mean_sd([dig(r["metrics"], path) for r in ok])
        rows.append(row)
    rows.sort(key=lambda r: tuple(_sort_value(r[g]) for g in GROUP_KEYS))
    return rows


def dense_tags(data: SweepData) -> dict[str, dict]:
    """``dense hash -> {"data": label, "training": variant}`` as the runs name them."""
    out: dict[str, dict] = {}
    for run in data.runs:
        if run.get("dense_hash"):
            c = run["config"]
            training = c["training"]
            if c["procedure"]["kind"] == "lomp":  # LOMP trains its own ℓ1 dense model
                training += f" + lomp l1={c['procedure']['l1']:g}"
            data_label = c["data"].get("label") or c["data"]["name"]
            out.setdefault(run["dense_hash"], {"data": data_label, "training": training})
    return out


def dense_label(dense_row: dict, tags: dict | None = None) -> dict:
    """``model``, ``data`` (label when known), ``training``, ``seed``, ``l1`` of a dense row."""
    c = dense_row["config"]
    tag = (tags or {}).get(dense_row["hash"], {})
    return {
        "model": c["model"],
        "data": tag.get("data", c["data"]["name"]),
        "training": tag.get("training", ""),
        "seed": c["train"]["seed"],
        "l1": c["train"].get("l1", 0.0),
    }


def prediction_rows(data: SweepData) -> list[dict]:
    """One row per dense model: dense metrics, predicted limits, actual limit, errors (pp)."""
    tags = dense_tags(data)
    rows = []
    for h, dense in data.dense.items():
        pred = data.predictions.get(h) or {}
        m = dense.get("metrics") or {}
        row = {"dense": h, **dense_label(dense, tags)}
        row["status"] = dense["status"]
        row["acc_dense"] = dig(m, ("dense", "accuracy"))
        row["kurtosis"] = dig(m, ("weights", "kurtosis"))
        row["gw_p_hat"] = dig(pred, ("gaussian-width", "p_hat"))
        row["gw_spread"] = dig(pred, ("gaussian-width", "spread"))
        row["gw_lower"] = dig(pred, ("gaussian-width", "lower"))
        row["trace_lower"] = dig(pred, ("gaussian-width", "trace_lower"))
        row["eps"] = dig(pred, ("gaussian-width", "eps"))
        row["zero_mass"] = dig(pred, ("gaussian-width", "zero_mass"))
        row["p_star"] = dig(pred, ("cosine", "p_star"))
        row["p_safe"] = dig(pred, ("cosine", "p_safe"))
        row["k2"] = dig(pred, ("cosine", "k2"))
        row["kurtosis_tensors"] = dig(pred, ("cosine", "kurtosis_tensors"))
        for tensors, suffix in (("weights", "weights"), ("weights+bias", "weights_bias")):
            # K² and p_safe under each convention (older rows: None)
            for key in ("k2", "p_safe"):
                row[f"{key}_{suffix}"] = dig(pred, ("cosine", "by_kurtosis_tensors", tensors, key))
        row["p_actual"] = dig(pred, ("actual", "p_actual"))
        for name in ("gw_p_hat", "p_star", "p_safe"):
            if row[name] is not None and row["p_actual"] is not None:
                row[f"delta_pp_{name}"] = 100.0 * (row[name] - row["p_actual"])
            else:
                row[f"delta_pp_{name}"] = None
        errors = pred.get("errors") or {}
        row["prediction_errors"] = "; ".join(f"{k}: {v}" for k, v in errors.items()) or None
        rows.append(row)
    return rows


def limit_lines(data: SweepData, dense_hashes: set[str]) -> dict[str, float]:
    """Mean predicted / measured limits over the given dense models (for vertical lines)."""
    picks = {
        "gaussian-width p̂": ("gaussian-width", "p_hat"),
        "cosine p*": ("cosine", "p_star"),
        "cosine p_safe": ("cosine", "p_safe"),
        "actual limit": ("actual", "p_actual"),
    }
    out = {}
    for name, path in picks.items():
        mean, _ = mean_sd([dig(data.predictions.get(h), path) for h in dense_hashes])
        if mean is not None:
            out[name] = mean
    return out


def config_text(out: Path) -> str:
    """The config TOML text the sweep directory was created for ('' if missing)."""
    path = out / CONFIG_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def pretty(obj: object) -> str:
    """Compact JSON for settings shown on the page (keys with ``None`` values left out)."""
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if v is not None}
    return json.dumps(obj, sort_keys=True, default=str)
