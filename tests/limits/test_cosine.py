"""Paper 003's cosine curve, p*, layer kurtoses and the guarded safety factor."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import kurtosis
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.limits import (
    cosine_curve,
    cosine_rule,
    kurtosis_of_kurtoses,
    layer_kurtoses,
    safety_multiplier,
)
from prunelab.limits.cosine import GUARD_SMALL_K2, GUARD_UNDEFINED
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score


def _net():
    return nn.Sequential(
        nn.Linear(9, 8),
        nn.ReLU(),
        nn.Linear(8, 6),
        nn.ReLU(),
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    )


def _flat(model):
    return torch.cat([p.detach().reshape(-1).double() for p in prunable_parameters(model).values()])


def test_closed_form_equals_cosine_of_actually_pruned_vectors():
    net = _net()
    dense = _flat(net)
    d = dense.numel()
    ps = torch.rand(20, generator=torch.Generator().manual_seed(3), dtype=torch.float64).tolist()
    ps += [0.0, 1 / d, 0.5, (d - 1) / d]
    closed = cosine_curve(net, ps)
    for p, c in zip(ps, closed.tolist(), strict=True):
        pruned = copy.deepcopy(net)
        Mask.from_scores(score(net, "magnitude"), p, min_per_layer=0).apply(pruned)
        v = _flat(pruned)
        cos = float(torch.dot(dense, v) / (dense.norm() * v.norm()))
        assert abs(c - cos) <= 1e-6
    assert float(cosine_curve(net, 1.0)) == 0.0


def test_cosine_curve_inputs_and_errors():
    net = _net()
    params = prunable_parameters(net)
    ps = [0.1, 0.6]
    a = cosine_curve(net, ps)
    assert torch.equal(a, cosine_curve(dict(params), ps))
    assert torch.equal(a, cosine_curve(_flat(net), ps))
    assert cosine_curve(net, torch.tensor([[0.2, 0.3]])).shape == (1, 2)
    with pytest.raises(PrunelabError, match="sparsities"):
        cosine_curve(net, [1.5])
    with pytest.raises(PrunelabError, match="zero"):
        cosine_curve(torch.zeros(10), [0.5])


def test_p_star_matches_brute_force_grid():
    net = _net()
    w = np.sort(np.abs(_flat(net).numpy()))[::-1]  # descending
    d = w.size
    grid = 2001
    ps = np.linspace(0, 1, grid)
    best, best_p = math.inf, None
    for p in ps:  # obviously-right loop: keep the largest round((1-p)D) weights
        kept = round((1 - p) * d)
        cos = math.sqrt(float(np.sum(w[:kept] ** 2)) / float(np.sum(w**2)))
        dist = math.hypot(1 - cos, 1 - p)
        if dist < best - 1e-15:
            best, best_p = dist, p
    rule = cosine_rule(net, grid=grid)
    assert rule.p_star == pytest.approx(best_p, abs=1e-12)
    assert rule.cos_star == pytest.approx(float(cosine_curve(net, rule.p_star)))
    assert 0 <= rule.p_safe <= rule.p_star
    json.dumps(rule.to_dict())


def test_layer_kurtoses_are_pearson_per_tensor():
    net = _net()
    got = layer_kurtoses(net)
    for name, p in prunable_parameters(net).items():
        want = kurtosis(p.detach().reshape(-1).double().numpy(), fisher=False)
        assert got[name] == pytest.approx(want, rel=1e-12)


def test_safety_multiplier_guards():
    assert safety_multiplier(1.0) == (1.0, GUARD_SMALL_K2)  # 1/ln 1 would divide by zero
    m, g = safety_multiplier(2.0)  # 1/ln 2 ≈ 1.44 would be "safer" than p*
    assert (m, g) == (1.0, GUARD_SMALL_K2)
    m, g = safety_multiplier(math.e)
    assert m == 1.0 and g == GUARD_SMALL_K2
    m, g = safety_multiplier(math.e * (1 + 1e-9))  # continuous across e
    assert g is None and m == pytest.approx(1.0, abs=1e-8) and m < 1.0
    assert safety_multiplier(math.e**2)[0] == pytest.approx(0.5)
    for k2 in (None, float("nan")):
        assert safety_multiplier(k2) == (1.0, GUARD_UNDEFINED)
    ks = np.linspace(1.0, 50.0, 500)
    ms = [safety_multiplier(k)[0] for k in ks]
    assert all(0 < m <= 1 for m in ms) and np.all(np.diff(ms) <= 0)


def test_kurtosis_of_kurtoses_definition_and_undefined_cases():
    assert kurtosis_of_kurtoses([2.0, 2.0, 5.0, 5.0]) == pytest.approx(1.0)  # two-point: 1
    vals = [1.2, 3.0, 1.9, 8.0, 2.2]
    assert kurtosis_of_kurtoses(vals) == pytest.approx(kurtosis(vals, fisher=False))
    assert kurtosis_of_kurtoses([1.0, 2.0, 3.0]) is None  # fewer than 4 layers
    assert kurtosis_of_kurtoses([1.0, 2.0, float("nan"), 3.0]) is None
    assert kurtosis_of_kurtoses([3.0] * 5) is None


def _set_layers(net, tensors):
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, t in zip(layers, tensors, strict=True):
            lin.weight.copy_(t.reshape(lin.weight.shape))


def test_cosine_rule_end_to_end_k2_one_is_guarded():
    # Two layers with kurtosis 1 (±1 weights) and two with another common kurtosis: the
    # list {a, a, b, b} has Pearson kurtosis exactly 1 -> 1/ln K² is a division by zero.
    net = nn.Sequential(*[nn.Linear(4, 4, bias=False) for _ in range(4)])
    pm = torch.tensor([1.0, -1.0] * 8)
    heavy = torch.tensor([0.1] * 6 + [-0.1] * 6 + [2.0, -2.0, 0.5, -0.5])
    _set_layers(net, [pm, pm * 0.5, heavy, heavy * 3])
    rule = cosine_rule(net, grid=10001)
    assert rule.k2 == pytest.approx(1.0, abs=1e-9)
    assert rule.guard == GUARD_SMALL_K2 and rule.multiplier == 1.0
    assert rule.p_safe == rule.p_star


def test_cosine_rule_end_to_end_large_k2_applies_published_rule():
    # Nine layers with kurtosis 1 and one heavy-tailed layer: K² = (1-3q+3q²)/(q(1-q)), q=0.1.
    net = nn.Sequential(*[nn.Linear(4, 4, bias=False) for _ in range(10)])
    pm = torch.tensor([1.0, -1.0] * 8)
    heavy = torch.tensor([0.01] * 7 + [-0.01] * 7 + [3.0, -3.0])
    _set_layers(net, [pm * (i + 1) for i in range(9)] + [heavy])
    rule = cosine_rule(net, grid=10001)
    q = 0.1
    assert rule.k2 == pytest.approx((1 - 3 * q + 3 * q**2) / (q * (1 - q)), rel=1e-9)
    assert rule.guard is None
    assert rule.multiplier == pytest.approx(1 / math.log(rule.k2))
    assert rule.p_safe == pytest.approx(rule.p_star * rule.multiplier)


def test_cosine_rule_few_layers_and_bad_grid():
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    rule = cosine_rule(net, grid=1001)
    assert rule.k2 is None and rule.guard == GUARD_UNDEFINED and rule.p_safe == rule.p_star
    for bad in (1, 0, 2.5, True):
        with pytest.raises(PrunelabError, match="grid"):
            cosine_rule(net, grid=bad)


def _pearson_kurtosis(x: np.ndarray) -> float:
    """Direct numpy: m4 / m2² with biased central moments (scipy's ``fisher=False``)."""
    d = x - x.mean()
    return float(np.mean(d**4) / np.mean(d**2) ** 2)


def _notebook_k2(net: nn.Module) -> float:
    """003's notebook: one kurtosis per weight and per bias tensor, then their kurtosis."""
    per_tensor = []
    for mod in net.modules():
        if isinstance(mod, nn.Linear | nn.Conv2d):
            for t in (mod.weight, mod.bias):
                if t is not None:
                    per_tensor.append(_pearson_kurtosis(t.detach().double().numpy().ravel()))
    return _pearson_kurtosis(np.array(per_tensor))


def test_weights_and_bias_convention_matches_a_direct_numpy_computation():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 7), nn.ReLU(),
        nn.Linear(7, 3, bias=False),
    )  # fmt: skip
    got = layer_kurtoses(net, kurtosis_tensors="weights+bias")
    assert list(got) == ["0.weight", "0.bias", "3.weight", "3.bias", "5.weight"]
    params = dict(net.named_parameters())
    for name, value in got.items():
        want = _pearson_kurtosis(params[name].detach().double().numpy().ravel())
        assert value == pytest.approx(want, rel=1e-12)
    rule = cosine_rule(net, grid=1001, kurtosis_tensors="weights+bias")
    assert rule.kurtosis_tensors == "weights+bias"
    assert rule.k2 == pytest.approx(_notebook_k2(net), rel=1e-10)
    # the default convention is unchanged: weights only
    assert list(layer_kurtoses(net)) == ["0.weight", "3.weight", "5.weight"]
    assert cosine_rule(net, grid=1001).p_star == rule.p_star  # p* does not depend on it


