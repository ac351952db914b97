"""Report sections about the dense models: limits, spectra, weights, and paper 000's theory.

Same conventions as :mod:`prunelab.experiments.report.sections`: every figure has its CSV.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prunelab.curvature import SpectralMeasure
from prunelab.experiments.report import html, plots
from prunelab.experiments.report.data import (
    SweepData,
    dense_label,
    dense_tags,
    dig,
    prediction_rows,
)
from prunelab.experiments.report.sections import figure, slug


def _first_per_model(data: SweepData) -> list[tuple[str, dict]]:
    """The first ok dense model of each (model, data, ℓ1) with its display label."""
    tags = dense_tags(data)
    seen, out = set(), []
    for h, row in data.dense.items():
        label = dense_label(row, tags)
        key = (label["model"], label["data"], label["l1"])
        if key not in seen and row["status"] == "ok":
            seen.add(key)
            out.append((h, label))
    return out


def spectrum_and_weights(data: SweepData, rep: Path) -> list[str]:
    """Spectral density (if stored) and |weight| histogram with kurtosis, per dense model."""
    spectra, hists = [], []
    for h, label in _first_per_model(data):
        row = data.dense[h]
        name = f"{label['model']} on {label['data']} (l1={label['l1']}, seed {label['seed']})"
        spec = dig(data.predictions.get(h), ("spectrum",))
        if spec:
            measure = SpectralMeasure.from_dict(spec["measure"])
            lo, hi = measure.extremes()
            pad = 0.05 * (hi - lo or 1.0)
            grid = torch.linspace(lo - pad, hi + pad, 400, dtype=torch.float64)
            dens = measure.density(grid, sigma=(hi - lo or 1.0) / 200).tolist()
            pts = [{"lambda": x, "density": d} for x, d in zip(grid.tolist(), dens, strict=True)]
            title = (
                f"{name}: top λ {spec['top_eigenvalue']:.4g}, trace {spec['trace']['value']:.4g}"
            )
            spectra.append(
                figure(
                    rep,
                    slug("spectrum", h),
                    pts,
                    title,
                    plots.spectral_density,
                    grid=grid.tolist(),
                    density=dens,
                    title=title,
                )
            )
        w = dig(row.get("metrics"), ("weights",))
        if w:
            k2 = w.get("k2")
            title = (
                f"{name}: kurtosis {w['kurtosis']:.3g}, K² {k2:.3g}"
                if k2 is not None
                else f"{name}: kurtosis {w['kurtosis']:.3g}, K² undefined"
            )
            bins = [
                {"lo": a, "hi": b, "count": n}
                for a, b, n in zip(
                    w["hist_edges"][:-1], w["hist_edges"][1:], w["hist_counts"], strict=True
                )
            ]
            hists.append(
                figure(
                    rep,
                    slug("weights", h),
                    bins,
                    title,
                    plots.histogram,
                    edges=w["hist_edges"],
                    counts=w["hist_counts"],
                    title=title,
                )
            )
    blocks = []
    if spectra:
        blocks.append(html.section("Hessian spectral density (SLQ)", *spectra))
    if hists:
        blocks.append(html.section("Weight magnitudes and kurtosis", *hists))
    return blocks


def prediction_section(data: SweepData, rep: Path) -> list[str]:
    """Table of limits per dense model; predicted vs actual; kurtosis vs actual limit."""
    rows = prediction_rows(data)
    if not any(
        r["p_actual"] is not None or r["gw_p_hat"] is not None or r["p_star"] is not None
        for r in rows
    ):
        return [html.section("Dense models", html.table(rows))] if rows else []
    html.write_csv(rep / "predictions.csv", rows)
    blocks = [html.table(rows), html.paragraph("Data: predictions.csv", note=True)]
    with_actual = [r for r in rows if r["p_actual"] is not None]
    series = {}
    for key, name in (
        ("gw_p_hat", "gaussian-width p̂"),
        ("p_star", "cosine p*"),
        ("p_safe", "cosine p_safe"),
    ):
        pts = [r for r in with_actual if r[key] is not None]
        if pts:
            series[name] = ([r["p_actual"] for r in pts], [r[key] for r in pts])
    if series:
        blocks.append(
            figure(
                rep,
                "predicted_vs_actual",
                with_actual,
                "predicted vs actual limit",
                plots.scatter,
                series=series,
                xlabel="actual limit (one-shot magnitude, no fine-tuning)",
                ylabel="predicted limit",
                title="Predicted vs measured pruning limit",
                diagonal=True,
            )
        )
    kurt = [r for r in with_actual if r["kurtosis"] is not None]
    if kurt:
        s = {
            "all weights (Pearson)": ([r["kurtosis"] for r in kurt], [r["p_actual"] for r in kurt])
        }
        blocks.append(
            figure(
                rep,
                "kurtosis_vs_actual",
                kurt,
                "kurtosis vs actual limit",
                plots.scatter,
                series=s,
                xlabel="kurtosis of the dense weights",
                ylabel="actual limit",
                title="Kurtosis vs measured prunability",
            )
        )
    return [html.section("Dense models and predicted limits", *blocks)]


def linear_theory_section(data: SweepData, rep: Path) -> list[str]:
    """Paper 000: closed-form vs simulated excess risk of magnitude / cov_scaled / Hessian."""
    blocks = []
    for row in data.studies:
        if row["kind"] != "linear-theory" or not row["result"]:
            continue
        summary = row["result"]["summary"]
        scales = row["config"]["scales"]
        curves = {}
        for m in dict.fromkeys(r["method"] for r in summary):
            pts = sorted((r for r in summary if r["method"] == m), key=lambda r: r["sparsity"])
            xs = [r["sparsity"] for r in pts]
            curves[f"{m} closed-form"] = (
                xs,
                [r["excess_closed_mean"] for r in pts],
                [r["excess_closed_se"] or 0.0 for r in pts],
            )
            curves[f"{m} simulated"] = (
                xs,
                [r["excess_sim_mean"] for r in pts],
                [r["excess_sim_se"] or 0.0 for r in pts],
            )
        title = f"Linear least squares, {scales} feature scales: excess risk of pruning"
        blocks.append(
            figure(
                rep,
                slug("linear", scales),
                summary,
                title,
                plots.accuracy_vs_sparsity,
                curves=curves,
                title=title,
                ylabel="excess population risk (mean ± s.e.)",
            )
        )
        blocks.append(html.table(summary))
    return [html.section("Linear theory (paper 000)", *blocks)] if blocks else []
