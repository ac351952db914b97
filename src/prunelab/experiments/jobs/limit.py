"""The ``prunelab limit`` job: predicted limits beside the measured one, on any task.

The task of the checkpoint's data picks the measured metric
(:mod:`prunelab.limits.task_metric`): accuracy for a classifier, validation loss for a
language model, ``1 − cos`` for an embedding model. For the two loss tasks the loss-based
predictors (the quadratic model, the Gaussian width, the certified GGN limit) take the
same ``ε`` as the measured limit unless ``--eps`` is given, so each prediction sits beside
the truth it claims. ``--per-layer`` adds the per-layer limits and the sparsity
allocation of :mod:`prunelab.limits.allocation` beside its baselines.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prunelab import limits
from prunelab._io import atomic_write_json
from prunelab.errors import PrunelabError
from prunelab.experiments.files import main_process, report_dir
from prunelab.experiments.jobs.measure import LIMIT_METHODS, _load, predictions
from prunelab.experiments.report import html, plots
from prunelab.limits.actual import DEFAULT_GRID
from prunelab.limits.allocation import ALLOCATIONS, allocate, total_kept
from prunelab.limits.settings import ActualSettings, AllocationSettings, LimitSettings
from prunelab.limits.task_metric import check_tolerances, limit_rule, loss_eps

#: ``--method all`` per task: the quadratic model and the calibration baseline predict
#: the one-shot *loss* limit, which is what ``--verify`` measures on the loss tasks (not
#: on a classifier, whose measured limit is on accuracy), so there they join the others
ALL_METHODS = {
    "classification": ["gaussian-width", "certified", "cosine"],
    "language-model": ["quadratic", "calibration", "gaussian-width", "certified", "cosine"],
    "embedding": ["quadratic", "calibration", "gaussian-width", "certified", "cosine"],
}


def limit_rows(found: dict) -> list[dict]:
    """One row per prediction, beside the measured limit when it was measured.

    Args:
        found: The output of :func:`~prunelab.experiments.jobs.measure.predictions`.

    Returns:
        Rows ``method, prediction, spread, lower, upper[, actual, delta_pp]``.
    """
    rows = []
    actual = (found.get("actual") or {}).get("p_actual")
    for method in ("quadratic", "calibration", "gaussian-width", "certified", "cosine"):
        est = found.get(method)
        if est is None:
            continue
        if method == "certified":  # the GGN limit: its quadrature bracket and probe s.e.
            row = {"method": "certified (GGN)", "prediction": est["p_mid"],
                   "spread": est["stderr"], "lower": est["p_lower"], "upper": est["p_upper"],
                   "converged": est["converged"],
                   "rank_deficient": est["rank_deficient"]}  # fmt: skip
        elif method == "cosine":  # a closed form: no spread; p_safe is its lower amount
            row = {"method": method, "prediction": est["p_star"], "spread": 0.0,
                   "lower": est["p_safe"], "upper": est["p_star"]}  # fmt: skip
        elif method == "quadratic":  # one grid scan: its resolution is the grid's
            row = {"method": "quadratic (one-shot loss)", "prediction": est["p_hat"],
                   "spread": 0.0, "lower": est["p_hat"], "upper": est["p_hat"]}  # fmt: skip
        elif method == "calibration":  # measured on training examples: their bootstrap
            lim = est["loss_limit"]
            row = {"method": "calibration (one-shot loss)", "prediction": lim["value"],
                   "spread": lim["sd"], "lower": lim["low"], "upper": lim["high"]}  # fmt: skip
        else:
            row = {"method": method, "prediction": est["p_hat"], "spread": est["spread"],
                   "lower": est["lower"], "upper": est["upper"]}  # fmt: skip
        if actual is not None:
            row["actual"] = actual
            row["delta_pp"] = limits.delta_pp(row["prediction"], actual)
        rows.append(row)
    return rows


def tolerance_summary(task: str, actual: ActualSettings, eps: float | None) -> dict:
    """The measured rule and the predictors' ``ε`` in one dict (stated in the output)."""
    rule = limit_rule(
        task, tolerance=actual.tolerance, loss_tolerance=actual.loss_tolerance,
        min_cosine=actual.min_cosine, strict=actual.strict,
    )  # fmt: skip
    loss_based = rule.metric.key == "loss"
    return {
        "task": task,
        "metric": rule.metric.key,
        "unit": rule.metric.unit,
        "eps": rule.eps,
        "stated": rule.stated,
        # the ε of the loss-based predictors: the measured rule's on a loss task
        "predictor_eps": eps if eps is not None else (rule.eps if loss_based else None),
        "quadratic_eps": loss_eps(task, actual.loss_tolerance, actual.min_cosine),
    }


