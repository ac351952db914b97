"""The calibration baseline against a brute-force loss scan on the training examples."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits import calibration_limit
from prunelab.masks import Mask
from prunelab.scores import score
from prunelab.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(150, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] - 0.7 * x[:, 3] > 0).long() + (x[:, 1] > 0.5).long()
    data = DataBundle("tiny", (x[:100], y[:100]), (x[100:], y[100:]), 3, (4,))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    train_model(net, data, TrainConfig(epochs=15, lr=0.1, batch_size=16))
    return data, net.eval()


def test_calibration_limit_is_the_loss_scan_on_the_first_training_examples(trained):
    data, net = trained
    grid = [i / 40 for i in range(37)]  # up to 0.9: the tiny net keeps >= 1 weight per layer
    eps, samples = 0.05, 60
    res = calibration_limit(net, data, eps, grid, samples=samples, bootstrap=200)
    x, y = data.train[0][:samples], data.train[1][:samples]
    scores = score(net, "magnitude")
    with torch.no_grad():
        dense = float(F.cross_entropy(net(x), y))
        passing = []
        for p in grid:  # brute force: prune a copy, evaluate on the calibration examples
            work = Mask.from_scores(scores, p).apply(copy.deepcopy(net))
            if float(F.cross_entropy(work(x), y)) <= dense + eps:
                passing.append(p)
    assert res.num_test == samples and res.loss_tolerance == eps
    assert res.loss_limit.value == max(passing)
    assert res.dense_loss == pytest.approx(dense, rel=1e-12)
    assert res.loss_limit.low <= res.loss_limit.value + 1e-12
    assert 0.0 < max(passing) < grid[-1]  # the scan crosses ε inside the grid: not vacuous
    again = calibration_limit(net, data, eps, grid, samples=samples, bootstrap=200)
    assert again.loss_limit == res.loss_limit  # same seed, same interval


def test_calibration_limit_refuses_bad_samples(trained):
    data, net = trained
    for bad in (0, -3, 2.5, True):
        with pytest.raises(PrunelabError, match="samples"):
            calibration_limit(net, data, 0.05, [0.0, 0.5], samples=bad)
