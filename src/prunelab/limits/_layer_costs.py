"""Per-layer predicted cost curves ``c_l(p)`` behind the curvature allocation (private).

``c_l(p)`` is the predicted loss cost of magnitude-pruning **only** layer ``l`` (one
prunable parameter) to sparsity ``p``, the others left dense; it is what
:func:`~prunelab.limits.allocation.curvature_allocation` equalises across layers.

* ``quadratic``: ``c_l(p) = g_lᵀδ_l + ½ δ_lᵀ H_ll δ_l`` with ``δ_l(p) = −θ_l`` on the
  weights a per-layer magnitude mask at ``p`` removes (paper 001's loss model, the one
  of :func:`~prunelab.limits.quadratic_one_shot_limit`, on the layer's diagonal block).
  ``H δ̃`` of the zero-padded ``δ̃_l`` gives ``H_ll δ_l`` on the layer's slice, so the
  ``L × P`` columns go through the full operator in blocks of
  :data:`~prunelab.limits.quadratic.BLOCK`, each block built only when it is used
  (memory ``BLOCK·D``).
* ``gaussian-width``: the tolerance at which the layer's own Gaussian-width limit
  (paper 004) is ``p``: the ``ε`` solving ``ρ_l(R_l(p); ε) = p``, with ``ρ_l`` from the
  SLQ measure of the layer's Hessian block ``H_ll`` (``|λ|``, no null-space point mass)
  and ``R_l(p)`` the norm the layer's magnitude pruning removes. ``ρ`` increases with
  ``ε``, so the root is found by bisection in ``log ε``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from prunelab._evaluate import loss_function, placement, restore_modes, save_modes, to_model
from prunelab.curvature import Hessian, slq
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.limits._crossing import removed_norm_curve, rho
from prunelab.limits.quadratic import BLOCK, CURVATURES, _gradient
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score

PREDICTORS = ("quadratic", "gaussian-width")
#: bisection steps in log ε (bracket 1e-30 … 1e30: 1e-13 relative after 200 halvings)
LOG_EPS_STEPS = 200


def _grid(grid: Sequence[float]) -> list[float]:
    pts = sorted({check_sparsity(p) for p in grid} | {0.0})
    return pts


def quadratic_layer_costs(
    model: nn.Module,
    data: DataBundle,
    grid: Sequence[float],
    *,
    samples: int = 1024,
    batch_size: int = 256,
    curvature: str = "hessian",
    spec: PrunableSpec | None = None,
) -> dict[str, tuple[list[float], list[float]]]:
    """``layer -> (grid, c_l(p))`` of the quadratic model (module docstring), in nats.

    Args:
        model: A trained network (put in ``eval()`` while measuring; flags restored).
        data: Its dataset (the first ``samples`` training examples give ``g`` and ``H``).
        grid: Sparsities (``0`` is added).
        samples: Training examples.
        batch_size: Examples per product batch (memory only).
        curvature: ``hessian`` or ``ggn``.
        spec: Prunable set.
    """
    if curvature not in CURVATURES:
        raise PrunelabError(f"unknown curvature {curvature!r}; valid: {', '.join(CURVATURES)}")
    pts = _grid(grid)
    modes = save_modes(model)
    model.eval()
    try:
        params = prunable_parameters(model, spec)
        device, dtype = placement(model)  # the gradient pass runs the model on them directly
        batches = [
            to_model(x, y, device, dtype)
            for x, y in data.batches("train", batch_size, shuffle=False, limit=samples)
        ]
        loss_fn = loss_function(data)
        op = CURVATURES[curvature](model, loss_fn, batches, params=list(params))
        theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
        slices, start = {}, 0
        for n, p in params.items():
            slices[n] = slice(start, start + p.numel())
            start += p.numel()
        scores = score(model, "magnitude", spec=spec)
        masks = [Mask.from_scores(scores, p, scope="layer", spec=spec).masks for p in pts]
        columns = [(n, j) for n in params for j in range(len(pts))]

        def delta(n: str, j: int) -> torch.Tensor:
            d = torch.zeros_like(theta)
            d[slices[n]] = torch.where(masks[j][n].reshape(-1), 0.0, -theta[slices[n]])
            return d

        g = _gradient(model, params, batches, loss_fn)
        cost = {n: [0.0] * len(pts) for n in params}
        for i in range(0, len(columns), BLOCK):
            block = columns[i : i + BLOCK]
            D = torch.stack([delta(n, j) for n, j in block], 1)
            HD = op.matmat(D)
            for c, (n, j) in enumerate(block):
                s = slices[n]
                value = g[s] @ D[s, c] + 0.5 * D[s, c] @ HD[s, c]
                cost[n][j] = float(value.double())
    finally:
        restore_modes(modes)
    return {n: (pts, cost[n]) for n in params}


def _eps_for(removed_sq: np.ndarray, p: np.ndarray, nodes, weights) -> np.ndarray:
    """Per grid point, the ``ε`` with ``ρ(R(p); ε) = p`` (0 where ``R = 0`` or ``p = 0``)."""
    lo, hi = np.full(p.shape, -30.0 * np.log(10)), np.full(p.shape, 30.0 * np.log(10))
    R = np.sqrt(removed_sq)
    for _ in range(LOG_EPS_STEPS):
        mid = 0.5 * (lo + hi)
        r = np.array([float(rho(R[i], nodes, weights, float(np.exp(mid[i]))))
                      for i in range(p.size)])  # fmt: skip
        below = r < p  # ρ too small: ε must grow
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.where((p > 0) & (removed_sq > 0), np.exp(hi), 0.0)


def gaussian_width_layer_costs(
    model: nn.Module,
    data: DataBundle,
    grid: Sequence[float],
    *,
    num_iters: int = 64,
    num_runs: int = 4,
    samples: int = 1024,
    batch_size: int = 256,
    seed: int = 0,
    spec: PrunableSpec | None = None,
) -> dict[str, tuple[list[float], list[float]]]:
    """``layer -> (grid, ε_l(p))`` of the per-layer Gaussian width (module docstring).

    Args:
        model: A trained network (``eval()`` while measuring; flags restored).
        data: Its dataset.
        grid: Sparsities (``0`` is added).
        num_iters: Lanczos steps per run (capped at each layer's size).
        num_runs: SLQ runs per layer.
        samples: Training examples in the Hessian.
        batch_size: Examples per product batch.
        seed: SLQ seed.
        spec: Prunable set.
    """
    pts = _grid(grid)
    modes = save_modes(model)
    model.eval()
    out = {}
    try:
        params = prunable_parameters(model, spec)
        batches = list(data.batches("train", batch_size, shuffle=False, limit=samples))
        op = Hessian(model, loss_function(data), batches, params=list(params))
        for n, prm in params.items():
            mu = slq(op.restrict([n]), min(num_iters, prm.numel()), num_runs, seed)
            nodes, weights = np.abs(mu.nodes.numpy()), mu.weights.numpy()
            curve = removed_norm_curve(prm.detach().reshape(-1).double().cpu().numpy())
            p = np.asarray(pts)
            out[n] = (pts, _eps_for(curve.squared(p), p, nodes, weights).tolist())
    finally:
        restore_modes(modes)
    return out
