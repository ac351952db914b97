"""Smart-Ratio (Su et al., NeurIPS 2020): layer-wise keep ratios by a closed form, random inside.

"Sanity-checking pruning methods: random tickets can win the jackpot" shows that, at
initialisation, a random mask with good **layer-wise keep ratios** trains as well as
the data-dependent pruning-at-init methods. Their rule (a fact from the paper; the code
here is ours): with the ``L`` prunable layers in forward order ``l = 1 … L``, the keep
ratio of layer ``l`` is proportional to

    r_l = (L − l + 1)² + (L − l + 1)

(quadratic decay: early layers keep more), scaled by one factor ``γ`` so that the
total kept count is the target, and the kept weights of a layer are a uniformly random
subset of it. A layer whose ratio ``γ·r_l`` would exceed 1 is kept dense and ``γ`` is
solved again over the others (water-filling, as ERK's capping does).

The last layer (the classifier) keeps a fixed fraction, ``classifier_keep`` (the
paper's 30 %; ``None``: the rule for it too), and ``r_l`` is computed with ``L``
counting every layer. Where the paper's setting does not carry over, our choices:

* The authors' public code gives *every* Linear layer the fixed ratio, so on an MLP
  (all layers Linear) it could not reach the requested sparsity: here only the last
  layer is pinned, all others follow the rule. (Their code also divides a VGG conv
  layer's ratio by ``l²``; we follow the paper's formula.)
* Without the pin the rule starves a small classifier (lenet300 at 90 %: 2.4 % of its
  weights kept), which is why the pin is the default.
* **As a criterion**, so that it runs through every procedure (``at-init`` in particular)
  and the global top-``K`` of :meth:`prunelab.masks.Mask.from_scores` makes the mask. The
  score of the weight with random rank ``j = 0 … D_l − 1`` in layer ``l`` is
  ``r_l·D_l / (j + ½)``: at the global threshold ``t`` the layer keeps the
  ``#{j : j + ½ < r_l D_l / t} = round(r_l D_l / t)`` (capped at ``D_l``) weights of
  smallest rank, a random subset of size ``γ r_l D_l`` with ``γ = 1/t``: exactly the
  rule with its water-filling, at **any** sparsity, up to rounding (each layer within
  ``(L + 1)/2`` weights of :func:`smart_ratio_keep_ratios`' count ``γ r_l D_l``). A
  layer is a module: with biases in the prunable set, a layer's weight and bias share
  its ``r_l``.

Measured (``experiments/paper004_analyses.md``): on nets without BatchNorm a random
sparse mask on a plain Kaiming init starts with a vanishing signal (fc5 at 90 %: 43 %
accuracy after training); multiplying each layer's kept weights by
``1/sqrt(keep ratio)`` fixes it (97 %). The criterion only chooses the mask.

Example:
    >>> smart_ratio_weights(3)
    [12, 6, 2]
    >>> sizes = {"a.weight": 10, "b.weight": 10}
    >>> smart_ratio_keep_ratios(sizes, 0.5, classifier_keep=None)  # r = 6, 2
    {'a.weight': 0.75, 'b.weight': 0.25}
    >>> smart_ratio_keep_ratios(sizes, 0.5)  # b pinned at 30 %: a keeps 7 of 10
    {'a.weight': 0.7, 'b.weight': 0.3}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from prunelab.errors import PrunelabError, check_sparsity
from prunelab.scores.base import CRITERIA, Criterion


def smart_ratio_weights(num_layers: int) -> list[int]:
    """``r_l = (L − l + 1)² + (L − l + 1)`` for ``l = 1 … L`` (unnormalised keep ratios)."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise PrunelabError(f"num_layers must be an integer >= 1, got {num_layers!r}")
    return [(num_layers - i) ** 2 + (num_layers - i) for i in range(num_layers)]  # i = l − 1


def layer_of(name: str) -> str:
    """The module a parameter belongs to (``"features.0.weight"`` → ``"features.0"``)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def _layer_weights(names) -> dict[str, float]:
    """``name -> r_l`` with ``l`` the rank of the parameter's module in forward order."""
    layers = list(dict.fromkeys(layer_of(n) for n in names))
    r = dict(zip(layers, smart_ratio_weights(len(layers)), strict=True))
    return {n: float(r[layer_of(n)]) for n in names}


