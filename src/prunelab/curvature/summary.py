"""Library entry point behind ``prunelab spectrum``: one call, one summary.

:func:`spectrum_summary` runs SLQ on the Hessian (or GGN / empirical Fisher) and derives
the top eigenvalue (largest Ritz value, with its residual bound) and the trace (``D ·
E[θ]``, which equals Hutchinson with the SLQ start vectors) from the same Lanczos runs,
plus optional per-layer traces. Writing it to files is the report's business
(:mod:`prunelab.experiments.report.spectrum`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunelab.curvature._problem import ParamsArg
from prunelab.curvature.estimate import Estimate
from prunelab.curvature.fisher import EmpiricalFisher
from prunelab.curvature.ggn import GGN
from prunelab.curvature.hessian import Hessian
from prunelab.curvature.layerwise import layer_traces
from prunelab.curvature.settings import SpectrumSettings
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
    num_iters: int = SpectrumSettings.num_iters,
    num_runs: int = SpectrumSettings.num_runs,
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
