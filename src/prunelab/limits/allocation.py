"""Per-layer sparsity allocation at a requested overall sparsity (limits issue, item 6).

Every allocation returns **kept counts** per layer (a layer = one prunable parameter)
that add up to exactly ``K = round((1 − p)·D)``, the count a global mask keeps, so the
methods compare at equal overall sparsity. Each layer keeps at least one weight.

* ``curvature``: from a per-layer predicted cost curve ``c_l(p)`` (the predicted loss
  change when only layer ``l`` is magnitude-pruned to ``p``, see
  :mod:`prunelab.limits._layer_costs`): every layer is pruned up to the **same predicted
  cost** ``τ``, with ``τ`` set so the total is ``K``. Exactly: each layer's removal steps
  (the ``k``-th smallest weight, cost ``c_l(k/D_l)`` made non-decreasing) are merged over
  layers, cheapest first, and the first ``D − K`` are taken (stable: ties go to the
  earlier layer). The layer's **predicted limit** is its largest ``p`` with
  ``c_l(p) ≤ ε``.
* ``uniform``: ``1 − p`` of every layer.
* ``erk`` (Evci et al. 2020, RigL): density ``∝ (n_in + n_out)/(n_in·n_out)`` for a
  Linear, ``(c_in + c_out + k_h + k_w)/(c_in·c_out·k_h·k_w)`` for a conv — for both,
  ``sum(shape)/prod(shape)`` — scaled to the total; a layer whose density would exceed 1
  is kept dense and the scale is solved again over the others (RigL's loop).
* ``global-magnitude``: the per-layer counts of a global ``|θ|`` top-``K``.

Real-valued targets (uniform, ERK) become integers by the largest-remainder rule
(:func:`apportion`). A mask is built from an allocation with
:meth:`prunelab.masks.Mask.from_layer_counts` (magnitude within each layer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from prunelab.errors import PrunelabError, check_sparsity

ALLOCATIONS = ("curvature", "uniform", "erk", "global-magnitude")


@dataclass(frozen=True)
class Allocation:
    """Kept weights per layer at one overall sparsity.

    Attributes:
        method: One of :data:`ALLOCATIONS`.
        sparsity: The requested overall sparsity ``p``.
        kept: ``layer -> weights kept``; sums to ``round((1 − p)·D)``.
        sizes: ``layer -> D_l``.
        limits: ``curvature`` only: ``layer -> predicted limit`` at ``ε`` (else empty).
        info: What the method used (predictor, ``ε``, ``τ``, ERK's dense layers).
    """

    method: str
    sparsity: float
    kept: dict[str, int]
    sizes: dict[str, int]
    limits: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def sparsities(self) -> dict[str, float]:
        """``layer -> fraction removed``."""
        return {n: 1.0 - self.kept[n] / self.sizes[n] for n in self.kept}

    def overall(self) -> float:
        """Fraction removed over all layers (equals :attr:`sparsity` up to rounding)."""
        return 1.0 - sum(self.kept.values()) / sum(self.sizes.values())

    def to_dict(self) -> dict:
        """Plain dict, with the per-layer sparsities."""
        return {"method": self.method, "sparsity": self.sparsity, "kept": dict(self.kept),
                "sizes": dict(self.sizes), "layer_sparsity": self.sparsities(),
                "limits": dict(self.limits), "info": dict(self.info)}  # fmt: skip


def total_kept(sizes: Mapping[str, int], sparsity: float) -> int:
    """``round((1 − p)·D)``, the count a global mask keeps; at least one per layer.

    Example:
        >>> total_kept({"a": 10, "b": 30}, 0.9)
        4
    """
    p = check_sparsity(sparsity)
    k = round((1.0 - p) * sum(sizes.values()))
    if k < len(sizes):
        raise PrunelabError(
            f"sparsity {p} keeps {k} weights, fewer than the {len(sizes)} layers (one each)"
        )
    return k


def apportion(targets: Mapping[str, float], sizes: Mapping[str, int], total: int) -> dict:
    """Integer kept counts near ``targets`` summing to ``total``, ``1 ≤ k_l ≤ D_l``.

    Largest remainder: floor every (clipped) target, then hand the missing units to the
    largest fractional parts (or take surplus from the smallest), among layers with room.

    Example:
        >>> apportion({"a": 1.5, "b": 2.5}, {"a": 10, "b": 10}, 5)
        {'a': 2, 'b': 3}
    """
    names = list(sizes)
    if not len(names) <= total <= sum(sizes.values()):
        raise PrunelabError(f"total kept {total} outside [{len(names)}, {sum(sizes.values())}]")
    t = np.array([min(max(float(targets[n]), 1.0), float(sizes[n])) for n in names])
    k = np.floor(t).astype(np.int64)
    frac = t - k
    cap = np.array([sizes[n] for n in names], dtype=np.int64)
    gap = total - int(k.sum())
    while gap:  # each pass moves at most one unit per layer; a few passes at most
        if gap > 0:
            room = np.nonzero(k < cap)[0]
            order = room[np.argsort(-frac[room], kind="stable")][:gap]
            k[order] += 1
        else:
            room = np.nonzero(k > 1)[0]
            order = room[np.argsort(frac[room], kind="stable")][:-gap]
            k[order] -= 1
        gap = total - int(k.sum())
        frac[:] = 0.0
    return {n: int(v) for n, v in zip(names, k, strict=True)}


def uniform_allocation(sizes: Mapping[str, int], sparsity: float) -> Allocation:
    """The same sparsity in every layer (up to one weight, to hit the total exactly)."""
    total = total_kept(sizes, sparsity)
    dens = total / sum(sizes.values())
    kept = apportion({n: dens * d for n, d in sizes.items()}, sizes, total)
    return Allocation("uniform", float(sparsity), kept, dict(sizes))


def erk_densities(shapes: Mapping[str, Sequence[int]], density: float) -> dict[str, float]:
    """ERK densities (RigL): ``min(1, s·sum(shape)/prod(shape))`` at overall ``density``.

    ``s`` is solved so that ``Σ d_l D_l = density·D``; a layer whose density exceeds 1 is
    made dense and ``s`` is solved again over the rest, until none exceeds 1.

    Example:
        >>> d = erk_densities({"a": (4, 4), "b": (2, 2)}, 0.5)
        >>> round(d["a"] * 16 + d["b"] * 4, 9), d["b"] / d["a"] == 2.0
        (10.0, True)
    """
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / math.prod(s) for n, s in shapes.items()}
    budget = density * sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        left = budget - sum(sizes[n] for n in dense)
        if not free:
            break
        scale = left / sum(raw[n] * sizes[n] for n in free)
        over = [n for n in free if scale * raw[n] > 1.0]
        if not over:
            break
        dense.add(max(over, key=lambda n: raw[n]))  # RigL: the largest raw density first
    return {n: 1.0 if n in dense else scale * raw[n] for n in shapes}


def erk_allocation(shapes: Mapping[str, Sequence[int]], sparsity: float) -> Allocation:
    """ERK (Erdős–Rényi-Kernel) allocation at overall ``sparsity`` (module docstring)."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    total = total_kept(sizes, sparsity)
    dens = erk_densities(shapes, total / sum(sizes.values()))
    kept = apportion({n: dens[n] * sizes[n] for n in sizes}, sizes, total)
    dense = [n for n, d in dens.items() if d >= 1.0]
    return Allocation("erk", float(sparsity), kept, sizes, info={"dense_layers": dense})


def global_magnitude_allocation(weights: Mapping[str, torch.Tensor], sparsity: float):
    """The per-layer counts of a global ``|θ|`` mask (``Mask.from_scores``, global scope)."""
    from prunelab.masks import Mask

    mask = Mask.from_scores({n: w.detach().abs() for n, w in weights.items()}, sparsity)
    kept = {n: int(m.sum()) for n, m in mask.masks.items()}
    sizes = {n: w.numel() for n, w in weights.items()}
    return Allocation("global-magnitude", float(sparsity), kept, sizes)


def layer_limit(grid: Sequence[float], cost: Sequence[float], eps: float) -> float:
    """Largest grid ``p`` whose (non-decreasing envelope of) cost is ``≤ eps``; 0 if none."""
    env = np.maximum.accumulate(np.asarray(cost, dtype=np.float64))
    ok = np.nonzero(env <= eps)[0]
    return float(np.asarray(grid)[ok[-1]]) if ok.size else 0.0


def curvature_allocation(
    costs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    sizes: Mapping[str, int],
    sparsity: float,
    eps: float | None = None,
    info: dict | None = None,
) -> Allocation:
    """Equal predicted cost per layer, exactly ``round((1 − p)·D)`` kept (module docstring).

    Args:
        costs: ``layer -> (grid of p from 0, predicted cost at each p)``; the cost of
            removing ``k`` weights is interpolated linearly in ``p = k/D_l``.
        sizes: ``layer -> D_l``.
        sparsity: Overall sparsity.
        eps: Tolerance of the per-layer predicted limits (``None``: not reported).
        info: Extra facts to record (predictor, ``ε`` source).

    Returns:
        :class:`Allocation` with ``limits`` at ``eps`` and ``info["tau"]``, the common cost.
    """
    total = total_kept(sizes, sparsity)
    names = list(sizes)
    steps, owner = [], []
    for i, n in enumerate(names):
        grid, cost = (np.asarray(v, dtype=np.float64) for v in costs[n])
        k = np.arange(1, sizes[n], dtype=np.float64)  # removal steps; the last weight stays
        steps.append(np.maximum.accumulate(np.interp(k / sizes[n], grid, cost)))
        owner.append(np.full(k.size, i))
    all_steps, all_owner = np.concatenate(steps), np.concatenate(owner)
    remove = sum(sizes.values()) - total
    order = np.argsort(all_steps, kind="stable")[:remove]  # stable: earlier layer on ties
    removed = np.bincount(all_owner[order], minlength=len(names))
    kept = {n: int(sizes[n] - removed[i]) for i, n in enumerate(names)}
    tau = float(all_steps[order[-1]]) if remove else float("-inf")
    limits = {} if eps is None else {n: layer_limit(*costs[n], eps) for n in names}
    return Allocation("curvature", float(sparsity), kept, dict(sizes), limits,
                      {**(info or {}), "tau": tau, "eps": eps})  # fmt: skip


def allocate(
    model: torch.nn.Module,
    data,
    sparsity: float,
    methods: Sequence[str] = ALLOCATIONS,
    *,
    predictor: str = "quadratic",
    eps: float = 0.05,
    grid: Sequence[float] | None = None,
    samples: int = 1024,
    batch_size: int = 256,
    num_iters: int = 64,
    num_runs: int = 4,
    seed: int = 0,
    spec=None,
) -> dict[str, Allocation]:
    """Allocations of ``model``'s prunable set at overall ``sparsity``, one per method.

    Args:
        model: A trained network (not modified).
        data: Its dataset (``curvature``: the training split's first ``samples``).
        sparsity: Overall fraction removed.
        methods: Names from :data:`ALLOCATIONS`.
        predictor: ``curvature``'s cost model: ``quadratic`` or ``gaussian-width``.
        eps: Tolerance of the per-layer predicted limits (nats, or loss units).
        grid: Sparsities of the cost curves (default: 1 % steps).
        samples: Training examples of the curvature.
        batch_size: Examples per product batch.
        num_iters: ``gaussian-width``: Lanczos steps per run.
        num_runs: ``gaussian-width``: SLQ runs per layer.
        seed: SLQ seed.
        spec: Prunable set.

    Returns:
        ``method -> Allocation``.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
        >>> a = allocate(net, None, 0.5, ("uniform", "erk"))
        >>> [sum(x.kept.values()) for x in a.values()]
        [30, 30]
    """
    from prunelab.limits import _layer_costs as costs
    from prunelab.prunable import prunable_parameters

    unknown = [m for m in methods if m not in ALLOCATIONS]
    if unknown:
        raise PrunelabError(f"unknown allocation {unknown[0]!r}; valid: {', '.join(ALLOCATIONS)}")
    if predictor not in costs.PREDICTORS:
        raise PrunelabError(
            f"unknown predictor {predictor!r}; valid: {', '.join(costs.PREDICTORS)}"
        )
    weights = {n: p.detach() for n, p in prunable_parameters(model, spec).items()}
    sizes = {n: w.numel() for n, w in weights.items()}
    total_kept(sizes, sparsity)  # refuse a bad sparsity before any curvature
    out = {}
    for m in methods:
        if m == "uniform":
            out[m] = uniform_allocation(sizes, sparsity)
        elif m == "erk":
            out[m] = erk_allocation({n: tuple(w.shape) for n, w in weights.items()}, sparsity)
        elif m == "global-magnitude":
            out[m] = global_magnitude_allocation(weights, sparsity)
        else:
            pts = [i / 100 for i in range(100)] if grid is None else list(grid)
            common = {"samples": samples, "batch_size": batch_size, "spec": spec}
            if predictor == "quadratic":
                curves = costs.quadratic_layer_costs(model, data, pts, **common)
            else:
                curves = costs.gaussian_width_layer_costs(
                    model, data, pts, num_iters=num_iters, num_runs=num_runs, seed=seed, **common
                )
            out[m] = curvature_allocation(
                curves, sizes, sparsity, eps, {"predictor": predictor, "samples": samples}
            )
    return out
