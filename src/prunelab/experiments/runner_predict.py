"""Worker jobs for the per-dense-model predictions and the model-free studies.

Same contract as :mod:`prunelab.experiments.runner_jobs`: one plain dict in, one plain
dict ``{"status", "error", "payload", "seconds"}`` out. A prediction method that raises
is recorded in ``payload["errors"]`` (the others are kept) and the row is ``failed``.
"""

from __future__ import annotations

import time

import numpy as np

from prunelab import checkpoint
from prunelab.curvature import spectrum_summary
from prunelab.experiments.runner_jobs import load_data
from prunelab.limits import cosine_rule, find_actual_limit, predict_limit
from prunelab.limits.linear_theory import simulate_linear_pruning
from prunelab.prunable import PrunableSpec
from prunelab.train import loss_function

#: points kept of the ρ(R(p)) curve (the report needs a plot, not 1001 points)
CURVE_POINTS = 201


def _thin(curve: dict) -> dict:
    n = len(curve.get("p", []))
    if n <= CURVE_POINTS:
        return curve
    idx = np.linspace(0, n - 1, CURVE_POINTS).round().astype(int)
    return {k: [v[i] for i in idx] for k, v in curve.items()}


def _method(name: str, model, data, spec: PrunableSpec, settings: dict, seed: int) -> dict:
    if name == "gaussian-width":
        gw = dict(settings["gaussian_width"])
        est = predict_limit(model, data, "gaussian-width", spec=spec, seed=seed, **gw).to_dict()
        est["curve"] = _thin(est["curve"])
        return est
    if name == "cosine":
        return cosine_rule(model, grid=settings["cosine_grid"], spec=spec).to_dict()
    if name == "actual":
        a = dict(settings["actual"])
        grid = a.pop("grid")
        return find_actual_limit(model, data, grid=grid, spec=spec, **a).to_dict()
    if name == "spectrum":
        s = settings["spectrum"]
        batches = list(data.batches("train", s["batch_size"], limit=s["samples"]))
        summary = spectrum_summary(
            model,
            loss_function(data),
            batches,
            s["num_iters"],
            s["num_runs"],
            seed,
            operator=s["operator"],
            params=spec,
        )
        return summary.to_dict()
    raise ValueError(f"unknown prediction method {name!r}")


def predict(job: dict) -> dict:
    """Every prediction method asked for, on one trained dense checkpoint."""
    start = time.perf_counter()
    payload: dict = {"errors": {}}
    try:
        model, _, _ = checkpoint.load(job["dense_path"])
        data = load_data(job["data"], job["data_dir"])
        spec = PrunableSpec(**job["prunable"])
        for name in job["settings"]["methods"]:
            try:
                payload[name] = _method(name, model, data, spec, job["settings"], job["seed"])
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


def study(job: dict) -> dict:
    """Paper 000's linear-theory simulation for one feature-scale setting."""
    start = time.perf_counter()
    s = {k: v for k, v in job.items() if k != "kind"}
    try:
        result = simulate_linear_pruning(
            s.pop("sparsities"), s.pop("seeds"), methods=s.pop("methods"), **s
        ).to_dict()
        status, error = "ok", None
    except Exception as exc:
        result, status, error = None, "failed", f"{type(exc).__name__}: {exc}"
    return {
        "status": status,
        "error": error,
        "payload": result,
        "seconds": time.perf_counter() - start,
    }
