"""Files of a spectrum measurement: ``spectrum.json``, ``ritz.csv``, ``spectral_density.png``.

Every file is written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from prunelab._io import atomic_write_bytes, atomic_write_json
from prunelab.curvature import SpectrumSummary


def _plot(summary: SpectrumSummary) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    mu = summary.measure
    lo, hi = mu.extremes()
    span = max(hi - lo, 1e-12)
    grid = torch.linspace(lo - 0.05 * span, hi + 0.05 * span, 2000, dtype=torch.float64)
    sigma = 0.01 * span
    dens = mu.density(grid, sigma).clamp_min(1e-12)
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def write_spectrum_report(summary: SpectrumSummary, out_dir: str | Path) -> dict[str, Path]:
    """Write ``spectrum.json``, ``ritz.csv`` and ``spectral_density.png`` into ``out_dir``.

    Args:
        summary: From :func:`spectrum_summary`.
        out_dir: Folder (created if missing).

    Returns:
        ``{"json": path, "csv": path, "png": path}``.
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
    mu = summary.measure
    for r in range(mu.num_runs):
        for j in range(int(mu.lengths[r])):
            writer.writerow(
                [
                    r,
                    j,
                    repr(float(mu.nodes[r, j])),
                    repr(float(mu.weights[r, j])),
                    repr(float(mu.residuals[r, j])),
                ]
            )
    atomic_write_bytes(paths["csv"], text.getvalue().encode())
    atomic_write_json(paths["json"], summary.to_dict())
    atomic_write_bytes(paths["png"], _plot(summary))
    return paths