def test_biases_can_define_k2_where_weights_alone_cannot():
    # lenet300-like: 3 layers -> K² undefined over weights, defined over weights + biases
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].bias.mul_(torch.linspace(0.1, 5.0, 12))  # make the tensors differ in shape
    assert cosine_rule(net, grid=1001).guard == GUARD_UNDEFINED
    rule = cosine_rule(net, grid=1001, kurtosis_tensors="weights+bias")
    assert rule.k2 == pytest.approx(_notebook_k2(net), rel=1e-10)
    assert rule.multiplier == safety_multiplier(rule.k2)[0]
    assert rule.p_safe == pytest.approx(rule.p_star * rule.multiplier)


def test_bias_convention_does_not_count_a_prunable_bias_twice():
    net = _net()
    spec = PrunableSpec(include_bias=True)
    assert list(layer_kurtoses(net, spec, "weights+bias")) == list(layer_kurtoses(net, spec))


def test_unknown_kurtosis_tensors_is_refused():
    with pytest.raises(PrunelabError, match="kurtosis_tensors"):
        cosine_rule(_net(), grid=11, kurtosis_tensors="all")
    with pytest.raises(PrunelabError, match="kurtosis_tensors"):
        layer_kurtoses(_net(), kurtosis_tensors="bias")


def test_sweep_prediction_holds_both_conventions():
    from prunelab.experiments.jobs import predictions

    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    found = predictions(net, None, ["cosine"], cosine_grid=1001, kurtosis_tensors="weights+bias")
    cos = found["cosine"]
    assert cos["kurtosis_tensors"] == "weights+bias"
    for tensors in ("weights", "weights+bias"):
        rule = cosine_rule(net, grid=1001, kurtosis_tensors=tensors)
        got = cos["by_kurtosis_tensors"][tensors]
        assert got == {k: getattr(rule, k) for k in ("k2", "multiplier", "guard", "p_safe")}
    assert cos["p_safe"] == cos["by_kurtosis_tensors"]["weights+bias"]["p_safe"]
    json.dumps(cos)
