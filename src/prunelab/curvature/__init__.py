"""Curvature engine: Hessian / GGN / empirical-Fisher operators and what is built on them.

Operators act on a chosen parameter set (default: the prunable set) and average over
every example of an iterable of ``(x, y)`` batches (methods.md §1):

    >>> import torch
    >>> from torch import nn
    >>> from prunelab import curvature as cv
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    >>> x, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,))
    >>> H = cv.Hessian(net, nn.functional.cross_entropy, [(x[:16], y[:16]), (x[16:], y[16:])])
    >>> H.dim
    56
    >>> mu = cv.slq(H, num_iters=20, num_runs=4, seed=0)
    >>> est = cv.trace(H, num_probes=32, seed=0)
    >>> abs(est.value - float(H.to_dense().trace())) < 4 * est.stderr
    True

Quadrature rules other than plain SLQ's Gauss rule (averaged Gauss/anti-Gauss) come
from :func:`quadrature_measure` on a :func:`lanczos` result; :class:`RestrictedOperator`
is an operator's block over single flat coordinates.

With ``torch.distributed`` initialised, every function here shards the batches across
ranks and all-reduces the products; results match a single process.
"""

from prunelab.curvature.diagonal import exact_diagonal, hutchinson_diag
from prunelab.curvature.eigen import TopEigen, top_eigenvalues
from prunelab.curvature.estimate import Estimate
from prunelab.curvature.fisher import EmpiricalFisher
from prunelab.curvature.fisher_diag import empirical_fisher_diag, fisher_diag
from prunelab.curvature.ggn import GGN
from prunelab.curvature.hessian import Hessian
from prunelab.curvature.lanczos import LanczosResult, lanczos
from prunelab.curvature.layerwise import layer_slq, layer_traces
from prunelab.curvature.operator import MAX_DENSE_DIM, CurvatureOperator
from prunelab.curvature.quadrature import (
    QUADRATURES,
    anti_gauss_rule,
    chain_rule,
    gauss_radau_rule,
    gauss_rule,
    measure_from_lanczos,
    quadrature_measure,
    ritz_deflate,
)
from prunelab.curvature.restricted import RestrictedOperator, restrict_to_mask
from prunelab.curvature.slq import SpectralMeasure, slq
from prunelab.curvature.summary import LayerSpectrum, SpectrumSummary, spectrum_summary
from prunelab.curvature.trace import trace

__all__ = [
    "GGN",
    "MAX_DENSE_DIM",
    "QUADRATURES",
    "CurvatureOperator",
    "EmpiricalFisher",
    "Estimate",
    "Hessian",
    "LanczosResult",
    "LayerSpectrum",
    "RestrictedOperator",
    "SpectralMeasure",
    "SpectrumSummary",
    "TopEigen",
    "anti_gauss_rule",
    "chain_rule",
    "empirical_fisher_diag",
    "exact_diagonal",
    "fisher_diag",
    "gauss_rule",
    "hutchinson_diag",
    "lanczos",
    "layer_slq",
    "layer_traces",
    "measure_from_lanczos",
    "quadrature_measure",
    "gauss_radau_rule",
    "restrict_to_mask",
    "ritz_deflate",
    "slq",
    "spectrum_summary",
    "top_eigenvalues",
    "trace",
]
