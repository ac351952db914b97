"""The three benchmark problems: model, data and parameter set shared by every contestant.

Every contestant differentiates **all** parameters (weights, biases, BatchNorm affine
parameters), because PyHessian differentiates every parameter that requires grad and
has no way to choose. Data are random (timing only) but fixed by a seed, so every
contestant, repetition and thread count sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Examples per batch at every scale (the batch PyHessian / eigenthings loop over).
BATCH = 512


@dataclass
class Problem:
    """One benchmark problem.

    Attributes:
        name: ``"large"``, ``"small"`` or ``"conv"``.
        model: The model, in ``eval()`` mode, float32.
        batches: List of ``(x, y)`` batches (equal sizes, so a per-batch mean of batch
            means is the mean over examples, which is what eigenthings computes).
        loss_fn: Mean-reduced cross-entropy ``(output, y) -> scalar``.
        description: One line for the report.
    """

    name: str
    model: nn.Module
    batches: list[tuple[Tensor, Tensor]]
    loss_fn: object
    description: str

    @property
    def params(self) -> list[nn.Parameter]:
        """The differentiated parameters, in ``named_parameters`` order."""
        return list(self.model.parameters())

    @property
    def names(self) -> list[str]:
        """Their names (prunelab's ``params=`` argument)."""
        return [n for n, _ in self.model.named_parameters()]

    @property
    def dim(self) -> int:
        """``D``, the number of differentiated scalars."""
        return sum(p.numel() for p in self.params)

    @property
    def num_examples(self) -> int:
        """``N``, examples over all batches."""
        return sum(int(x.shape[0]) for x, _ in self.batches)


def _mlp(widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _convnet() -> nn.Module:
    """Conv-BN-ReLU ×2, global average pool, linear head (BatchNorm used in eval mode).

    Small on purpose: on a CPU a convolution's double backward costs ~6 gradients, and
    SLQ 64 × 4 is 256 products per contestant.
    """
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def _data(
    n: int, shape: tuple[int, ...], classes: int, seed: int, batch: int = BATCH
) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def build(name: str) -> Problem:
    """Build problem ``name`` (deterministic: seed 0 for weights and data).

    Args:
        name: ``"large"`` (784-1000-600-300-10 MLP, 4,096 examples, D = 1,568,910),
            ``"small"`` (64-256-128-10 MLP, 512 examples, D = 50,826) or ``"conv"``
            (2 conv + BatchNorm layers on 3×12×12 inputs, 256 examples, D = 1,610).

    Raises:
        ValueError: On an unknown name.
    """
    torch.manual_seed(0)
    if name == "large":
        model, data = _mlp((784, 1000, 600, 300, 10)), _data(4096, (784,), 10, 0)
        desc = "784-1000-600-300-10 ReLU MLP, 4,096 examples in 8 batches of 512"
    elif name == "small":
        model, data = _mlp((64, 256, 128, 10)), _data(512, (64,), 10, 0)
        desc = "64-256-128-10 ReLU MLP, 512 examples in 1 batch"
    elif name == "conv":
        model, data = _convnet(), _data(256, (3, 12, 12), 10, 0, batch=128)
        # Give BatchNorm non-trivial running statistics, then freeze them (eval mode).
        with torch.no_grad():
            model.train()
            model(data[0][0])
        desc = "conv 3-8-16 + BatchNorm (eval) + linear, 3×12×12, 256 examples in 2 batches"
    else:
        raise ValueError(f"unknown problem {name!r}; valid: large, small, conv")
    model.eval()
    p = Problem(name, model, data, F.cross_entropy, desc)
    p.description = f"{desc}; D = {p.dim:,} (all parameters), float32"
    return p


def gradient(problem: Problem) -> list[Tensor]:
    """The unit of cost: one full-data gradient (one forward + backward per batch)."""
    params, n = problem.params, problem.num_examples
    total = [torch.zeros_like(p) for p in params]
    for x, y in problem.batches:
        grads = torch.autograd.grad(problem.loss_fn(problem.model(x), y), params)
        for t, g in zip(total, grads, strict=True):
            t.add_(g, alpha=x.shape[0] / n)
    return total
