"""Predicted vs measured loss change of a pruning step, against dense references."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian

from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures import predict_loss_change
from prunelab.prunable import prunable_parameters
from prunelab.scores import score


def problem():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(10, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (10,))
    return net, [(x[:6], y[:6]), (x[6:], y[6:])], x, y


def flat_loss(net, x, y, loss_fn):
    params = prunable_parameters(net)
    names, sizes = list(params), [p.numel() for p in params.values()]
    shapes = [p.shape for p in params.values()]
    fixed = {n: p.detach() for n, p in net.named_parameters() if n not in params}

    def f(theta):
        values = dict(fixed)
        for n, t, s in zip(names, torch.split(theta, sizes), shapes, strict=True):
            values[n] = t.reshape(s)
        return loss_fn(functional_call(net, values, (x,)), y)

    theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
    return f, theta


def test_predictions_match_dense_reference(float64):
    net, batches, x, y = problem()
    before = copy.deepcopy(net.state_dict())
    mask = Mask.from_scores(score(net, "magnitude"), 0.4)
    f, theta = flat_loss(net, x, y, F.cross_entropy)
    keep = torch.cat([m.reshape(-1) for m in mask.masks.values()])
    delta = torch.where(keep, torch.zeros_like(theta), -theta)
    g, h = grad(f)(theta), hessian(f)(theta)
    lc = predict_loss_change(net, mask, batches, F.cross_entropy)
    assert lc.first_order == pytest.approx(float(g @ delta), rel=1e-10)
    assert lc.second_order == pytest.approx(float(g @ delta + 0.5 * delta @ h @ delta), rel=1e-10)
    assert lc.loss_before == pytest.approx(float(f(theta)), rel=1e-12)
    assert lc.measured == pytest.approx(float(f(theta + delta) - f(theta)), rel=1e-9)
    assert lc.removed == int((~keep).sum()) and lc.num_examples == 10
    diag = predict_loss_change(net, mask, batches, F.cross_entropy, second_order="diagonal")
    want = float(g @ delta + 0.5 * (h.diagonal() * delta**2).sum())
    assert diag.second_order == pytest.approx(want, rel=1e-10)
    assert diag.second_order_kind == "diagonal:exact"
    for k, v in net.state_dict().items():  # the model is not modified
        assert torch.equal(v, before[k])


def test_second_order_is_exact_for_a_quadratic_loss(float64):
    torch.manual_seed(2)
    net = nn.Linear(5, 2).double()
    x, y = torch.randn(30, 5, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64)
    mask = Mask.from_scores(score(net, "random", seed=1), 0.6)
    lc = predict_loss_change(net, mask, [(x, y)], F.mse_loss)
    assert lc.second_order == pytest.approx(lc.measured, rel=1e-10)
    assert lc.first_order != pytest.approx(lc.measured, rel=1e-3)


def test_bad_inputs(float64):
    net, batches, _, _ = problem()
    mask = Mask.dense(net)
    with pytest.raises(PrunelabError, match="second_order"):
        predict_loss_change(net, mask, batches, F.cross_entropy, second_order="full")
    with pytest.raises(PrunelabError, match="batch"):
        predict_loss_change(net, mask, [], F.cross_entropy)
