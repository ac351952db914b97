"""The measured pruning limit (ground truth) and the prediction error."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits import delta_pp, find_actual_limit
from prunelab.masks import Mask
from prunelab.scores import score
from prunelab.train import evaluate

GRID = [i / 20 for i in range(20)]


def _blobs(n=240, d=10, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 0.8 * torch.randn(classes, d, generator=g)
    y = torch.arange(n) % classes
    x = centres[y] + torch.randn(n, d, generator=g)
    half = n // 2
    return DataBundle("blobs", (x[:half], y[:half]), (x[half:], y[half:]), classes, (d,))


def _trained(data):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    x, y = data.train
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net


@pytest.fixture(scope="module")
def setup():
    data = _blobs()
    return data, _trained(data)


def _accuracy_at(net, data, p):
    pruned = copy.deepcopy(net)
    Mask.from_scores(score(net, "magnitude"), p).apply(pruned)
    return evaluate(pruned, data)["accuracy"]


@pytest.mark.parametrize("strict", [False, True])
def test_result_is_consistent_with_its_curve(setup, strict):
    data, net = setup
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    res = find_actual_limit(net, data, tolerance=2.0, strict=strict, grid=GRID, bisect_steps=6)
    for k, v in net.state_dict().items():  # the caller's weights are untouched
        assert torch.equal(v, before[k])
    assert net.training
    assert res.dense_accuracy == pytest.approx(evaluate(net, data)["accuracy"])
    ps = [p for p, _, _ in res.curve]
    assert ps == sorted(ps) and res.p_actual in ps
    acc = {p: a for p, a, _ in res.curve}

    def passes(a):
        return a > res.dense_accuracy if strict else a >= res.dense_accuracy - 2.0

    if res.p_actual > 0 or passes(acc[0.0]):
        assert passes(acc[res.p_actual])
    above = [p for p in ps if p > res.p_actual]
    assert above and not any(passes(acc[p]) for p in above)  # every larger evaluated p fails
    # The next evaluated sparsity is one bisection resolution away, or one weight away
    # (bisection stops when the midpoint's mask equals an end's).
    d = sum(p.numel() for p in (net[0].weight, net[2].weight))
    kept_gap = round((1 - res.p_actual) * d) - round((1 - above[0]) * d)
    assert above[0] - res.p_actual <= 0.05 / 2**6 + 1e-12 or kept_gap == 1
    # Each curve point is a real one-shot magnitude prune of the dense model.
    for p in (res.p_actual, above[0]):
        assert acc[p] == pytest.approx(_accuracy_at(net, data, p))
    json.dumps(res.to_dict())


def test_default_grid_and_non_strict_rule(setup):
    data, net = setup
    res = find_actual_limit(net, data, tolerance=0.5, bisect_steps=3)
    assert 0.0 <= res.p_actual < 1.0
    assert res.tolerance == 0.5 and not res.strict
    assert res.threshold == pytest.approx(res.dense_accuracy - 0.5)
    assert res.first_failure is None or res.first_failure > 0
    assert res.initial_sparsity == 0.0


def test_already_pruned_input(setup):
    data, net = setup
    pruned = copy.deepcopy(net)
    Mask.from_scores(score(net, "magnitude"), 0.3).apply(pruned)
    res = find_actual_limit(pruned, data, tolerance=1.0, grid=GRID, bisect_steps=2)
    assert res.initial_sparsity == pytest.approx(0.3, abs=1 / 300)
    assert res.dense_accuracy == pytest.approx(evaluate(pruned, data)["accuracy"])


def test_bad_input(setup):
    data, net = setup
    for tol in (-0.1, 100.5, float("nan"), "x"):
        with pytest.raises((PrunelabError, ValueError), match="tolerance"):
            find_actual_limit(net, data, tolerance=tol)
    with pytest.raises(PrunelabError, match="grid"):
        find_actual_limit(net, data, grid=[0.5, 1.0])
    with pytest.raises(PrunelabError, match="bisect_steps"):
        find_actual_limit(net, data, bisect_steps=-1)
    empty = DataBundle("e", data.train, (data.test[0][:0], data.test[1][:0]), 4, (10,))
    with pytest.raises(PrunelabError, match="no test data"):
        find_actual_limit(net, empty)
    reg = DataBundle("r", (data.train[0], data.train[0][:, 0]), data.train, 0, (10,))
    with pytest.raises(PrunelabError, match="regression"):
        find_actual_limit(net, reg)


def test_delta_pp():
    assert delta_pp(0.93, 0.9) == pytest.approx(3.0)
    assert delta_pp(0.5, 0.6) == pytest.approx(-10.0)