def limit_job(
    ckpt: str | Path,
    settings: LimitSettings | None = None,
    method: str = "all",
    actual: ActualSettings | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    data_options: dict | None = None,
    *,
    progress: bool = False,
    device: str | None = None,
    allocation: AllocationSettings | None = None,
    tolerances: ActualSettings | None = None,
) -> dict:
    """Predict a checkpoint's pruning limit and, given ``actual``, measure the real one.

    Writes ``report/limit/``: ``rho.png`` (``ρ(R(p))`` vs ``p``), ``limit.json``, and with
    ``actual`` ``accuracy_vs_sparsity.png`` (a loss task: ``loss_vs_sparsity.png``) with
    every prediction as a vertical line and the CSV of the values the search evaluated.

    Args:
        ckpt: Checkpoint directory.
        settings: The spectral predictions' settings; ``eps=None`` on a loss task means
            the measured rule's ``ε``.
        method: One of :data:`~prunelab.experiments.jobs.measure.LIMIT_METHODS`.
        actual: Settings of the measured limit (``None``: not measured). Its tolerances
            also set the ``ε`` of the loss-based predictors on loss tasks.
        seed: Seed of the stochastic estimators.
        data_dir: Override of the stored dataset directory.
        data_options: Loader options.
        progress: Progress bars on stderr.
        device: Torch device.
        allocation: With ``per_layer``, also the per-layer limits and allocations.
        tolerances: The tolerances when ``actual`` is ``None`` (the predictors' ``ε`` on a
            loss task); default :class:`ActualSettings`'s.

    Returns:
        ``{"rows", "estimates", "actual", "tolerance", "files"[, "per_layer"]}``.
    """
    if method not in LIMIT_METHODS:
        raise PrunelabError(f"unknown limit method {method!r}; valid: {', '.join(LIMIT_METHODS)}")
    tol = actual or tolerances or ActualSettings()
    check_tolerances(tol.tolerance, tol.loss_tolerance, tol.min_cosine)  # before any load
    if allocation is not None:  # a bad --sparsity / --grid-step fails before any load
        total_kept({"all": 10**12}, allocation.sparsity)
        allocation.grid()
    settings = settings or LimitSettings()
    model, mask, data = _load(ckpt, data_dir, data_options, "limit", device)
    summary = tolerance_summary(data.task, tol, settings.eps)
    if summary["predictor_eps"] is not None and settings.eps is None:
        settings = dataclasses.replace(settings, eps=summary["predictor_eps"])
    methods = ALL_METHODS[data.task] if method == "all" else [method]
    found = predictions(
        model, data, [m for m in methods if m not in ("quadratic", "calibration")]
        + (["actual"] if actual is not None else []), limit=settings, actual=actual,
        spec=mask.spec, seed=seed, progress=progress,
    )  # fmt: skip
    grid = list(tol.grid) if tol.grid is not None else list(DEFAULT_GRID)
    if "quadratic" in methods:  # on the measured limit's grid (one product per point)
        found["quadratic"] = limits.quadratic_one_shot_limit(
            model, data, summary["quadratic_eps"], grid, samples=settings.samples,
            batch_size=settings.batch_size, spec=mask.spec,
        ).to_dict()  # fmt: skip
    if "calibration" in methods:  # the same grid, measured on the same training examples
        found["calibration"] = limits.calibration_limit(
            model, data, summary["quadratic_eps"], grid, samples=settings.samples,
            seed=seed, spec=mask.spec,
        ).to_dict()  # fmt: skip
    per_layer = None
    if allocation is not None and allocation.per_layer:
        per_layer = per_layer_report(model, data, mask.spec, allocation, settings, summary, seed)
    rows = limit_rows(found)
    if not main_process():  # torchrun: rank 0 alone writes
        return {"checkpoint": str(ckpt), "rows": rows, "tolerance": summary, "files": []}
    files = _plots(found, rows, report_dir(ckpt, "limit"), str(ckpt), summary["metric"])
    payload = {
        "checkpoint": str(ckpt),
        "rows": rows,
        "estimates": {m: found[m] for m in methods},
        "actual": found.get("actual"),
        "tolerance": summary,
    }
    if per_layer is not None:
        payload["per_layer"] = per_layer
    files.append(atomic_write_json(report_dir(ckpt, "limit") / "limit.json", payload))
    payload["files"] = [str(f) for f in files]
    return payload


