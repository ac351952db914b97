"""Data-free baselines: ``magnitude`` (|θ|) and ``random`` (iid uniform, seeded).

The one implementation of both (methods.md §2); call them through the registry:

    >>> import torch
    >>> from torch import nn
    >>> from prunelab.scores import score
    >>> net = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[-3.0, 2.0]]))
    >>> score(net, "magnitude")["weight"]
    tensor([[3., 2.]])
    >>> torch.equal(score(net, "random", seed=1)["weight"], score(net, "random", seed=1)["weight"])
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prunelab.scores.base import CRITERIA, Criterion


@dataclass(frozen=True)
class MagnitudeHparams:
    """Magnitude has no hyper-parameters."""


@dataclass(frozen=True)
class RandomHparams:
    """Hyper-parameters of the random baseline.

    Attributes:
        seed: Seed of the uniform draws (same seed → same mask).
    """

    seed: int = 0


def _magnitude(model, params, batches, loss_fn, hp):
    """``|θ|`` of every prunable parameter (same dtype and device as the parameter)."""
    return {n: p.detach().abs().clone() for n, p in params.items()}


def _random(model, params, batches, loss_fn, hp):
    """IID uniform ``[0, 1)`` float64 scores drawn on the CPU in prunable order.

    Same seed → same scores, on any device; float64, so ties are practically impossible.
    """
    gen = torch.Generator().manual_seed(hp.seed)
    return {n: torch.rand(p.shape, generator=gen, dtype=torch.float64) for n, p in params.items()}


CRITERIA.add("magnitude", Criterion("magnitude", _magnitude, MagnitudeHparams, False, "|θ|"))
CRITERIA.add("random", Criterion("random", _random, RandomHparams, False, "iid uniform, seeded"))
