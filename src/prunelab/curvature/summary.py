"""Library entry point behind ``prunelab spectrum``: one call, one summary.

:func:`spectrum_summary` runs SLQ on the Hessian (or GGN / empirical Fisher) and derives
the top eigenvalue (largest Ritz value, with its residual bound) and the trace (``D ·
E[θ]``, which equals Hutchinson with the SLQ start vectors) from the same Lanczos runs.
With ``per_layer`` it adds, for each layer's diagonal block ``A_ll``, the same three
things from SLQ on that block alone (:class:`LayerSpectrum`: measure, top eigenvalue,
trace) and a Hutchinson trace of the block. Writing it to files is the report's business
(:mod:`prunelab.experiments.report.spectrum`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunelab._progress import progress_bar
from prunelab.curvature._problem import ParamsArg
from prunelab.curvature.estimate import Estimate
from prunelab.curvature.fisher import EmpiricalFisher
from prunelab.curvature.ggn import GGN
from prunelab.curvature.hessian import Hessian
from prunelab.curvature.layerwise import layer_slq, layer_traces
from prunelab.curvature.settings import SpectrumSettings
from prunelab.curvature.slq import SpectralMeasure, slq
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

OPERATORS = {"hessian": Hessian, "ggn": GGN, "fisher": EmpiricalFisher}


def _top(measure: SpectralMeasure) -> tuple[float, float]:
    """Largest Ritz value over all runs and its residual bound."""
    real = torch.where(measure.mask, measure.nodes, -torch.inf)
    run, j = divmod(int(real.argmax()), real.shape[1])
    return float(measure.nodes[run, j]), float(measure.residuals[run, j])


def _converged(top: float, resid: float) -> bool:
    return resid <= 1e-2 * max(abs(top), 1e-30)


@dataclass
class LayerSpectrum:
    """SLQ of one layer's diagonal block ``A_ll`` (same steps, runs and seed as the whole).

    Attributes:
        measure: The block's spectral measure (``num_iters`` clamped to its dimension).
        top_eigenvalue: Largest Ritz value of the block over all runs.
        top_residual: Its residual bound.
        trace: ``tr A_ll ≈ D_l · E[θ]`` over the runs (Hutchinson with the start vectors).
    """

    measure: SpectralMeasure
    top_eigenvalue: float
    top_residual: float
    trace: Estimate

    @classmethod
    def from_measure(cls, measure: SpectralMeasure) -> LayerSpectrum:
        """Top eigenvalue and trace read off a block's measure."""
        top, resid = _top(measure)
        return cls(measure, top, resid, measure.trace_estimate())

    @property
    def dim(self) -> int:
        """``D_l``, the block's dimension."""
        return self.measure.dim

    def to_dict(self) -> dict:
        """JSON-ready form, the measure included."""
        lo, hi = self.measure.extremes()
        return {
            "dim": self.dim,
            "top_eigenvalue": self.top_eigenvalue,
            "top_residual": self.top_residual,
            "min_ritz_value": lo,
            "trace": self.trace.to_dict(),
            "measure": self.measure.to_dict(),
        }


@dataclass
class SpectrumSummary:
    """What ``prunelab spectrum`` prints and saves.

    Attributes:
        top_eigenvalue: Largest Ritz value over all runs.
        top_residual: Its residual bound ``‖A y − θ y‖`` (small = converged).
        trace: ``tr A`` estimate ± standard error over runs.
        measure: The SLQ spectral measure.
        layer_traces: ``layer -> Estimate`` (Hutchinson, ``layer_probes`` probes) when
            ``per_layer``, else None.
        dim: ``D``.
        num_examples: Examples the curvature averages over.
        params: Parameter names spanned.
        settings: Operator name, iterations, runs, seed.
        layer_spectra: ``layer -> LayerSpectrum`` (SLQ on each diagonal block) when
            ``per_layer``, else None.
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
    layer_spectra: dict[str, LayerSpectrum] | None = None

    def to_dict(self) -> dict:
        """JSON-ready form, the measure included."""
        return {
            "top_eigenvalue": self.top_eigenvalue,
            "top_residual": self.top_residual,
            "trace": self.trace.to_dict(),
            "layer_traces": None
            if self.layer_traces is None
            else {k: v.to_dict() for k, v in self.layer_traces.items()},
            "layer_spectra": None
            if self.layer_spectra is None
            else {k: v.to_dict() for k, v in self.layer_spectra.items()},
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
    max_memory: int | str | None = SpectrumSettings.max_memory,
    progress: bool = False,
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
        per_layer: Also SLQ on each layer's diagonal block (``num_iters`` steps of
            ``num_runs`` runs per layer, so ``L`` more passes per step; top eigenvalue
            and trace per block) and each block's Hutchinson trace (``layer_probes``
            probes, one extra pass per 10 probes).
        params: Parameter selection (default: the prunable set).
        operator: ``"hessian"``, ``"ggn"`` or ``"fisher"`` (empirical).
        layer_probes: Probes for the per-layer traces.
        max_memory: Cap on the Lanczos basis (bytes or e.g. ``"512MiB"``); above it the
            basis is kept in half precision, then only in part (see
            :func:`~prunelab.curvature.lanczos`). ``None``: full re-orthogonalisation.
        progress: Show a progress bar of the Lanczos steps on stderr (how a run is
            watched, not what it computes: no number depends on it).
        **op_kwargs: Passed to the operator (``shard``, ``distributed``, ``compile``...).

    Returns:
        :class:`SpectrumSummary`.
    """
    if operator not in OPERATORS:
        raise PrunelabError(f"unknown operator {operator!r}; valid choices: {', '.join(OPERATORS)}")
    op = OPERATORS[operator](model, loss_fn, batches, params, **op_kwargs)
    blocks = {layer: op.restrict(names).dim for layer, names in op.layers().items()}
    steps = min(num_iters, op.dim)
    if per_layer:
        steps += sum(min(num_iters, d) for d in blocks.values())
    with progress_bar(steps, "Lanczos", progress) as bar:
        mem = {"max_memory": max_memory}
        measure = slq(op, num_iters, num_runs, seed, on_step=bar.update, **mem)
        spectra = None
        if per_layer:
            measures = layer_slq(op, num_iters, num_runs, seed, on_step=bar.update, **mem)
            spectra = {k: LayerSpectrum.from_measure(mu) for k, mu in measures.items()}
    top, resid = _top(measure)
    if not _converged(top, resid):
        log.warning(
            "top eigenvalue %.4g not converged (residual %.2g); raise num_iters", top, resid
        )
    for layer, ls in (spectra or {}).items():
        if not _converged(ls.top_eigenvalue, ls.top_residual):
            log.warning(
                "layer %s: top eigenvalue %.4g not converged (residual %.2g); raise num_iters",
                layer,
                ls.top_eigenvalue,
                ls.top_residual,
            )
    layers = layer_traces(op, layer_probes, seed) if per_layer else None
    settings = {
        "operator": operator,
        "num_iters": measure.num_iters,
        "requested_iters": measure.requested_iters,
        "num_runs": num_runs,
        "seed": seed,
    }
    if max_memory is not None:  # recorded only when set: older summaries stay identical
        settings["max_memory"] = max_memory
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
        spectra,
    )
