"""Files of a spectrum measurement: ``spectrum.json``, ``ritz.csv``, ``spectral_density.png``.

With per-layer spectra also ``layer_ritz.csv`` and ``layer_spectral_density.png`` (one
panel per layer's diagonal block). Every file is written atomically (temporary file in
the same folder, then rename).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from prunelab._io import atomic_write_bytes, atomic_write_json
from prunelab.curvature import SpectralMeasure, SpectrumSummary


def _smoothed(mu: SpectralMeasure, points: int = 2000) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Grid, Gaussian-smoothed density (plots only) and kernel width of a measure."""
    lo, hi = mu.extremes()
    span = max(hi - lo, 1e-12)
    grid = torch.linspace(lo - 0.05 * span, hi + 0.05 * span, points, dtype=torch.float64)
    sigma = 0.01 * span
    return grid, mu.density(grid, sigma).clamp_min(1e-12), sigma


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def _plot_layers(summary: SpectrumSummary) -> bytes:
    """One panel per layer: the smoothed density of its block, its top eigenvalue marked."""
    from matplotlib.figure import Figure

    layers = summary.layer_spectra or {}
    cols = min(3, len(layers))
    rows = -(-len(layers) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax, (name, ls) in zip(axes, layers.items(), strict=False):
        grid, dens, sigma = _smoothed(ls.measure, 800)
        ax.semilogy(grid.numpy(), dens.numpy(), color="C0")
        ax.axvline(ls.top_eigenvalue, color="C3", lw=0.8, ls="--")
        ax.set_title(f"{name}: D={ls.dim}, λ_max={ls.top_eigenvalue:.3g}", fontsize=9)
        ax.set_xlabel(f"eigenvalue (σ={sigma:.2g})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(layers) :]:
        ax.set_visible(False)
    mu = summary.measure
    fig.suptitle(
        f"per-layer SLQ densities (diagonal blocks), {mu.num_runs} runs x "
        f"{summary.settings.get('requested_iters', mu.num_iters)} steps; plot only"
    )
    fig.tight_layout()
    return _png(fig)


def _ritz_rows(mu: SpectralMeasure, prefix: list) -> list[list]:
    return [
        [
            *prefix,
            r,
            j,
            repr(float(mu.nodes[r, j])),
            repr(float(mu.weights[r, j])),
            repr(float(mu.residuals[r, j])),
        ]
        for r in range(mu.num_runs)
        for j in range(int(mu.lengths[r]))
    ]


def _plot(summary: SpectrumSummary) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    mu = summary.measure
    grid, dens, sigma = _smoothed(mu)
    fig = Figure(figsize=(7, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.semilogy(grid.numpy(), dens.numpy(), color="C0")
    ax1.set_ylabel(f"density (Gaussian σ={sigma:.3g}, plot only)")
    ax1.set_title(f"SLQ spectrum, D={summary.dim}, {mu.num_runs} runs x {mu.num_iters} steps")
    mask = mu.mask
    ax2.scatter(mu.nodes[mask].numpy(), mu.weights[mask].clamp_min(1e-16).numpy(), s=8, color="C1")
    ax2.set_yscale("log")
    ax2.set_xlabel("eigenvalue (Ritz value θ)")
    ax2.set_ylabel("quadrature weight τ")
    return _png(fig)


def write_spectrum_report(summary: SpectrumSummary, out_dir: str | Path) -> dict[str, Path]:
    """Write ``spectrum.json``, ``ritz.csv`` and ``spectral_density.png`` into ``out_dir``.

    When the summary has per-layer spectra, also ``layer_ritz.csv`` (the Ritz values and
    weights of every layer's block) and ``layer_spectral_density.png`` (one panel each).

    Args:
        summary: From :func:`spectrum_summary`.
        out_dir: Folder (created if missing).

    Returns:
        ``{"json": path, "csv": path, "png": path}``, plus ``"layer_csv"`` and
        ``"layer_png"`` with per-layer spectra.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "spectrum.json",
        "csv": out / "ritz.csv",
        "png": out / "spectral_density.png",
    }
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["run", "index", "node", "weight", "residual"])
    writer.writerows(_ritz_rows(summary.measure, []))
    atomic_write_bytes(paths["csv"], text.getvalue().encode())
    if summary.layer_spectra:
        paths["layer_csv"] = out / "layer_ritz.csv"
        paths["layer_png"] = out / "layer_spectral_density.png"
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["layer", "run", "index", "node", "weight", "residual"])
        for name, ls in summary.layer_spectra.items():
            writer.writerows(_ritz_rows(ls.measure, [name]))
        atomic_write_bytes(paths["layer_csv"], text.getvalue().encode())
    atomic_write_json(paths["json"], summary.to_dict())
    atomic_write_bytes(paths["png"], _plot(summary))
    if summary.layer_spectra:
        atomic_write_bytes(paths["layer_png"], _plot_layers(summary))
    return paths
