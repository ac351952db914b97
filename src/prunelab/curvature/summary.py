"""Library entry point behind ``prunelab spectrum``: one call, one summary, one report folder.

:func:`spectrum_summary` runs SLQ on the Hessian (or GGN / empirical Fisher) and derives
the top eigenvalue (largest Ritz value, with its residual bound) and the trace (``D ·
E[θ]``, which equals Hutchinson with the SLQ start vectors) from the same Lanczos runs,
plus optional per-layer traces. :func:`write_spectrum_report` writes the plot and the raw
measure atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunelab.curvature._problem import ParamsArg
from prunelab.curvature.estimate import Estimate
from prunelab.curvature.fisher import EmpiricalFisher
from prunelab.curvature.ggn import GGN
from prunelab.curvature.hessian import Hessian
from prunelab.curvature.layerwise import layer_traces
from prunelab.curvature.slq import SpectralMeasure, slq
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

OPERATORS = {"hessian": Hessian, "ggn": GGN, "fisher": EmpiricalFisher}


@dataclass
class SpectrumSummary:
    """What ``prunelab spectrum`` prints and saves.

    Attributes:
        top_eigenvalue: Largest Ritz value over all runs.
        top_residual: Its residual bound ``‖A y − θ y‖`` (small = converged).
        trace: ``tr A`` estimate ± standard error over runs.
        measure: The SLQ spectral measure.
        layer_traces: ``layer -> Estimate`` when ``per_layer``, else None.
        dim: ``D``.
        num_examples: Examples the curvature averages over.
        params: Parameter names spanned.
        settings: Operator name, iterations, runs, seed.
    """

    top_eigenvalue: float
    top_residual: float
    trace: Estimate
    measure: SpectralMeasure
    layer_traces: dict[str, Estimate] | None
    dim: int
    num_examples: int
    params: list[str]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form, the measure included."""
        return {
            "top_eigenvalue": self.top_eigenvalue,
            "top_residual": self.top_residual,
            "trace": self.trace.to_dict(),
            "layer_traces": None
            if self.layer_traces is None
            else {k: v.to_dict() for k, v in self.layer_traces.items()},
            "dim": self.dim,
            "num_examples": self.num_examples,
            "params": self.params,
            "settings": self.settings,
            "measure": self.measure.to_dict(),
        }


def spectrum_summary(
    model: nn.Module,
    loss_fn,
    batches: Iterable,
    num_iters: int = 64,
    num_runs: int = 4,
    seed: int = 0,
    per_layer: bool = False,
    *,
    params: ParamsArg = None,
    operator: str = "hessian",
    layer_probes: int = 32,
    **op_kwargs,
) -> SpectrumSummary:
    """Spectrum of the curvature at the model's current weights.

    Args:
        model: The model (in ``eval()`` mode if it has Dropout/BatchNorm).
        loss_fn: Mean-reduced loss ``(output, y) -> scalar``.
        batches: Iterable of ``(x, y)`` batches (e.g. ``data.batches("train", 512,
            limit=N)``).
        num_iters: Lanczos steps per run.
        num_runs: SLQ runs (>= 2 for a standard error).
        seed: Seed of the start vectors and layer probes.
        per_layer: Also estimate each layer's block trace (Hutchinson, ``layer_probes``
            probes, one extra pass per 10 probes).
        params: Parameter selection (default: the prunable set).
        operator: ``"hessian"``, ``"ggn"`` or ``"fisher"`` (empirical).
        layer_probes: Probes for the per-layer traces.
        **op_kwargs: Passed to the operator (``shard``, ``distributed``, ``compile``...).

    Returns:
        :class:`SpectrumSummary`.
    """
    if operator not in OPERATORS:
        raise PrunelabError(f"unknown operator {operator!r}; valid choices: {', '.join(OPERATORS)}")
    op = OPERATORS[operator](model, loss_fn, batches, params, **op_kwargs)
    measure = slq(op, num_iters, num_runs, seed)
    real = torch.where(measure.mask, measure.nodes, -torch.inf)
    run, j = divmod(int(real.argmax()), real.shape[1])
    top, resid = float(measure.nodes[run, j]), float(measure.residuals[run, j])
    if resid > 1e-2 * max(abs(top), 1e-30):
        log.warning(
            "top eigenvalue %.4g not converged (residual %.2g); raise num_iters", top, resid
        )
    layers = layer_traces(op, layer_probes, seed) if per_layer else None
    settings = {
        "operator": operator,
        "num_iters": measure.num_iters,
        "requested_iters": measure.requested_iters,
        "num_runs": num_runs,
        "seed": seed,
    }
    return SpectrumSummary(
        top,
        resid,
        measure.trace_estimate(),
        measure,
        layers,
        op.dim,
        op.num_examples,
        op.param_names,
        settings,
    )


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def write_spectrum_report(summary: SpectrumSummary, out_dir: str | os.PathLike) -> dict[str, Path]:
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
    _atomic_write(paths["csv"], text.getvalue().encode())
    _atomic_write(paths["json"], json.dumps(summary.to_dict(), indent=2).encode())
    _atomic_write(paths["png"], _plot(summary))
    return paths
