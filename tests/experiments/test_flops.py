"""Theoretical multiply-adds: dense counts vs PyTorch's FLOP counter, masked counts by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunelab import models
from prunelab.experiments.jobs.flops import multiply_adds
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec


def _torch_macs(model: nn.Module, input_shape) -> int:
    """Reference: PyTorch counts 2 FLOPs per multiply-add of matmuls and convolutions."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("name", "shape"), [("lenet300", (1, 8, 8)), ("lenet5", (1, 28, 28)), ("convbn", (3, 16, 16))]
)
def test_dense_count_matches_pytorch_flop_counter(name, shape):
    model = models.build(name, input_shape=shape, output_dim=10)
    assert multiply_adds(model, shape).dense == _torch_macs(model, shape)


def test_strided_grouped_conv_matches_pytorch_flop_counter():
    net = nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU(), nn.Conv2d(6, 2, (1, 3))
    )
    assert multiply_adds(net, (4, 9, 7)).dense == _torch_macs(net, (4, 9, 7))


def test_masked_count_by_hand():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(75, 4))
    conv_keep = torch.zeros(3, 2, 3, 3, dtype=torch.bool)
    conv_keep.view(-1)[[0, 5, 17, 30, 53]] = True  # 5 of 54 kernel weights kept
    lin_keep = torch.zeros(4, 75, dtype=torch.bool)
    lin_keep[0, :10] = True  # 10 of 300
    mask = Mask({"0.weight": conv_keep, "3.weight": lin_keep})
    count = multiply_adds(net, (2, 5, 5), mask)
    # conv: 5×5 output positions (padding keeps the size); linear: one position
    assert count.dense == 25 * 54 + 300
    assert count.masked == 25 * 5 + 10
    assert count.reduction == pytest.approx((25 * 54 + 300) / (25 * 5 + 10))
    assert [r["positions"] for r in count.per_layer] == [25, 1]


def test_without_mask_counts_nonzero_weights_and_respects_the_prunable_set():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight[:2] = 0.0  # 6 of 12 weights are zero
    full = multiply_adds(net, (3,))
    assert (full.dense, full.masked) == (12 + 8, 6 + 8)
    no_classifier = multiply_adds(net, (3,), spec=PrunableSpec(include_classifier=False))
    assert (no_classifier.dense, no_classifier.masked) == (12, 6)
    assert net.training  # modes restored
