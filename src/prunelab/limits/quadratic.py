"""The quadratic loss model along the magnitude path: a one-shot predictor and references.

Around the trained weights ``θ`` the loss is modelled as
``q(δ) = gᵀδ + ½ δᵀ H δ`` (paper 001's loss model, methods.md §2). Global magnitude
pruning to sparsity ``p`` moves the weights by ``δ(p) = −θ ⊙ (1 − m_p)``, so

* **one-shot** (no refit): ``ΔL(p) = q(δ(p))``; :func:`quadratic_one_shot_limit` is the
  largest grid ``p`` with ``ΔL(p) ≤ ε``. It needs one curvature-vector product per grid
  point, all in one batched block — cheap enough to be a *predictor* of the one-shot
  loss limit (:func:`~prunelab.limits.truth.one_shot_limit`'s ``loss_limit`` at
  ``loss_tolerance = ε``); with ``H`` dense it is the exact quadratic reference.
* **retrained** (the kept weights optimally refitted, the target of 004's geometry):
  ``ΔL*(p) = min_{δ_K} q(δ)`` with ``δ_S = −θ_S`` on the pruned set ``S``, a Schur
  complement ``g_Sᵀδ_S + ½δ_SᵀH_SSδ_S − ½ bᵀ(H_KK + λI)⁻¹ b``, ``b = g_K + H_KSδ_S``.
  It forms the dense GGN (PSD, so the minimum exists; ``λ`` a tiny damping for its null
  space), so it is for small models only (``D`` ≤ 20,000).

The step from loss to accuracy is not modelled: these predict **loss**-based limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from prunelab._evaluate import loss_function
from prunelab.curvature import GGN, Hessian
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.mask_path import MaskPath
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score

CURVATURES = {"hessian": Hessian, "ggn": GGN}
#: curvature-vector products per pass over the data (memory: BLOCK x D)
BLOCK = 32


@dataclass(frozen=True)
class QuadraticLimit:
    """Largest grid sparsity whose quadratic loss change stays within ``eps``.

    Attributes:
        p_hat: The limit (``0`` if even the first grid point exceeds ``eps``).
        eps: Loss tolerance (nats).
        kind: ``one-shot`` or ``retrained``.
        curvature: ``hessian`` or ``ggn``.
        grid: Sparsities; ``delta_loss`` the modelled ``ΔL`` at each.
        first_order: ``gᵀδ`` at each grid point (one-shot only, else empty).
    """

    p_hat: float
    eps: float
    kind: str
    curvature: str
    grid: list[float]
    delta_loss: list[float]
    first_order: list[float]

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def _setup(model, data, grid, curvature, samples, batch_size, spec):
    if curvature not in CURVATURES:
        raise PrunelabError(f"unknown curvature {curvature!r}; valid: {', '.join(CURVATURES)}")
    pts = sorted({check_sparsity(p) for p in grid})
    if not pts:
        raise PrunelabError("grid must hold at least one sparsity")
    model.eval()
    params = prunable_parameters(model, spec)
    batches = list(data.batches("train", batch_size, shuffle=False, limit=samples))
    loss_fn = loss_function(data)
    op = CURVATURES[curvature](model, loss_fn, batches, params=list(params))
    theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
    path = MaskPath(score(model, "magnitude", spec=spec), spec=spec)

    def columns(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Kept flags and ``δ(p) = −θ`` on the pruned set, ``(D, stop − start)`` each."""
        kept = []
        for p in pts[start:stop]:
            keep = path.at(p).masks
            kept.append(torch.cat([keep[n].reshape(-1) for n in params]))
        kept = torch.stack(kept, 1)
        return kept, torch.where(kept, torch.zeros_like(theta)[:, None], -theta[:, None])

    return pts, params, op, columns, batches, loss_fn


def _gradient(model: nn.Module, params: dict, batches, loss_fn) -> torch.Tensor:
    """Mean-loss gradient over ``batches`` (example-weighted), flat over ``params``."""
    total = sum(int(y.shape[0]) for _, y in batches)
    grads = [torch.zeros_like(p) for p in params.values()]
    for x, y in batches:
        loss = loss_fn(model(x), y) * (int(y.shape[0]) / total)
        for acc, g in zip(grads, torch.autograd.grad(loss, list(params.values())), strict=True):
            acc += g
    return torch.cat([g.reshape(-1) for g in grads]).detach()