def _plots(found: dict, rows: list[dict], out: Path, title: str, metric: str) -> list:
    """``rho.png`` and the measured curve (accuracy or loss vs sparsity) with its CSV."""
    files = []
    if "gaussian-width" in found:
        curve = found["gaussian-width"]["curve"]
        files.append(
            plots.line_plot(
                {"ρ(R(p))": (curve["p"], curve["rho"]), "p": (curve["p"], curve["p"])},
                out / "rho.png",
                xlabel="sparsity p",
                ylabel="ρ(R(p))",
                title="Gaussian-width crossing ρ(R(p)) = p",
            )  # fmt: skip
        )
    measured = found.get("actual")
    if measured is None:
        return files
    ps, accs, losses = zip(*measured["curve"], strict=True)
    vlines = {f"{r['method']} p̂": r["prediction"] for r in rows}
    vlines["measured limit"] = measured["p_actual"]
    name = "accuracy_vs_sparsity" if metric == "accuracy" else "loss_vs_sparsity"
    ys, ref = (accs, measured["dense_accuracy"]) if metric == "accuracy" else (
        losses, measured["dense_loss"])  # fmt: skip
    files.append(
        plots.accuracy_vs_sparsity(
            {"one-shot magnitude": (list(ps), list(ys), None)},
            out / f"{name}.png",
            title=title,
            vlines=vlines,
            reference=ref,
            ylabel="test accuracy (%)" if metric == "accuracy" else "test loss",
        )  # fmt: skip
    )
    csv_rows = [{"sparsity": p, "accuracy": a, "loss": lo} for p, a, lo in measured["curve"]]
    files.append(html.write_csv(out / f"{name}.csv", csv_rows))
    return files


def per_layer_report(
    model, data, spec, allocation: AllocationSettings, limit: LimitSettings, tolerance: dict,
    seed: int = 0,
) -> dict:  # fmt: skip
    """Per-layer limits and every allocation at ``allocation.sparsity``, as plain values.

    The per-layer limits use the quadratic model's ``ε`` (``tolerance["quadratic_eps"]``)
    or, for the Gaussian width, the predictors' ``ε`` when one is set.

    Returns:
        ``{"sparsity", "predictor", "eps", "rows": [...], "allocations": {...}}``.
    """
    eps = tolerance["quadratic_eps"]
    if allocation.predictor == "gaussian-width" and limit.eps is not None:
        eps = float(limit.eps)
    found = allocate(
        model, data, allocation.sparsity, ALLOCATIONS, predictor=allocation.predictor,
        eps=eps, grid=allocation.grid(), samples=limit.samples, batch_size=limit.batch_size,
        num_iters=limit.num_iters, num_runs=limit.num_runs, seed=seed, spec=spec,
    )  # fmt: skip
    curv = found["curvature"]
    rows = []
    for name, size in curv.sizes.items():
        row = {"layer": name, "D": size, "predicted limit": curv.limits[name]}
        for method, alloc in found.items():
            row[method] = alloc.sparsities()[name]
        rows.append(row)
    total = {"layer": "overall", "D": sum(curv.sizes.values()), "predicted limit": None}
    total.update({m: a.overall() for m, a in found.items()})
    rows.append(total)
    return {
        "sparsity": allocation.sparsity,
        "predictor": allocation.predictor,
        "eps": eps,
        "rows": rows,
        "allocations": {m: a.to_dict() for m, a in found.items()},
    }
