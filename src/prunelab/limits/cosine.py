"""Cosine similarity of magnitude pruning and the kurtosis safety factor (paper 003, §4.2).

For global magnitude pruning at sparsity ``p`` the pruned vector is ``θ`` restricted to
the kept set ``S``, so ``⟨θ, θ_S⟩ = ‖θ_S‖²`` and

    cos(p) = ‖θ_S‖ / ‖θ‖ = sqrt(1 − Σ_pruned θ_i² / Σ θ_i²),

which magnitude pruning maximises for every ``|S|``. The whole curve costs one sort and
one cumulative sum; 003's notebook prunes the model 101 times instead. The pruned count
at ``p`` is the one :meth:`prunelab.masks.Mask.from_scores` uses: ``D − round((1−p)·D)``.

Deviations from 003's notebook (notes B.2–B.4), each deliberate:

* the vector is the explicit prunable set (Linear/Conv weights by default, methods.md
  §0), not ``model.parameters()`` with biases and BatchNorm;
* the layer kurtoses behind ``K²`` are by default those of the prunable tensors (weights
  only); the notebook takes one per weight **and one per bias** tensor, which
  ``kurtosis_tensors="weights+bias"`` reproduces (the biases of the prunable Linear/Conv
  layers; BatchNorm parameters stay out, the notebook's LeNet5 has none). More tensors
  change ``K²``, and may make it defined where fewer than :data:`MIN_LAYERS` weights
  leave it undefined (lenet300: 3 weights, 6 with the biases);
* ``p*`` is searched on a grid of ``100001`` points (``1e-5`` steps), not ``1%``;
* the safety multiplier is ``min(1, 1/ln K²)`` — see :func:`safety_multiplier`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
from scipy.stats import kurtosis
from torch import Tensor, nn

from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters

#: Guard label when ``K² ≤ e`` (includes ``K² = 1``, where ``1/ln K²`` divides by zero).
GUARD_SMALL_K2 = "K2<=e: multiplier clamped to 1"
#: Guard label when ``K²`` cannot be computed (fewer than 4 layers or a constant layer).
GUARD_UNDEFINED = "K2 undefined: multiplier set to 1"
#: Fewest prunable tensors for which a kurtosis of the layer kurtoses is taken.
MIN_LAYERS = 4
#: Which tensors get a layer kurtosis: the prunable set, or 003's notebook (weights and biases).
KURTOSIS_TENSORS = ("weights", "weights+bias")
KurtosisTensors = Literal["weights", "weights+bias"]


def _flat_weights(model_or_weights, spec: PrunableSpec | None = None) -> Tensor:
    """The prunable vector as one flat float64 tensor (on its own device)."""
    if isinstance(model_or_weights, nn.Module):
        parts = list(prunable_parameters(model_or_weights, spec).values())
    elif isinstance(model_or_weights, dict):
        parts = list(model_or_weights.values())
    else:
        parts = [torch.as_tensor(model_or_weights)]
    if not parts:
        raise PrunelabError("the prunable set is empty: no weights for a cosine curve")
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in parts])


def cosine_curve(model_or_weights, sparsities, spec: PrunableSpec | None = None) -> Tensor:
    """Closed-form cosine similarity between the dense and the magnitude-pruned weights.

    Args:
        model_or_weights: A model (its prunable set under ``spec``), a ``name -> tensor``
            dict, or one tensor of weights (any shape).
        sparsities: Fractions removed in ``[0, 1]``; a float, a sequence or a tensor.
        spec: Prunable-set rule when a model is given.

    Returns:
        Float64 tensor of ``cos(p)`` with the shape of ``sparsities`` (on the weights'
        device); ``cos(1) = 0``.

    Raises:
        PrunelabError: Sparsities outside ``[0, 1]`` or an all-zero weight vector.

    Example:
        >>> cosine_curve(torch.tensor([3.0, 4.0]), [0.0, 0.5, 1.0])
        tensor([1.0000, 0.8000, 0.0000], dtype=torch.float64)
    """
    w = _flat_weights(model_or_weights, spec)
    p = torch.as_tensor(sparsities, dtype=torch.float64, device=w.device)
    if p.numel() and not bool(((p >= 0) & (p <= 1)).all()):
        raise PrunelabError(f"sparsities must lie in [0, 1], got min {p.min()} max {p.max()}")
    d = w.numel()
    # Descending cumulative sum: kept mass summed directly, no 1 − (small/big) cancellation.
    desc = torch.sort(w.abs(), descending=True).values ** 2
    kept_sum = torch.cat([torch.zeros(1, dtype=torch.float64, device=w.device), desc.cumsum(0)])
    total = kept_sum[-1]
    if not bool(total > 0):
        raise PrunelabError("all prunable weights are zero: cosine similarity is undefined")
    kept = torch.round((1.0 - p) * d).long().clamp(0, d)  # same count as Mask.from_scores
    return torch.sqrt(kept_sum[kept] / total)


def safety_multiplier(k2: float | None) -> tuple[float, str | None]:
    """The multiplier ``m`` of ``p_safe = m · p*`` with its guard, from ``K²``.

    003 writes ``p_safe = p* / ln K²``. Pearson kurtosis is ≥ 1, and the rule misbehaves
    for ``K² ≤ e``: at ``K² = 1`` it divides by zero, and for ``1 < K² < e`` it gives
    ``m > 1`` — a "safe" amount above ``p*``, even above 100%. We use
    ``m = min(1, 1/ln K²)``, i.e. ``m = 1`` (``p_safe = p*``) for ``K² ≤ e``: continuous at
    ``K² = e`` (where ``1/ln e = 1``) and never more aggressive than ``p*``.

    003's notebook instead switches to ``1/log2 K²`` below ``e`` (notes B.4). We do not
    follow it: that branch still gives ``m > 1`` for ``1 < K² < 2``, divides by zero at
    ``K² = 1``, and jumps from ``1/log2 e ≈ 0.69`` to ``1`` at ``K² = e``; the paper's text
    states only ``1/ln K²``.

    Args:
        k2: Kurtosis of the layer kurtoses, or ``None`` / NaN when undefined.

    Returns:
        ``(multiplier in (0, 1], guard)``; ``guard`` is ``None`` when the published rule
        applied unchanged, else :data:`GUARD_SMALL_K2` or :data:`GUARD_UNDEFINED`.

    Example:
        >>> safety_multiplier(1.0)
        (1.0, 'K2<=e: multiplier clamped to 1')
        >>> round(safety_multiplier(math.e ** 2)[0], 12)
        0.5
    """
    if k2 is None or not math.isfinite(float(k2)):
        return 1.0, GUARD_UNDEFINED
    k2 = float(k2)
    if k2 <= math.e:
        return 1.0, GUARD_SMALL_K2
    return 1.0 / math.log(k2), None


def kurtosis_parameters(
    model: nn.Module,
    spec: PrunableSpec | None = None,
    kurtosis_tensors: KurtosisTensors = "weights",
) -> dict[str, nn.Parameter]:
    """The tensors that get a layer kurtosis, in module order.

    ``"weights"``: the prunable set under ``spec``. ``"weights+bias"`` (003's notebook):
    the same layers, each weight followed by its bias when the layer has one.

    Raises:
        PrunelabError: ``kurtosis_tensors`` is not one of :data:`KURTOSIS_TENSORS`.
    """
    if kurtosis_tensors not in KURTOSIS_TENSORS:
        raise PrunelabError(
            f"kurtosis_tensors must be one of {', '.join(map(repr, KURTOSIS_TENSORS))}, "
            f"got {kurtosis_tensors!r}"
        )
    spec = spec or PrunableSpec()
    if kurtosis_tensors == "weights+bias":
        spec = replace(spec, include_bias=True)
    return prunable_parameters(model, spec)


def layer_kurtoses(
    model: nn.Module,
    spec: PrunableSpec | None = None,
    kurtosis_tensors: KurtosisTensors = "weights",
) -> dict[str, float]:
    """Pearson kurtosis (``fisher=False``, biased) of each tensor, in float64.

    Args:
        model: The network.
        spec: Prunable-set rule.
        kurtosis_tensors: ``"weights"`` (default: each prunable tensor) or
            ``"weights+bias"`` (003's notebook: also each bias of those layers); see
            :func:`kurtosis_parameters`.

    Returns:
        ``name -> kurtosis``; a constant tensor (e.g. fully pruned) has none and gives NaN.

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> list(layer_kurtoses(net, kurtosis_tensors="weights+bias"))
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    out = {}
    for name, p in kurtosis_parameters(model, spec, kurtosis_tensors).items():
        x = p.detach().reshape(-1).to("cpu", torch.float64).numpy()
        out[name] = float("nan") if np.ptp(x) == 0 else float(kurtosis(x, fisher=False))
    return out


def kurtosis_of_kurtoses(values: Sequence[float]) -> float | None:
    """``K²``: Pearson kurtosis of the per-layer kurtoses; ``None`` when undefined.

    Undefined with fewer than :data:`MIN_LAYERS` values (a fourth moment of 2–3 numbers
    says nothing), with a NaN among them, or when all are equal (0/0).
    """
    v = np.asarray(list(values), dtype=np.float64)
    if v.size < MIN_LAYERS or not np.all(np.isfinite(v)) or np.ptp(v) == 0:
        return None
    return float(kurtosis(v, fisher=False))


@dataclass(frozen=True)
class CosineRule:
    """Result of :func:`cosine_rule`.

    Attributes:
        p_star: Sparsity minimising the distance of ``(cos(p), p)`` to ``(1, 1)``.
        k2: Kurtosis of the layer kurtoses (``None`` when undefined).
        p_safe: ``multiplier · p_star``, always in ``[0, p_star]``.
        layer_kurtoses: ``name -> Pearson kurtosis`` of each prunable tensor.
        multiplier: ``min(1, 1/ln K²)``, or 1 under a guard.
        guard: Which guard applied (``None`` if the published rule applied unchanged).
        cos_star: ``cos(p_star)``.
        grid: Number of grid points used for ``p*``.
        kurtosis_tensors: Which tensors the layer kurtoses were taken over.
    """

    p_star: float
    k2: float | None
    p_safe: float
    layer_kurtoses: dict[str, float]
    multiplier: float
    guard: str | None
    cos_star: float
    grid: int
    kurtosis_tensors: str = "weights"

    def to_dict(self) -> dict:
        """JSON-able dict (NaN kurtoses become ``None``)."""
        d = asdict(self)
        d["layer_kurtoses"] = {
            k: (v if math.isfinite(v) else None) for k, v in self.layer_kurtoses.items()
        }
        return d


def cosine_rule(
    model: nn.Module,
    grid: int = 100001,
    spec: PrunableSpec | None = None,
    kurtosis_tensors: KurtosisTensors = "weights",
) -> CosineRule:
    """Paper 003's recommended prune amount ``p*`` and its kurtosis-guarded safe amount.

    ``p*`` is the grid point ``p = i/(grid−1)`` minimising ``‖(cos(p), p) − (1, 1)‖₂``
    (first one on ties). 003 fine-tunes one epoch after pruning to ``p*``.

    Args:
        model: Trained network.
        grid: Number of grid points on ``[0, 1]`` (default ``1e-5`` steps); at least 2.
        spec: Prunable-set rule.
        kurtosis_tensors: Tensors of the layer kurtoses behind ``K²``: ``"weights"``
            (the prunable set) or ``"weights+bias"`` (003's notebook). ``p*`` does not
            depend on it.

    Returns:
        A :class:`CosineRule`.

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> r = cosine_rule(net, grid=1001)
        >>> 0 <= r.p_safe <= r.p_star < 1, r.guard
        (True, 'K2 undefined: multiplier set to 1')
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise PrunelabError(f"grid must be an integer >= 2, got {grid!r}")
    kurtosis_parameters(model, spec, kurtosis_tensors)  # checks the choice before any work
    p = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    cos = cosine_curve(model, p, spec).cpu()
    dist2 = (1.0 - cos) ** 2 + (1.0 - p) ** 2
    i = int(torch.argmin(dist2))  # argmin returns the first minimum
    p_star = float(p[i])
    kurts = layer_kurtoses(model, spec, kurtosis_tensors)
    k2 = kurtosis_of_kurtoses(list(kurts.values()))
    mult, guard = safety_multiplier(k2)
    p_safe = min(max(p_star * mult, 0.0), p_star)
    return CosineRule(p_star, k2, p_safe, kurts, mult, guard, float(cos[i]), grid, kurtosis_tensors)
