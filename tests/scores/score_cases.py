"""Shared criterion test cases: tiny float64 model × data × prunable set.

Every case of :data:`CASE_NAMES` is a model in ``eval()`` mode (curvature criteria
refuse non-deterministic models), a list of ``(x, y)`` classification batches of unequal
sizes (so that batch-size weighting matters), ``F.cross_entropy`` (which the true-Fisher
default of ``obd`` / ``taylor2`` requires) and a :class:`~prunelab.prunable.PrunableSpec`.
Models carry a ``prunelab_spec`` with their ``input_shape``, as models from
:func:`prunelab.models.build` do, so data-free criteria (``synflow``) can be called
without batches.

=============================  ======================================  =====================
case                           model                                   prunable set
=============================  ======================================  =====================
``mlp``                        Linear-Tanh-Linear, biases              weights (default)
``mlp-no-classifier``          same                                    first weight only
``mlp-with-bias``              same                                    weights and biases
``convbn``                     Conv-BatchNorm-ReLU-Linear              weights (default)
``convbn-bias-no-classifier``  same                                    conv weight and bias
``linear``                     one Linear on the raw inputs            its weight
``linear-with-bias``           same                                    weight and bias
=============================  ======================================  =====================

:data:`TRAIN_MODE_CASE_NAMES` holds ``convbn-train`` (the ``convbn`` model left in
``train()`` mode) and ``mlp-dropout-train`` (an MLP with an active Dropout), which a
criterion may refuse.

Each has ``D`` between 12 and 111, so a whole contract run over every criterion takes
seconds. ``make_case`` builds a fresh copy each time (tests may zero weights).

The test folders are not packages, so pytest imports helper modules by their bare file
name: this one is ``score_cases`` rather than ``cases``, which ``tests/curvature/cases.py``
already is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunelab.prunable import PrunableSpec, prunable_parameters

BATCH_SIZES = (5, 3, 4)  # unequal on purpose: means must weight batches by size
NUM_CLASSES = 3


@dataclass
class Case:
    """A model, its data and loss, and the prunable-set rule to score it under.

    Attributes:
        name: Case name (the pytest id).
        kind: ``"linear"`` (a single ``nn.Linear`` on the raw inputs), ``"mlp"`` or
            ``"convbn"``; criteria defined for particular models select cases by it.
        model: The float64 network, in ``eval()`` mode.
        batches: ``(x, y)`` pairs, sizes :data:`BATCH_SIZES`.
        loss_fn: Mean-reduced loss.
        spec: The prunable set.
    """

    name: str
    kind: str
    model: nn.Module
    batches: list[tuple[Tensor, Tensor]]
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    spec: PrunableSpec

    @property
    def params(self) -> dict[str, nn.Parameter]:
        """The prunable ``{name: Parameter}`` of the case, in model order."""
        return prunable_parameters(self.model, self.spec)

    @property
    def dim(self) -> int:
        """``D``: number of prunable weights."""
        return sum(p.numel() for p in self.params.values())


def _batches(x: Tensor, y: Tensor) -> list[tuple[Tensor, Tensor]]:
    out, start = [], 0
    for n in BATCH_SIZES:
        out.append((x[start : start + n], y[start : start + n]))
        start += n
    return out


def _data(input_shape: tuple[int, ...], seed: int, scales: Tensor | None = None):
    gen = torch.Generator().manual_seed(seed)
    n = sum(BATCH_SIZES)
    x = torch.randn((n, *input_shape), generator=gen, dtype=torch.float64)
    if scales is not None:
        x = x * scales
    y = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    return x, y


def _tag(model: nn.Module, name: str, input_shape: tuple[int, ...]) -> nn.Module:
    model.prunelab_spec = {
        "name": name,
        "input_shape": list(input_shape),
        "output_dim": NUM_CLASSES,
    }
    return model


def _mlp() -> tuple[nn.Module, list]:
    torch.manual_seed(11)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, NUM_CLASSES)).double()
    x, y = _data((6,), seed=12)
    return _tag(net, "case-mlp", (6,)).eval(), _batches(x, y)


def _convbn() -> tuple[nn.Module, list]:
    torch.manual_seed(21)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3),  # 5x5 -> 3x3
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(27, NUM_CLASSES),
    ).double()
    x, y = _data((1, 5, 5), seed=22)
    with torch.no_grad():
        # Non-trivial BatchNorm affine parameters and running statistics, so a criterion
        # that mishandles BatchNorm (or scores its parameters) shows it.
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
        net.train()
        net(x)
    return _tag(net, "case-convbn", (1, 5, 5)).eval(), _batches(x, y)


def _linear() -> tuple[nn.Module, list]:
    torch.manual_seed(31)
    net = nn.Linear(4, NUM_CLASSES).double()
    # Heterogeneous feature scales: covariance scaling then ranks unlike magnitude.
    x, y = _data((4,), seed=32, scales=torch.tensor([0.1, 1.0, 3.0, 10.0], dtype=torch.float64))
    return _tag(net, "case-linear", (4,)).eval(), _batches(x, y)


def _convbn_train() -> tuple[nn.Module, list]:
    net, batches = _convbn()
    return net.train(), batches


def _mlp_dropout_train() -> tuple[nn.Module, list]:
    torch.manual_seed(41)
    net = nn.Sequential(
        nn.Linear(6, 5), nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, NUM_CLASSES)
    ).double()
    x, y = _data((6,), seed=42)
    return _tag(net, "case-mlp-dropout", (6,)).train(), _batches(x, y)


_BUILDERS = {
    "mlp": ("mlp", _mlp, PrunableSpec()),
    "mlp-no-classifier": ("mlp", _mlp, PrunableSpec(include_classifier=False)),
    "mlp-with-bias": ("mlp", _mlp, PrunableSpec(include_bias=True)),
    "convbn": ("convbn", _convbn, PrunableSpec()),
    "convbn-bias-no-classifier": (
        "convbn",
        _convbn,
        PrunableSpec(include_classifier=False, include_bias=True),
    ),
    "linear": ("linear", _linear, PrunableSpec()),
    "linear-with-bias": ("linear", _linear, PrunableSpec(include_bias=True)),
}

CASE_NAMES = tuple(_BUILDERS)

# Models left in training mode, whose forward pass depends on the batch (BatchNorm, and
# a train-mode BatchNorm forward also updates its running statistics) or on the global
# RNG (Dropout). Not in CASE_NAMES: a criterion may refuse them.
_TRAIN_MODE_BUILDERS = {
    "convbn-train": ("convbn", _convbn_train, PrunableSpec()),
    "mlp-dropout-train": ("mlp", _mlp_dropout_train, PrunableSpec()),
}
TRAIN_MODE_CASE_NAMES = tuple(_TRAIN_MODE_BUILDERS)


def make_case(name: str) -> Case:
    """A fresh copy of case ``name`` (:data:`CASE_NAMES` or :data:`TRAIN_MODE_CASE_NAMES`)."""
    kind, build, spec = {**_BUILDERS, **_TRAIN_MODE_BUILDERS}[name]
    model, batches = build()
    return Case(name, kind, model, batches, F.cross_entropy, spec)