def _largest(pts: list[float], values: np.ndarray, eps: float) -> float:
    ok = [p for p, v in zip(pts, values, strict=True) if v <= eps]
    return max(ok) if ok else 0.0


def quadratic_one_shot_limit(
    model: nn.Module,
    data: DataBundle,
    eps: float,
    grid: Sequence[float],
    *,
    curvature: str = "hessian",
    samples: int = 1024,
    batch_size: int = 256,
    spec: PrunableSpec | None = None,
) -> QuadraticLimit:
    """Predict the one-shot loss limit from ``q(δ(p))`` (one batched product for all ``p``).

    Args:
        model: A trained network (put in ``eval()``; weights unchanged).
        data: Its dataset (the first ``samples`` training examples give ``g`` and ``H``).
        eps: Loss tolerance (nats), ``> 0``.
        grid: Sparsities to evaluate.
        curvature: ``hessian`` (exact second order) or ``ggn``.
        samples: Training examples.
        batch_size: Examples per product batch.
        spec: Prunable set.

    Returns:
        :class:`QuadraticLimit` (``kind = "one-shot"``).
    """
    if not eps > 0:
        raise PrunelabError(f"eps must be > 0, got {eps!r}")
    pts, params, op, columns, batches, loss_fn = _setup(
        model, data, grid, curvature, samples, batch_size, spec
    )
    g = _gradient(model, params, batches, loss_fn)
    first, second = [], []
    # blocks of BLOCK products: one pass over the data each, memory BLOCK·D (not P·D)
    for i in range(0, len(pts), BLOCK):
        _, D = columns(i, i + BLOCK)
        first.append((g @ D).double())
        second.append(0.5 * (D * op.matmat(D)).sum(0).double())
    first = torch.cat(first)
    total = (first + torch.cat(second)).cpu().numpy()
    return QuadraticLimit(
        _largest(pts, total, eps), float(eps), "one-shot", curvature, pts, total.tolist(),
        first.cpu().numpy().tolist(),
    )  # fmt: skip


def retrained_quadratic_limit(
    model: nn.Module,
    data: DataBundle,
    eps: float,
    grid: Sequence[float],
    *,
    samples: int = 1024,
    batch_size: int = 256,
    damping: float = 1e-8,
    spec: PrunableSpec | None = None,
) -> QuadraticLimit:
    """The quadratic-model limit when the kept weights are refitted (dense GGN, small ``D``).

    Args:
        model: A trained network.
        data: Its dataset.
        eps: Loss tolerance (nats), ``> 0``.
        grid: Sparsities.
        samples: Training examples in ``g`` and the GGN.
        batch_size: Examples per product batch.
        damping: ``λ`` relative to ``tr(G)/D``, added to ``G_KK`` (its null space).
        spec: Prunable set.

    Returns:
        :class:`QuadraticLimit` (``kind = "retrained"``, ``curvature = "ggn"``).
    """
    if not eps > 0:
        raise PrunelabError(f"eps must be > 0, got {eps!r}")
    pts, params, op, columns, batches, loss_fn = _setup(
        model, data, grid, "ggn", samples, batch_size, spec
    )
    kept, D = columns(0, len(pts))  # small D only: the dense GGN is formed anyway
    g = _gradient(model, params, batches, loss_fn).double().cpu().numpy()
    H = op.to_dense().double().cpu().numpy()
    lam = damping * max(float(np.trace(H)) / H.shape[0], 1e-300)
    values = []
    for j in range(len(pts)):
        d = D[:, j].double().cpu().numpy()
        K = kept[:, j].cpu().numpy()
        S = ~K
        if not S.any():
            values.append(0.0)
            continue
        dS = d[S]
        fixed = g[S] @ dS + 0.5 * dS @ H[np.ix_(S, S)] @ dS
        if K.any():
            b = g[K] + H[np.ix_(K, S)] @ dS
            fixed -= 0.5 * b @ np.linalg.solve(H[np.ix_(K, K)] + lam * np.eye(int(K.sum())), b)
        values.append(float(fixed))
    return QuadraticLimit(
        _largest(pts, np.array(values), eps), float(eps), "retrained", "ggn", pts, values, []
    )
