"""Per-layer (block-diagonal) curvature: traces and spectra of each layer's block ``A_ll``.

Layers group the selected parameters by owning module (``"features.0.weight"`` and
``"features.0.bias"`` → layer ``"features.0"``).

Two ways to get per-layer traces:

- partition (default for Hutchinson): one set of full-size probes; layer ``l`` gets
  ``z_lᵀ (A z)_l``, whose mean is ``tr A_ll``. One pass per probe block for all
  layers, and the layer estimates add up exactly to the full Hutchinson estimate with
  the same seed. Their variance also contains the off-block couplings.
- restrict: one operator per layer (:meth:`CurvatureOperator.restrict`); smaller
  variance, ``L`` times the passes. Used for Hutch++ and for spectra.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from prunelab.curvature._checks import check_int, check_operator
from prunelab.curvature.estimate import Estimate, RunningMean, probe_rows
from prunelab.curvature.lanczos import MAX_BASIS_BYTES
from prunelab.curvature.operator import CurvatureOperator
from prunelab.curvature.slq import SpectralMeasure, slq
from prunelab.curvature.trace import trace
from prunelab.errors import PrunelabError


def layer_traces(
    op: CurvatureOperator,
    num_probes: int,
    seed: int = 0,
    *,
    method: str = "hutchinson",
    restrict: bool | None = None,
    block_size: int = 10,
) -> dict[str, Estimate]:
    """Trace of each layer's diagonal block, with standard errors.

    Args:
        op: A curvature operator.
        num_probes: Probes (operator products) per estimate, >= 2.
        seed: Probe seed.
        method: ``"hutchinson"`` or ``"hutch++"`` (the latter implies ``restrict``).
        restrict: ``None`` = partition for Hutchinson, restrict for Hutch++.
        block_size: Probes per pass over the data.

    Returns:
        ``layer name -> Estimate`` (floats), in parameter order.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import Hessian, trace
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> H = Hessian(net, nn.functional.cross_entropy, [(x, y)])
        >>> per_layer = layer_traces(H, num_probes=8, seed=1)
        >>> list(per_layer)
        ['0', '2']
        >>> total = sum(e.value for e in per_layer.values())
        >>> abs(total - trace(H, 8, seed=1).value) < 1e-12
        True
    """
    op = check_operator(op)
    check_int(num_probes, "num_probes", 2)
    check_int(block_size, "block_size", 1)
    if restrict is None:
        restrict = method != "hutchinson"
    groups = op.layers()
    if restrict:
        return {
            layer: trace(op.restrict(names), num_probes, seed, method, block_size=block_size)
            for layer, names in groups.items()
        }
    if method != "hutchinson":
        raise PrunelabError(f"restrict=False supports method='hutchinson' only, got {method!r}")
    slices = op.slices
    stats = RunningMean()
    for start in range(0, num_probes, block_size):
        count = min(block_size, num_probes - start)
        z = probe_rows(seed, start, count, op.dim, op.dtype, op.device)
        prod = z * op._matmat_rows(z)
        cols = [sum(prod[:, slices[n]].sum(1) for n in names) for names in groups.values()]
        stats.add(torch.stack(cols, dim=1))
    est = stats.estimate()
    return {
        layer: Estimate(float(est.value[i]), float(est.stderr[i]), est.num_samples)
        for i, layer in enumerate(groups)
    }


def layer_slq(
    op: CurvatureOperator,
    num_iters: int,
    num_runs: int,
    seed: int = 0,
    *,
    tol: float | None = None,
    max_basis_bytes: int = MAX_BASIS_BYTES,
    max_memory: int | str | None = None,
    on_step: Callable[[], None] | None = None,
) -> dict[str, SpectralMeasure]:
    """SLQ spectral measure of each layer's diagonal block.

    ``num_iters`` is clamped to each layer's own dimension (recorded per measure). Each
    layer runs on :meth:`CurvatureOperator.restrict` (products of that block only), so
    the cost is one pass over the data per layer and step.

    Args:
        op: A curvature operator.
        num_iters: Lanczos steps per run.
        num_runs: Runs per layer.
        seed: Start-vector seed (the same for every layer).
        tol: Breakdown threshold, see :func:`~prunelab.curvature.lanczos`.
        max_basis_bytes: Cap on each layer's stored basis (without ``max_memory``).
        max_memory: Memory cap of each layer's basis (see :func:`~prunelab.curvature.lanczos`).
        on_step: Optional ``on_step()`` after every Lanczos step of every layer.

    Returns:
        ``layer name -> SpectralMeasure``.
    """
    op = check_operator(op)
    return {
        layer: slq(
            op.restrict(names),
            num_iters,
            num_runs,
            seed,
            tol=tol,
            max_basis_bytes=max_basis_bytes,
            max_memory=max_memory,
            on_step=on_step,
        )
        for layer, names in op.layers().items()
    }
