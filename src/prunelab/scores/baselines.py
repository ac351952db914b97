"""Data-free baselines: ``magnitude`` (|θ|) and ``random`` (iid uniform, seeded)."""

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
    return {n: p.detach().abs().clone() for n, p in params.items()}


def _random(model, params, batches, loss_fn, hp):
    gen = torch.Generator().manual_seed(hp.seed)
    return {n: torch.rand(p.shape, generator=gen, dtype=torch.float64) for n, p in params.items()}


CRITERIA.add("magnitude", Criterion("magnitude", _magnitude, MagnitudeHparams, False, "|θ|"))
CRITERIA.add("random", Criterion("random", _random, RandomHparams, False, "iid uniform, seeded"))
