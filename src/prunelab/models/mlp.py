"""Fully connected networks: ``fc5``, ``fc12`` (paper 004) and ``lenet300`` (LeNet-300-100).

The input is flattened, so any ``input_shape`` works; hidden layers use ReLU and there is
no dropout, so the network is deterministic in ``eval()`` mode as curvature requires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from prunelab.models.registry import MODELS, init_weights

#: Hidden widths of each registered MLP, input and output excluded.
HIDDEN: dict[str, tuple[int, ...]] = {
    "fc5": (1000, 600, 300, 100),
    "fc12": (1000, 900, 800, 750, 700, 650, 600, 500, 400, 200, 100),
    "lenet300": (300, 100),
}


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each hidden width, then a Linear output layer.

    Args:
        in_features: Number of input features (product of the example shape).
        hidden: Hidden layer widths, in order.
        output_dim: Width of the output layer.

    Shapes:
        input ``(B, *input_shape)`` with ``prod(input_shape) == in_features`` ->
        output ``(B, output_dim)``.

    Example:
        >>> import torch
        >>> MLP(4, (3,), 2)(torch.zeros(5, 2, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(self, in_features: int, hidden: Sequence[int], output_dim: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        # The output layer is registered last so that PrunableSpec(include_classifier=False)
        # drops exactly this layer.
        layers.append(nn.Linear(width, output_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, *input_shape)`` inputs to ``(B, output_dim)`` outputs."""
        return self.layers(self.flatten(x))


def make_mlp(name: str, input_shape: tuple[int, ...], output_dim: int) -> MLP:
    """Build and initialise the registered MLP ``name``.

    Args:
        name: One of the keys of :data:`HIDDEN`.
        input_shape: Shape of one example (flattened).
        output_dim: Width of the output layer.

    Returns:
        The initialised :class:`MLP`.
    """
    return init_weights(MLP(math.prod(input_shape), HIDDEN[name], output_dim))


@MODELS.register("fc5")
def fc5(input_shape: tuple[int, ...], output_dim: int) -> MLP:
    """FC5 of paper 004: in-1000-600-300-100-out, ReLU."""
    return make_mlp("fc5", input_shape, output_dim)


@MODELS.register("fc12")
def fc12(input_shape: tuple[int, ...], output_dim: int) -> MLP:
    """FC12 of paper 004: in-1000-900-800-750-700-650-600-500-400-200-100-out, ReLU."""
    return make_mlp("fc12", input_shape, output_dim)


@MODELS.register("lenet300")
def lenet300(input_shape: tuple[int, ...], output_dim: int) -> MLP:
    """LeNet-300-100: in-300-100-out, ReLU."""
    return make_mlp("lenet300", input_shape, output_dim)
