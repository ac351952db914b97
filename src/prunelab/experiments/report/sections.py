"""The run sections of a sweep report: each writes PNG + CSV and returns HTML blocks.

Every figure has the CSV behind it next to it (same stem), written atomically.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

from prunelab.experiments.report import html, plots
from prunelab.experiments.report.data import (
    SweepData,
    aggregate,
    dig,
    limit_lines,
    mean_sd,
    run_key,
)
from prunelab.procedures.settings import FROM_INIT


def slug(*parts: object) -> str:
    """A safe, unique file stem for a figure (readable prefix + short hash).

    Example:
        >>> slug("acc", "lenet300/digits", 0.5)[:24]
        'acc_lenet300_digits_0.5_'
    """
    text = "_".join(str(p) for p in parts)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60]
    return f"{safe}_{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def figure(rep: Path, stem: str, rows: list[dict], alt: str, draw, **kwargs) -> str:
    """Write ``stem.csv`` from ``rows`` and ``draw(path=stem.png, **kwargs)``; return the HTML."""
    html.write_csv(rep / f"{stem}.csv", rows)
    draw(path=rep / f"{stem}.png", **kwargs)
    return html.image(f"{stem}.png", alt, f"{stem}.csv")


def _groups(data: SweepData) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for run in data.runs:
        k = run_key(run)
        out[(k["model"], k["data"], k["training"], k["procedure"])].append(run)
    return out


def _quality(rows: list[dict]) -> tuple[str, str, bool]:
    """The task's own measure for a group's plots: ``(metric prefix, y label, log y)``.

    Perplexity for a language model (its token accuracy is a poor summary), mean cosine
    for an embedding task, accuracy for a classifier, the loss otherwise.
    """
    if any(r["ppl_pruned_mean"] is not None for r in rows):
        return "ppl", "validation perplexity", True
    if any(r["cos_pruned_mean"] is not None for r in rows):
        return "cos", "mean cosine to the dense embeddings", False
    if any(r["acc_pruned_mean"] is not None for r in rows):
        return "acc", "test accuracy (%)", False
    return "loss", "test loss", True


def accuracy_sections(data: SweepData, rep: Path) -> list[str]:
    """Accuracy (or loss) vs sparsity per criterion, before and after fine-tuning."""
    blocks = []
    for (model, dat, training, proc), runs in _groups(data).items():
        rows = aggregate(runs)
        denses = {r["dense_hash"] for r in runs if r.get("dense_hash")}
        vlines = limit_lines(data, denses)
        kind = runs[0]["config"]["procedure"]["kind"]
        metric, ylabel, logy = _quality(rows)
        dense_key = {"acc": "acc_dense_mean", "ppl": "ppl_dense_mean"}.get(metric)
        ref, _ = mean_sd([r[dense_key] for r in rows]) if dense_key else (None, None)
        if metric == "cos":
            ref = 1.0  # the dense model's embeddings are the targets
        title = f"{model} on {dat}, training {training}, {proc}"
        images = []
        for stage, word in (("pruned", "right after pruning"), ("finetuned", "after fine-tuning")):
            if kind == "at-init" and stage == "finetuned":
                word = "after training with the mask"
            curves = {}
            for crit in dict.fromkeys(r["criterion"] for r in rows):
                pts = [
                    r
                    for r in rows
                    if r["criterion"] == crit and r[f"{metric}_{stage}_mean"] is not None
                ]
                pts.sort(key=lambda r: r["achieved_sparsity_mean"])
                if pts:
                    curves[crit] = (
                        [r["achieved_sparsity_mean"] for r in pts],
                        [r[f"{metric}_{stage}_mean"] for r in pts],
                        [r[f"{metric}_{stage}_sd"] for r in pts],
                    )
            if not curves:
                continue
            stem = slug(metric, stage, model, dat, training, proc)
            images.append(
                figure(
                    rep,
                    stem,
                    rows,
                    f"{title}: {word}",
                    plots.accuracy_vs_sparsity,
                    curves=curves,
                    title=f"{title}\n{word} (mean ± sd over seeds)",
                    vlines=vlines,
                    reference=None if kind in FROM_INIT else ref,
                    ylabel=ylabel,
                    logy=logy,
                )
            )
        blocks.append(html.section(title, *images))
    return blocks


def layer_sections(data: SweepData, rep: Path) -> list[str]:
    """Per-layer density of every criterion at one sparsity per group."""
    wanted = (data.config.get("report") or {}).get("layer_sparsity")
    blocks = []
    for (model, dat, training, proc), runs in _groups(data).items():
        ok = [r for r in runs if r["status"] == "ok" and r["metrics"].get("per_layer")]
        numeric = sorted(
            {r["config"]["sparsity"] for r in ok if not isinstance(r["config"]["sparsity"], str)}
        )
        if not numeric:
            continue
        p = min(numeric, key=lambda s: abs(s - wanted)) if wanted is not None else numeric[-1]
        chosen = [r for r in ok if r["config"]["sparsity"] == p]
        layers = [row["name"] for row in chosen[0]["metrics"]["per_layer"]]
        series, rows = {}, []
        for crit in dict.fromkeys(r["config"]["criterion_label"] for r in chosen):
            members = [r for r in chosen if r["config"]["criterion_label"] == crit]
            dens = []
            for i, layer in enumerate(layers):
                m, sd = mean_sd([r["metrics"]["per_layer"][i]["density"] for r in members])
                dens.append(m)
                rows.append(
                    {"criterion": crit, "layer": layer, "density_mean": m, "density_sd": sd}
                )
            series[crit] = dens
        title = f"{model} on {dat}, {training}, {proc}: per-layer density at p = {p}"
        stem = slug("layers", model, dat, training, proc, p)
        blocks.append(
            figure(
                rep,
                stem,
                rows,
                title,
                plots.grouped_bars,
                categories=layers,
                series=series,
                ylabel="density (kept fraction)",
                title=title,
            )
        )
    return [html.section("Per-layer density", *blocks)] if blocks else []


def loss_change_section(data: SweepData, rep: Path) -> list[str]:
    """Predicted (first / second order) vs measured loss change of the pruning steps."""
    rows = []
    for run in data.runs:
        total = dig(run.get("metrics"), ("loss_change_total",))
        if run["status"] == "ok" and total:
            k = run_key(run)
            rows.append({**k, "seed": run["config"]["seed"], **total})
    if not rows:
        return []
    images = []
    for order in ("second_order", "first_order"):
        series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for r in rows:
            xs, ys = series[r["procedure"]]  # criteria are in the CSV; colours = steps
            xs.append(r[order])
            ys.append(r["measured"])
        word = order.replace("_", "-")
        images.append(
            figure(
                rep,
                slug("loss_change", order),
                rows,
                f"{word} predicted vs measured ΔL",
                plots.scatter,
                series=dict(series),
                xlabel=f"predicted ΔL ({word}, summed over steps)",
                ylabel="measured ΔL",
                title=f"Loss change of pruning: {word} Taylor model vs measurement",
                diagonal=True,
                symlog=True,
            )
        )
    note = html.paragraph(
        "Each point is one run (colour: procedure): the Taylor prediction of every pruning "
        "step summed over the steps, against the loss measured on the same scoring batches. "
        "The CSV names the criterion of each point.",
        note=True,
    )
    return [html.section("Predicted vs measured loss change", note, *images)]


#: more curves than this in one "procedures compared" figure would be unreadable
MAX_CURVES = 12


def procedure_sections(data: SweepData, rep: Path) -> list[str]:
    """Accuracy after fine-tuning of every (procedure, criterion), one figure per model/data.

    Only where a model / data / training has several procedures and at most
    :data:`MAX_CURVES` curves (e.g. 004's magnitude vs LOMP vs IMP at equal sparsity).
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in data.runs:
        k = run_key(run)
        groups[(k["model"], k["data"], k["training"])].append(run)
    images = []
    for (model, dat, training), runs in groups.items():
        rows = [r for r in aggregate(runs) if r["acc_finetuned_mean"] is not None]
        names = list(dict.fromkeys(f"{r['procedure']}: {r['criterion']}" for r in rows))
        procedures = {r["procedure"] for r in rows}
        if len(procedures) < 2 or len(names) > MAX_CURVES:
            continue
        curves = {}
        for name in names:
            pts = sorted(
                (r for r in rows if f"{r['procedure']}: {r['criterion']}" == name),
                key=lambda r: r["achieved_sparsity_mean"],
            )
            curves[name] = (
                [r["achieved_sparsity_mean"] for r in pts],
                [r["acc_finetuned_mean"] for r in pts],
                [r["acc_finetuned_sd"] for r in pts],
            )
        title = f"{model} on {dat}, training {training}: procedures after fine-tuning"
        images.append(
            figure(
                rep,
                slug("procedures", model, dat, training),
                rows,
                title,
                plots.accuracy_vs_sparsity,
                curves=curves,
                title=f"{title}\n(IMP: after its last retraining; at-init: after training)",
            )
        )
    return [html.section("Procedures compared", *images)] if images else []
