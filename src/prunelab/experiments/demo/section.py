"""The demo's headline page: tables, plots and the CSV behind each (see :mod:`.run`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prunelab.experiments.report import html, plots
from prunelab.limits.settings import TruthSettings
from prunelab.prunable import PrunableSpec

CRITERIA_CSV = "criteria.csv"
LIMITS_CSV = "limits.csv"
CURVES_CSV = "actual_limit_curves.csv"


#: how the fine-tuned limit's threshold was set, in words (TruthSettings.reference)
_REFERENCE = {
    "paired": "the same fine-tuning applied at p = 0 with the same seed",
    "dense": "the dense model",
}


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
    vlines = {f"{r['predictor']} p̂": r["p_hat"] for r in result.limits if r["model"] == tag}
    for r in result.truths:
        if r["model"] == tag and r["truth"] in ("one-shot accuracy", "fine-tuned accuracy"):
            vlines[f"{r['truth']} limit"] = r["value"]
    plots.accuracy_vs_sparsity(
        {"one-shot magnitude": ([r["sparsity"] for r in sel], [r["accuracy"] for r in sel], None)},
        out / f"limit_{tag}.png",
        title=f"fc5 ({tag}) on digits: predictions vs measured limits",
        vlines=vlines,
        reference=result.dense[tag]["accuracy"],
    )


#: the columns of the demo's limits table (page and terminal)
LIMIT_COLUMNS = [
    "model", "predictor", "p_hat", "target", "truth", "truth_low", "truth_high", "delta_pp",
    "verdict",
]  # fmt: skip
#: what the verdicts mean, in one sentence (page and terminal)
VERDICTS = (
    "validated = the numerics converged and |p̂ − truth| ≤ 2 points or p̂ inside the "
    "truth's 95 % interval; 'not converged' = the estimate moves with a numerical "
    "setting, so it is not a result"
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
    # the stored config leaves out a truth table at its defaults
    truth = {**asdict(TruthSettings()), **cfg["predictions"].get("truth", {})}
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
            "How far can it be pruned? Each prediction against the truth it claims",
            html.paragraph(
                "Ground truths: the one-shot limit (global magnitude, no fine-tuning; "
                f"{truth['grid_step']:g} grid over the whole test split; accuracy within "
                f"{truth['tolerance']:g} points, loss within {truth['loss_tolerance']:g} "
                f"nats; 95 % bootstrap interval over test examples, "
                f"{truth['bootstrap']} resamples) and the fine-tuned limit (magnitude + "
                f"{truth['finetune_epochs']} epochs, bisection, min–max over "
                f"{len(truth['seeds'])} fine-tuning seeds; the threshold set from "
                + _REFERENCE[truth["reference"]]
                + "). Predictors: quadratic "
                "(ΔL = gᵀδ + ½δᵀHδ along the magnitude path) → one-shot loss; calibration "
                f"(the baseline: ΔL measured on the same {gw['samples']} training examples) → "
                "one-shot loss; certified "
                "GGN and Gaussian width (paper 004: "
                f"{gw['num_iters']} Lanczos steps × {gw['num_runs']} runs × "
                f"{gw['num_seeds']} seeds over {gw['samples']} examples) → fine-tuned "
                "limits; cosine p* (paper 003) → fine-tuned accuracy. "
                f"Δ = p̂ − truth in points; {VERDICTS}."
            ),
            html.table(result.limits, LIMIT_COLUMNS + ["note"]),
            html.table(result.truths),
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
