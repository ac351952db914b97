"""Jobs that measure a model: its spectrum, its predicted and measured limits, its scores.

``prunelab spectrum`` / ``limit`` / ``score`` call the ``*_job`` functions on a checkpoint
(files go to the checkpoint's ``report/`` folder, atomically); the sweep's prediction
runs and the demo call :func:`predictions` on a trained model, so every limit row is
built once, by :func:`limit_rows`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_tensors

from prunelab import checkpoint, curvature, limits
from prunelab._io import atomic_write_bytes, atomic_write_json
from prunelab.curvature.settings import SpectrumSettings
from prunelab.errors import PrunelabError
from prunelab.experiments.files import report_dir
from prunelab.experiments.jobs.data import load_data
from prunelab.experiments.report import html, plots
from prunelab.experiments.report.spectrum import write_spectrum_report
from prunelab.limits.settings import ActualSettings, LimitSettings
from prunelab.procedures import PruneSettings
from prunelab.prunable import PrunableSpec
from prunelab.scores import CRITERIA, score
from prunelab.train import loss_function

#: what ``prunelab limit --method`` accepts (``all`` = every prediction)
LIMIT_METHODS = ("gaussian-width", "cosine", "all")
#: everything :func:`predictions` can compute
PREDICTIONS = ("gaussian-width", "cosine", "actual", "spectrum")
#: points kept of the ρ(R(p)) curve (a report needs a plot, not 1001 points)
CURVE_POINTS = 201


def _thin(curve: dict) -> dict:
    n = len(curve.get("p", []))
    if n <= CURVE_POINTS:
        return curve
    idx = np.linspace(0, n - 1, CURVE_POINTS).round().astype(int)
    return {k: [v[i] for i in idx] for k, v in curve.items()}


def spectrum(
    model, data, settings: SpectrumSettings, seed: int = 0, spec=None, *, progress: bool = False
):
    """The :class:`~prunelab.curvature.SpectrumSummary` of ``model`` on its training data.

    ``progress`` draws a bar of the Lanczos steps on stderr; it is not a setting (no
    number depends on it).
    """
    batches = list(data.batches("train", settings.batch_size, limit=settings.samples))
    return curvature.spectrum_summary(
        model, loss_function(data), batches, settings.num_iters, settings.num_runs, seed,
        settings.per_layer, operator=settings.operator, params=spec, progress=progress,
    )  # fmt: skip


def predictions(
    model,
    data,
    methods,
    *,
    limit: LimitSettings | None = None,
    actual: ActualSettings | None = None,
    spectrum_settings: SpectrumSettings | None = None,
    cosine_grid: int = 100001,
    spec: PrunableSpec | None = None,
    seed: int = 0,
) -> dict:
    """Every limit prediction (and ground truth) asked for, as plain dicts.

    Args:
        model: A trained network (not modified).
        data: Its dataset.
        methods: Names from :data:`PREDICTIONS`.
        limit: Settings of the Gaussian-width prediction.
        actual: Settings of the measured limit.
        spectrum_settings: Settings of the spectrum.
        cosine_grid: Grid points of the cosine curve.
        spec: Prunable set.
        seed: Seed of the stochastic estimators.

    Returns:
        ``method -> result dict`` (``LimitEstimate`` / ``ActualLimit`` /
        ``SpectrumSummary`` as dicts; the ρ curve thinned to :data:`CURVE_POINTS`).
    """
    out = {}
    for name in methods:
        if name == "gaussian-width":
            gw = dataclasses.asdict(limit or LimitSettings())
            est = limits.predict_limit(model, data, "gaussian-width", spec=spec, seed=seed, **gw)
            out[name] = {**est.to_dict(), "curve": _thin(est.to_dict()["curve"])}
        elif name == "cosine":
            out[name] = limits.cosine_rule(model, grid=cosine_grid, spec=spec).to_dict()
        elif name == "actual":
            a = dataclasses.asdict(actual or ActualSettings())
            out[name] = limits.find_actual_limit(model, data, spec=spec, **a).to_dict()
        elif name == "spectrum":
            s = spectrum_settings or SpectrumSettings()
            out[name] = spectrum(model, data, s, seed, spec).to_dict()
        else:
            raise PrunelabError(f"unknown prediction {name!r}; valid: {', '.join(PREDICTIONS)}")
    return out


def limit_rows(found: dict) -> list[dict]:
    """One row per prediction, beside the measured limit when it was measured.

    Args:
        found: The output of :func:`predictions`.

    Returns:
        Rows ``method, prediction, spread, lower, upper[, actual, delta_pp]``.
    """
    rows = []
    actual = (found.get("actual") or {}).get("p_actual")
    for method in ("gaussian-width", "cosine"):
        est = found.get(method)
        if est is None:
            continue
        if method == "cosine":  # a closed form: no spread; p_safe is its lower amount
            row = {"method": method, "prediction": est["p_star"], "spread": 0.0,
                   "lower": est["p_safe"], "upper": est["p_star"]}  # fmt: skip
        else:
            row = {"method": method, "prediction": est["p_hat"], "spread": est["spread"],
                   "lower": est["lower"], "upper": est["upper"]}  # fmt: skip
        if actual is not None:
            row["actual"] = actual
            row["delta_pp"] = limits.delta_pp(row["prediction"], actual)
        rows.append(row)
    return rows


def _load(ckpt, data_dir):
    model, mask, meta = checkpoint.load(ckpt)
    return model, mask, load_data(meta.get("data"), data_dir)


def spectrum_job(
    ckpt: str | Path,
    settings: SpectrumSettings | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    *,
    progress: bool = False,
) -> dict:
    """SLQ spectrum of a checkpoint's curvature over its prunable set.

    Writes ``report/spectrum/{spectral_density.png, ritz.csv, spectrum.json}`` and, with
    ``settings.per_layer``, ``layer_spectral_density.png`` and ``layer_ritz.csv``.
    ``progress`` shows a bar of the Lanczos steps on stderr.

    Returns:
        The :class:`~prunelab.curvature.SpectrumSummary` as a dict plus ``files``.
    """
    model, mask, data = _load(ckpt, data_dir)
    summary = spectrum(
        model, data, settings or SpectrumSettings(), seed, mask.spec, progress=progress
    )
    files = write_spectrum_report(summary, report_dir(ckpt, "spectrum"))
    return {**summary.to_dict(), "files": {k: str(v) for k, v in files.items()}}


def limit_job(
    ckpt: str | Path,
    settings: LimitSettings | None = None,
    method: str = "all",
    actual: ActualSettings | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> dict:
    """Predict a checkpoint's pruning limit and, given ``actual``, measure the real one.

    Writes ``report/limit/``: ``rho.png`` (``ρ(R(p))`` vs ``p``), ``limit.json``, and with
    ``actual`` ``accuracy_vs_sparsity.png`` with every prediction as a vertical line and
    the CSV of the accuracies the ground-truth search evaluated.

    Returns:
        ``{"rows": [...], "estimates": {...}, "actual": {...} | None, "files": [...]}``.
    """
    if method not in LIMIT_METHODS:
        raise PrunelabError(f"unknown limit method {method!r}; valid: {', '.join(LIMIT_METHODS)}")
    model, mask, data = _load(ckpt, data_dir)
    methods = ["gaussian-width", "cosine"] if method == "all" else [method]
    found = predictions(
        model, data, methods + (["actual"] if actual is not None else []), limit=settings,
        actual=actual, spec=mask.spec, seed=seed,
    )  # fmt: skip
    out = report_dir(ckpt, "limit")
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
    if measured is not None:
        ps, accs, losses = zip(*measured["curve"], strict=True)
        vlines = {f"{r['method']} p̂": r["prediction"] for r in limit_rows(found)}
        vlines["measured limit"] = measured["p_actual"]
        files.append(
            plots.accuracy_vs_sparsity(
                {"one-shot magnitude": (list(ps), list(accs), None)},
                out / "accuracy_vs_sparsity.png",
                title=str(ckpt),
                vlines=vlines,
                reference=measured["dense_accuracy"],
            )  # fmt: skip
        )
        rows = [{"sparsity": p, "accuracy": a, "loss": lo} for p, a, lo in measured["curve"]]
        files.append(html.write_csv(out / "accuracy_vs_sparsity.csv", rows))
    payload = {
        "checkpoint": str(ckpt),
        "rows": limit_rows(found),
        "estimates": {m: found[m] for m in methods},
        "actual": measured,
    }
    files.append(atomic_write_json(out / "limit.json", payload))
    payload["files"] = [str(f) for f in files]
    return payload


def score_job(
    ckpt: str | Path,
    criterion: str,
    hparams: dict | None = None,
    samples: int = PruneSettings.samples,
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
        data = load_data(meta.get("data"), data_dir)
        batches, loss_fn = (
            list(data.batches("train", PruneSettings.batch_size, limit=samples)),
            loss_function(data),
        )
    scores = score(model, criterion, batches, loss_fn, spec=mask.spec, **hp)
    out = report_dir(ckpt, "scores")
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
