"""Per-layer allocation: exact totals, ERK by hand, caps, masks from counts, layer costs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunelab import data as datasets
from prunelab.errors import PrunelabError
from prunelab.limits import _layer_costs
from prunelab.limits.allocation import (
    allocate,
    apportion,
    curvature_allocation,
    erk_allocation,
    erk_densities,
    global_magnitude_allocation,
    total_kept,
    uniform_allocation,
)
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores import score
from prunelab.train import TrainConfig, evaluate, loss_function, train_model


@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=6),
    p=st.floats(0.0, 0.99),
)
@settings(max_examples=60, deadline=None)
def test_every_allocation_keeps_exactly_the_global_count(sizes, p):
    names = {f"l{i}": n for i, n in enumerate(sizes)}
    try:
        k = total_kept(names, p)
    except PrunelabError:
        return  # fewer kept than layers: refused
    shapes = {n: (d,) if d % 2 else (2, d // 2) for n, d in names.items()}
    weights = {n: torch.randn(s) for n, s in shapes.items()}
    grid = np.linspace(0, 0.99, 12)
    costs = {n: (grid, np.random.default_rng(i).random(12).cumsum())
             for i, n in enumerate(names)}  # fmt: skip
    for alloc in (uniform_allocation(names, p), erk_allocation(shapes, p),
                  global_magnitude_allocation(weights, p),
                  curvature_allocation(costs, names, p)):  # fmt: skip
        assert sum(alloc.kept.values()) == k == round((1 - p) * sum(sizes))
        assert all(1 <= alloc.kept[n] <= names[n] for n in names)


def test_erk_matches_a_hand_computation():
    # Linear 20 -> 10 (weight (10, 20)) and conv 3 -> 4, 3x3 (weight (4, 3, 3, 3))
    shapes = {"fc": (10, 20), "conv": (4, 3, 3, 3)}
    raw = {"fc": (20 + 10) / (20 * 10), "conv": (3 + 4 + 3 + 3) / (3 * 4 * 3 * 3)}
    sizes = {"fc": 200, "conv": 108}
    density = 0.25
    scale = density * 308 / (raw["fc"] * 200 + raw["conv"] * 108)  # nothing capped here
    assert scale * raw["conv"] < 1
    d = erk_densities(shapes, density)
    assert d == pytest.approx({n: scale * raw[n] for n in shapes}, rel=1e-12)
    alloc = erk_allocation(shapes, 0.75)
    assert sum(alloc.kept.values()) == 77
    assert all(abs(alloc.kept[n] - d[n] * sizes[n]) < 1 for n in sizes)


def test_erk_caps_a_layer_at_dense_and_redistributes():
    # a tiny layer (2x2: raw density 1) would exceed 1 at overall density 0.5
    shapes = {"small": (2, 2), "big": (40, 50)}
    d = erk_densities(shapes, 0.5)
    assert d["small"] == 1.0
    # the rest of the budget goes to the big layer: 0.5 * 2004 - 4 weights
    assert d["big"] * 2000 == pytest.approx(0.5 * 2004 - 4, rel=1e-12)
    alloc = erk_allocation(shapes, 0.5)
    assert alloc.kept == {"small": 4, "big": 998} and alloc.info["dense_layers"] == ["small"]


def test_apportion_uses_largest_remainders():
    assert apportion({"a": 2.6, "b": 2.3, "c": 1.1}, {"a": 9, "b": 9, "c": 9}, 6) == {
        "a": 3, "b": 2, "c": 1}  # fmt: skip
    assert apportion({"a": 5.0, "b": 5.0}, {"a": 3, "b": 9}, 8) == {"a": 3, "b": 5}  # capped


def test_curvature_allocation_equalises_the_predicted_cost():
    grid = np.linspace(0, 1, 101)
    costs = {"cheap": (grid, 0.1 * grid), "dear": (grid, 10.0 * grid)}
    alloc = curvature_allocation(costs, {"cheap": 100, "dear": 100}, 0.5, eps=0.05)
    # equal cost τ: 0.1 p_c = 10 p_d and p_c + p_d = 1 -> p_d = 1/101
    assert alloc.kept["cheap"] + alloc.kept["dear"] == 100
    assert alloc.sparsities()["dear"] == pytest.approx(1 / 101, abs=0.011)
    assert alloc.limits == {"cheap": 0.5, "dear": 0.0}


def test_mask_from_layer_counts_keeps_exact_counts_by_score():
    torch.manual_seed(0)
    scores = {"a": torch.rand(5, 7), "b": torch.rand(30)}
    mask = Mask.from_layer_counts(scores, {"a": 12, "b": 0})
    assert int(mask.masks["a"].sum()) == 12 and int(mask.masks["b"].sum()) == 0
    assert mask.collapsed == ["b"]
    kept, dropped = scores["a"][mask.masks["a"]], scores["a"][~mask.masks["a"]]
    assert kept.min() >= dropped.max()
    with pytest.raises(PrunelabError, match=r"must be in \[0, 30\]"):
        Mask.from_layer_counts(scores, {"a": 1, "b": 31})
    with pytest.raises(PrunelabError, match="kept counts name"):
        Mask.from_layer_counts(scores, {"a": 1})


def test_global_magnitude_allocation_is_the_global_mask():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    weights = {n: p.detach() for n, p in prunable_parameters(net).items()}
    alloc = global_magnitude_allocation(weights, 0.7)
    mags = {n: w.abs() for n, w in weights.items()}
    ref = Mask.from_scores(mags, 0.7)
    assert Mask.from_layer_counts(mags, alloc.kept).equal(ref)


@pytest.fixture(scope="module")
def small():
    data = datasets.load("digits", seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, 10)).double()
    train_model(net, data, TrainConfig(epochs=3, progress=False))
    return net.eval(), data


def test_quadratic_layer_costs_match_the_exact_hessian(small):
    net, data = small
    grid = [0.0, 0.3, 0.6, 0.9]
    costs = _layer_costs.quadratic_layer_costs(net, data, grid, samples=60, batch_size=25)
    params = prunable_parameters(net)
    x, y = data.train[0][:60].double(), data.train[1][:60]
    names = list(params)
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss_of(theta):
        out, start = {}, 0
        for n in names:
            out[n] = theta[start : start + params[n].numel()].reshape(params[n].shape)
            start += params[n].numel()
        full = {**dict(net.named_parameters()), **out}
        return loss_function(data)(torch.func.functional_call(net, full, (x,)), y)

    g = torch.autograd.functional.jacobian(loss_of, flat)
    H = torch.autograd.functional.hessian(loss_of, flat)
    scores = score(net, "magnitude")
    start = 0
    for n in names:
        size = params[n].numel()
        for j, p in enumerate(grid):
            keep = Mask.from_scores(scores, p, scope="layer").masks[n].reshape(-1)
            d = torch.zeros_like(flat)
            d[start : start + size] = torch.where(keep, 0.0, -flat[start : start + size])
            exact = float(g @ d + 0.5 * d @ H @ d)
            assert costs[n][1][j] == pytest.approx(exact, rel=1e-9, abs=1e-12)
        start += size


def test_allocate_builds_masks_at_the_overall_sparsity(small):
    net, data = small
    found = allocate(net, data, 0.8, grid=[i / 20 for i in range(20)], samples=60,
                     batch_size=30)  # fmt: skip
    mags = score(net, "magnitude")
    for alloc in found.values():
        mask = Mask.from_layer_counts(mags, alloc.kept)
        assert mask.nnz == round(0.2 * mask.total)
        work = mask.apply(copy.deepcopy(net))
        assert evaluate(work, data)["accuracy"] >= 0
    assert set(found["curvature"].limits) == set(mags)
    gw = allocate(net, data, 0.8, ("curvature",), predictor="gaussian-width", samples=60,
                  num_iters=8, num_runs=2, grid=[0.0, 0.4, 0.8])  # fmt: skip
    assert sum(gw["curvature"].kept.values()) == round(0.2 * mask.total)
    with pytest.raises(PrunelabError, match="unknown allocation"):
        allocate(net, data, 0.8, ("nope",))