def _pinned(names, classifier_keep) -> list[str]:
    """Parameters of the last layer when it is pinned (``classifier_keep`` not ``None``)."""
    if classifier_keep is None:
        return []
    if not (isinstance(classifier_keep, int | float) and 0 < classifier_keep <= 1):
        raise PrunelabError(f"classifier_keep must be in (0, 1] or None, got {classifier_keep!r}")
    layers = list(dict.fromkeys(layer_of(n) for n in names))
    return [n for n in names if layer_of(n) == layers[-1]] if len(layers) > 1 else []


def smart_ratio_keep_ratios(
    sizes: Mapping[str, int], sparsity: float, classifier_keep: float | None = 0.3
) -> dict[str, float]:
    """Keep ratios: ``classifier_keep`` for the last layer, ``min(1, γ r_l)`` for the others.

    ``γ`` solves ``Σ_l min(1, γ r_l) D_l = (1 − p) D − kept(last layer)``.

    Args:
        sizes: ``parameter name -> D_l`` in forward order (names as ``named_parameters``).
        sparsity: Overall fraction removed, in ``[0, 1)``.
        classifier_keep: Fixed keep ratio of the last layer (``None``: the rule).

    Returns:
        ``name -> keep ratio`` in ``(0, 1]``.

    Raises:
        PrunelabError: A sparsity that the pinned last layer alone (over)fills.
    """
    p = check_sparsity(sparsity)
    r = _layer_weights(list(sizes))
    pinned = _pinned(list(sizes), classifier_keep)
    target = (1.0 - p) * sum(sizes.values()) - sum(
        round(classifier_keep * sizes[n]) for n in pinned
    )
    rest = sum(sizes[n] for n in sizes if n not in pinned)
    if not 0 < target <= rest:
        raise PrunelabError(
            f"sparsity {p} cannot be met with the last layer pinned at classifier_keep="
            f"{classifier_keep}: the other layers would keep {target:.0f} of {rest}"
        )
    dense: set[str] = set(pinned)  # pinned: taken out of the water-filling
    while True:  # water-filling: cap at 1, solve γ over the rest; at most L passes
        left = target - sum(sizes[n] for n in dense if n not in pinned)
        free = [n for n in sizes if n not in dense]
        gamma = left / sum(r[n] * sizes[n] for n in free) if free else 0.0
        over = [n for n in free if gamma * r[n] > 1.0]
        if not over:
            break
        dense.update(over)
    out = {n: 1.0 if n in dense else gamma * r[n] for n in sizes}
    out.update({n: round(classifier_keep * sizes[n]) / sizes[n] for n in pinned})
    return out


@dataclass(frozen=True)
class SmartRatioHparams:
    """Hyper-parameters of Smart-Ratio.

    Attributes:
        seed: Seed of the random order inside each layer (same seed → same mask).
        classifier_keep: Keep ratio of the last layer (paper: 0.3); ``None``: the rule.
    """

    seed: int = 0
    classifier_keep: float | None = 0.3


def _smart_ratio(model, params, batches, loss_fn, hp):
    """``r_l·D_l / (j + ½)`` with ``j`` a random rank in the layer (module docstring).

    Float64, drawn on the CPU in prunable order (same seed → same scores on any device).
    """
    gen = torch.Generator().manual_seed(hp.seed)
    r = _layer_weights(list(params))
    pinned = _pinned(list(params), hp.classifier_keep)
    ranks = {n: torch.randperm(p.numel(), generator=gen).to(torch.float64)
             for n, p in params.items()}  # fmt: skip
    out = {n: r[n] * p.numel() / (ranks[n] + 0.5) for n, p in params.items() if n not in pinned}
    # Pinned layer: its kept share above every other score, the rest below every other
    # (the others are > r_l ≥ 2), so a global top-K keeps exactly that share there.
    top = 2.0 * max((float(s.max()) for s in out.values()), default=1.0)
    for n in pinned:
        d, k = params[n].numel(), round(hp.classifier_keep * params[n].numel())
        rank = ranks[n]
        out[n] = torch.where(rank < k, top + (k - rank), (d - rank) / (d + 1.0))
    return {n: out[n].reshape(p.shape).to(p.device) for n, p in params.items()}


CRITERIA.add(
    "smart_ratio",
    Criterion("smart_ratio", _smart_ratio, SmartRatioHparams, False,
              "Smart-Ratio layer keep ratios (Su et al. 2020), random inside a layer"),
)  # fmt: skip
