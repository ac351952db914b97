"""The demo's headline page: tables, plots and the CSV behind each (see :mod:`.run`)."""

from __future__ import annotations

from pathlib import Path

from prunelab.experiments.report import html, plots
from prunelab.prunable import PrunableSpec

CRITERIA_CSV = "criteria.csv"
LIMITS_CSV = "limits.csv"
CURVES_CSV = "actual_limit_curves.csv"


def _criteria_plot(out: Path, rows: list[dict], stage: str, dense: float, name: str) -> None:
    curves = {}
    for label in dict.fromkeys(r["criterion"] for r in rows):
        sel = [r for r in rows if r["criterion"] == label and r["stage"] == stage]
        if sel:
            sd = [r["accuracy_sd"] for r in sel] if any(r["accuracy_sd"] for r in sel) else None
            curves[label] = ([r["sparsity"] for r in sel], [r["accuracy"] for r in sel], sd)
    plots.accuracy_vs_sparsity(curves, out / name, title=f"fc5 on digits: {stage}", reference=dense)


def _limits_plot(out: Path, result, tag: str) -> None:
    sel = [r for r in result.curves["rows"] if r["model"] == tag]
    vlines = {r["method"]: r["prediction"] for r in result.limits if r["model"] == tag}
    actual = next(r["actual"] for r in result.limits if r["model"] == tag)
    vlines["measured limit"] = actual
    plots.accuracy_vs_sparsity(
        {"one-shot magnitude": ([r["sparsity"] for r in sel], [r["accuracy"] for r in sel], None)},
        out / f"limit_{tag}.png",
        title=f"fc5 ({tag}) on digits: predictions vs measured limit",
        vlines=vlines,
        reference=result.dense[tag]["accuracy"],
    )


def write_demo_page(out: Path, result) -> Path:
    """Write ``index.html``, the PNG plots and the CSVs of a :class:`DemoResult`.

    Args:
        out: The demo directory (the sweep's full report is ``report/index.html``).
        result: The :class:`~prunelab.experiments.demo.run.DemoResult`.

    Returns:
        The path of ``index.html``.
    """
    cfg = result.config
    gw, train = cfg["predictions"]["gaussian_width"], cfg["train"]
    l1 = next(v["l1"] for v in cfg["training"] if v["name"] == "l1")
    repeats = len(next(c for c in cfg["criteria"] if c["name"] == "random")["sweep"]["seed"])
    dense = result.dense["plain"]["accuracy"]
    _criteria_plot(out, result.criteria, "after prune", dense, "criteria_after_prune.png")
    _criteria_plot(out, result.criteria, "after fine-tune", dense, "criteria_after_finetune.png")
    html.write_csv(out / CRITERIA_CSV, result.criteria)
    for tag in result.dense:
        _limits_plot(out, result, tag)
    html.write_csv(out / LIMITS_CSV, result.limits)
    html.write_csv(out / CURVES_CSV, result.curves["rows"])
    spec = result.spectrum
    trace = spec["trace"]
    limit_cols = ["model", "method", "prediction", "spread", "lower", "upper", "actual", "delta_pp"]
    blocks = [
        html.paragraph(
            f"fc5 (64-1000-600-300-100-10, {spec['dim']:,} prunable weights) trained "
            f"{train['epochs']} epochs on scikit-learn digits (1,348 train / 449 test, "
            f"seed {cfg['seeds'][0]}). "
            f"Dense test accuracy: plain {result.dense['plain']['accuracy']:.2f}%, "
            f"ℓ1 (λ={l1:g}) {result.dense['l1']['accuracy']:.2f}%. Every run, plot and CSV "
            "of the sweep behind this page: report/index.html."
        ),
        html.section(
            "How far can it be pruned? Predictions vs the measured limit",
            html.paragraph(
                "Measured limit: the largest sparsity at which one-shot global magnitude pruning "
                "(no fine-tuning) keeps test accuracy within 0.5 points of dense (grid, "
                "then "
                "bisection). Gaussian width (paper 004): crossing ρ(R(p)) = p on the SLQ measure, "
                f"{gw['num_iters']} Lanczos steps × {gw['num_runs']} runs × "
                f"{gw['num_seeds']} seeds "
                f"over {gw['samples']} training examples; spread = sd over seeds; lower/upper = "
                "the ellipsoid Gaussian-width bracket. Cosine (paper 003): p* nearest (1, 1); "
                "lower = the kurtosis-guarded safe amount. Δ = prediction − measured, in points."
            ),
            html.table(result.limits, limit_cols),
            *[html.image(f"limit_{tag}.png", f"limits {tag}", CURVES_CSV) for tag in result.dense],
        ),
        html.section(
            "Which weights matter? Six criteria at the same sparsity",
            html.paragraph(
                f"One-shot global pruning of the plain model; data criteria use "
                f"{cfg['scoring']['samples']} training examples; random is mean ± sd over "
                f"{repeats} seeds. Fine-tune: {cfg['finetune']['epochs']} epochs SGD "
                f"(lr {cfg['finetune']['lr']:g}, constant), masks kept exact."
            ),
            html.image("criteria_after_prune.png", "criteria after pruning", CRITERIA_CSV),
            html.image("criteria_after_finetune.png", "criteria after fine-tuning", CRITERIA_CSV),
            html.table(result.criteria),
        ),
        html.section(
            "Curvature: the Hessian spectrum of the plain model",
            html.paragraph(
                f"Top eigenvalue {spec['top_eigenvalue']:.4g}; trace {trace['value']:.4g} ± "
                f"{trace['stderr']:.2g} (s.e.); SLQ over {spec['num_examples']} examples. "
                "The sweep report (report/index.html) plots the density; predictions integrate "
                "against the discrete Ritz measure."
            ),
            html.table(
                [
                    {"layer": k, "trace": v["value"], "stderr": v["stderr"]}
                    for k, v in (spec["layer_traces"] or {}).items()
                ]
            ),
        ),
        html.paragraph(
            f"Prunable set: {PrunableSpec().describe()}. Unstructured masks give no wall-clock "
            "speed-up in dense PyTorch; the compression column is the theoretical reduction in "
            "stored weights and multiply-adds of the prunable layers. Dense checkpoints: "
            "dense/<hash>/ (use them with prunelab spectrum / limit / prune).",
            note=True,
        ),
        html.paragraph(
            "Time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()),
            note=True,
        ),
    ]
    return html.write_page(out / "index.html", "prunelab demo: fc5 on digits", blocks)
