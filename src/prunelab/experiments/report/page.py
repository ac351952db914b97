"""``prunelab report DIR``: an HTML page with plots and the CSV behind each, from a sweep.

:func:`build_report` reads ``DIR/results.sqlite`` (it never recomputes a result) and
writes ``DIR/report/``: ``index.html``, PNG figures (matplotlib, Agg) and one CSV per
figure and table. The page states the prunable set, the curvature settings, the seeds,
the failures, and that unstructured masks give no wall-clock speed-up in dense PyTorch
(the theoretical multiply-add reduction of the prunable layers is shown instead).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from prunelab._io import atomic_directory
from prunelab.experiments.files import REPORT_DIR, REPORT_PAGE
from prunelab.experiments.report import html
from prunelab.experiments.report.data import (
    SweepData,
    aggregate,
    config_text,
    dig,
    load_sweep,
    pretty,
    run_label,
)
from prunelab.experiments.report.limits import (
    linear_theory_section,
    prediction_section,
    spectrum_and_weights,
)
from prunelab.experiments.report.sections import (
    accuracy_sections,
    layer_sections,
    loss_change_section,
    procedure_sections,
)
from prunelab.experiments.report.validation import validation_section
from prunelab.prunable import PrunableSpec

log = logging.getLogger(__name__)

SPEEDUP_NOTE = (
    "Unstructured masks give no wall-clock speed-up in dense PyTorch: pruned weights are "
    "stored and multiplied as zeros. The 'MAC reduction' column is the theoretical one: "
    "multiply-adds per example of the prunable layers, dense / masked, where a Linear layer "
    "costs its weight count and a convolution its output positions × kernel weights "
    "(non-zero weights only when masked). Realising it needs sparse kernels or hardware."
)
SUMMARY_COLUMNS = (
    "model",
    "data",
    "training",
    "procedure",
    "scope",
    "nm",
    "criterion",
    "sparsity",
    "seeds",
    "failed",
    "diverged",
    "achieved_sparsity_mean",
    "acc_pruned_mean",
    "acc_pruned_sd",
    "ppl_pruned_mean",
    "cos_pruned_mean",
    "loss_pruned_mean",
    "acc_finetuned_mean",
    "acc_finetuned_sd",
    "ppl_finetuned_mean",
    "cos_finetuned_mean",
    "loss_finetuned_mean",
    "nnz_mean",
    "compression_mean",
    "mac_reduction_mean",
)


def _settings(data: SweepData) -> list[str]:
    c = data.config
    items = []
    prunable = PrunableSpec(**(c.get("prunable") or {}))
    items.append(f"Prunable set: {prunable.describe()}.")
    items.append(f"Run seeds: {c.get('seeds')} (initialisation, training order, score seeds).")
    for d in c.get("data") or []:
        opts = d.get("options") or {}
        items.append(
            f"Data {d.get('label') or d['name']}: {d['name']}, split seed {d.get('seed')}, "
            f"options {pretty(opts)}" + (" (subsampled)" if "subsample_train" in opts else "")
        )
    items.append(f"Scoring (curvature) settings: {pretty(c.get('scoring'))}.")
    crits = [f"{k['name']} {pretty(k.get('hparams'))}" for k in c.get("criteria") or []]
    if crits:
        items.append("Criteria and hyper-parameters: " + "; ".join(crits) + ".")
    obd = [k for k in c.get("criteria") or [] if k["name"] == "obd"]
    if obd:
        rule = {(k.get("hparams") or {}).get("tie_break", "magnitude") for k in obd}
        items.append(
            f"obd ties at zero (tie_break {', '.join(sorted(rule))}): weights whose score "
            "½cθ² is exactly 0 (curvature ≤ 0 clamped, common with Hutchinson) are ordered "
            "by |θ| under 'magnitude' (the default), by parameter order under 'position'."
        )
    pred = c.get("predictions") or {}
    if pred.get("methods"):
        items.append(f"Predictions: {', '.join(pred['methods'])}; settings {pretty(pred)}.")
    trains: dict[str, dict] = {}
    for run in sorted(data.runs, key=lambda r: r["config"]["procedure"]["kind"] == "lomp"):
        train = {k: v for k, v in run["config"]["train"].items() if k != "seed"}
        trains.setdefault(run["config"]["training"], train)
    for name, train in trains.items():
        items.append(f"Dense training, variant {name!r} (resolved): {pretty(train)}.")
    finetune = next((r["config"]["finetune"] for r in data.runs if r["config"]["finetune"]), None)
    if finetune:
        finetune = {k: v for k, v in finetune.items() if k != "seed"}
        items.append(f"Fine-tuning after pruning (resolved): {pretty(finetune)}.")
    return items


def _overview(data: SweepData) -> list[str]:
    counts = Counter(r["status"] for r in data.runs)
    c = data.config
    lines = [
        f"Sweep '{c.get('name')}' (config hash {data.config_hash}). {c.get('description', '')}",
        f"{len(data.runs)} runs recorded: {counts.get('ok', 0)} ok, "
        f"{counts.get('failed', 0)} failed, {counts.get('diverged', 0)} diverged; "
        f"{len(data.dense)} dense models; {len(data.prediction_rows)} prediction rows; "
        f"{len(data.studies)} studies. Accuracies are test accuracy in percent; ± is the "
        "sample standard deviation over seeds; failed and diverged runs never count as 0.",
    ]
    return [html.paragraph(line) for line in lines] + [
        html.section("Settings", html.bullet_list(_settings(data)))
    ]


def _summary(data: SweepData, rep: Path) -> list[str]:
    rows = aggregate(data.runs)
    if not rows:
        return []
    html.write_csv(rep / "summary.csv", rows)
    macs = {}
    for run in data.runs:
        dense = dig(run.get("metrics"), ("flops", "dense"))
        if dense:
            macs.setdefault(run["config"]["model"], dense)
    mac_rows = [
        {"model": m, "dense MACs per example (prunable layers)": n} for m, n in macs.items()
    ]
    return [
        html.section(
            "Summary (mean over seeds)",
            # a column no row fills (perplexity in a classification sweep) is left out
            html.table(
                rows, [c for c in SUMMARY_COLUMNS if any(r.get(c) is not None for r in rows)]
            ),
            html.paragraph("Data: summary.csv (all metrics, mean and sd).", note=True),
            html.paragraph(SPEEDUP_NOTE, note=True),
            html.table(mac_rows),
        )
    ]


def _failures(data: SweepData) -> list[str]:
    rows = [
        {"what": "run", "label": run_label(r), "status": r["status"], "error": r["error"]}
        for r in data.runs
        if r["status"] != "ok"
    ]
    for h, r in data.dense.items():
        if r["status"] != "ok":
            rows.append({"what": "dense", "label": h, "status": r["status"], "error": r["error"]})
    for r in data.prediction_rows + data.studies:
        if r["status"] != "ok":
            rows.append(
                {
                    "what": "prediction/study",
                    "label": r["hash"],
                    "status": r["status"],
                    "error": r["error"],
                }
            )
    body = html.table(rows) if rows else html.paragraph("None: every job finished ok.")
    return [html.section(f"Failures and divergences ({len(rows)})", body)]


def build_report(out: str | Path) -> Path:
    """Write ``out/report/index.html`` (plus PNGs and CSVs) from a sweep directory.

    Args:
        out: A sweep directory written by :func:`~prunelab.experiments.runner.run_sweep`
            (it may still be running: the report shows what is recorded so far).

    Returns:
        The path of ``index.html``.

    Raises:
        PrunelabError: If ``out`` holds no results store.
    """
    data = load_sweep(out)
    final = Path(out) / REPORT_DIR
    # built in a temporary folder and swapped in whole: no stale figure from an earlier
    # report survives, and a crash leaves the previous report intact
    with atomic_directory(final) as rep:
        rep.chmod(0o755)  # mkdtemp makes it private; a report is meant to be read
        blocks = _overview(data)
        blocks += _summary(data, rep)
        blocks += prediction_section(data, rep)
        blocks += validation_section(data, rep)
        blocks += accuracy_sections(data, rep)
        blocks += procedure_sections(data, rep)
        blocks += layer_sections(data, rep)
        blocks += loss_change_section(data, rep)
        blocks += spectrum_and_weights(data, rep)
        blocks += linear_theory_section(data, rep)
        blocks += _failures(data)
        text = config_text(Path(out))
        if text:
            blocks.append(html.section("Config", html.preformatted(text)))
        title = f"prunelab sweep: {data.config.get('name', Path(out).name)}"
        html.write_page(rep / REPORT_PAGE, title, blocks)
    return final / REPORT_PAGE
