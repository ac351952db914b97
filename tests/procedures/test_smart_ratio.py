"""Smart-Ratio: the closed-form keep ratios, the masks its scores give, and at-init training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures import at_init
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import CRITERIA, score
from prunelab.scores.smart_ratio import smart_ratio_keep_ratios, smart_ratio_weights
from prunelab.train import TrainConfig


def _net():
    torch.manual_seed(0)  # layers of very different sizes: 400, 60, 30, 15
    return nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3), nn.ReLU(),
                         nn.Linear(3, 10), nn.ReLU(), nn.Linear(10, 1 + 2))  # fmt: skip


def _slow_ratios(sizes: list[int], p: float, pin: float | None = None) -> list[float]:
    """Reference: bisection on γ of Σ min(1, γ r_l) D_l = (1 − p) D (monotone in γ).

    With ``pin``, the last layer keeps ``round(pin·D_L)`` and the others share the rest.
    """
    L = len(sizes)
    r = [(L - k + 1) ** 2 + (L - k + 1) for k in range(1, L + 1)]  # k = layer number
    target = (1 - p) * sum(sizes)
    if pin is not None:
        last = round(pin * sizes[-1])
        return [*_slow_free(sizes[:-1], r[:-1], target - last), last / sizes[-1]]
    return _slow_free(sizes, r, target)


def _slow_free(sizes, r, target):
    lo, hi = 0.0, 1.0 / min(r)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (
            (mid, hi)
            if sum(min(1.0, mid * a) * d for a, d in zip(r, sizes, strict=True)) < target
            else (lo, mid)
        )
    return [min(1.0, lo * a) for a in r]


def test_rule_and_water_filling_match_the_slow_reference():
    assert smart_ratio_weights(4) == [20, 12, 6, 2]
    sizes = {"0.weight": 400, "2.weight": 60, "4.weight": 30, "6.weight": 30}
    for p in (0.05, 0.3, 0.5, 0.9, 0.98):
        fast = smart_ratio_keep_ratios(sizes, p, classifier_keep=None)
        np.testing.assert_allclose(list(fast.values()), _slow_ratios(list(sizes.values()), p),
                                   rtol=1e-9, atol=1e-12)  # fmt: skip
        pinned = smart_ratio_keep_ratios(sizes, p)  # default: the last layer at 30 %
        slow = _slow_ratios(list(sizes.values()), p, 0.3)
        np.testing.assert_allclose(list(pinned.values()), slow, rtol=1e-9)
        assert pinned["6.weight"] == 0.3
        assert sum(pinned[n] * d for n, d in sizes.items()) == pytest.approx((1 - p) * 520)
        assert sum(fast[n] * d for n, d in sizes.items()) == pytest.approx((1 - p) * 520)
        kept = list(fast.values())
        assert all(
            a >= b - 1e-15 for a, b in zip(kept, kept[1:], strict=False)
        )  # decays with depth
    capped = smart_ratio_keep_ratios({"a.w": 10, "b.w": 1000}, 0.5, classifier_keep=None)
    assert capped["a.w"] == 1.0  # γ·r_1 > 1: dense, the rest re-solved
    assert capped["b.w"] == pytest.approx((505 - 10) / 1000)  # (1 − p)·1010 − 10 left
    with pytest.raises(PrunelabError, match="classifier_keep"):  # 300 pinned > 505 − 10 room
        smart_ratio_keep_ratios({"a.w": 10, "b.w": 1000}, 0.5)
    with pytest.raises(PrunelabError, match="classifier_keep"):
        smart_ratio_keep_ratios(sizes, 0.5, classifier_keep=1.5)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.98])
def test_global_top_k_of_the_scores_gives_the_rule(p):
    net = _net()
    s = score(net, "smart_ratio", seed=1)
    mask = Mask.from_scores(s, p)
    sizes = {n: t.numel() for n, t in s.items()}
    ratios = smart_ratio_keep_ratios(sizes, p)
    assert mask.nnz == round((1 - p) * mask.total)
    L = len(sizes)
    for n, m in mask.masks.items():
        assert abs(int(m.sum()) - ratios[n] * sizes[n]) <= (L + 1) / 2, (n, int(m.sum()))
    if p < 0.98:  # the pin holds exactly unless min_per_layer takes from it (p = 0.98)
        assert int(mask.masks["6.weight"].sum()) == 9  # round(0.3 · 30)
    free = Mask.from_scores(score(net, "smart_ratio", seed=1, classifier_keep=None), p)
    ratios = smart_ratio_keep_ratios(sizes, p, classifier_keep=None)
    for n, m in free.masks.items():
        assert abs(int(m.sum()) - ratios[n] * sizes[n]) <= (L + 1) / 2, (n, int(m.sum()))


def test_random_inside_a_layer_and_seeded():
    net = _net()
    a = Mask.from_scores(score(net, "smart_ratio", seed=0), 0.9)
    b = Mask.from_scores(score(net, "smart_ratio", seed=0), 0.9)
    c = Mask.from_scores(score(net, "smart_ratio", seed=5), 0.9)
    assert a.equal(b) and not a.equal(c)
    assert all(int(a.masks[n].sum()) == int(c.masks[n].sum()) for n in a.masks)
    # the scores do not look at the weights: a rescaled net gets the same mask
    with torch.no_grad():
        for prm in net.parameters():
            prm.mul_(-3.0)
    assert a.equal(Mask.from_scores(score(net, "smart_ratio", seed=0), 0.9))
    # uniform positions: over 400 seeds, each weight of the first layer is kept at its
    # layer's rate (binomial: 5 standard deviations)
    freq = torch.zeros(20, 20)
    for seed in range(400):
        freq += Mask.from_scores(score(net, "smart_ratio", seed=seed), 0.9).masks["0.weight"]
    rate = float(freq.sum()) / (400 * 400)
    sd = (rate * (1 - rate) / 400) ** 0.5
    assert float((freq / 400 - rate).abs().max()) < 5 * sd


def test_weight_and_bias_of_a_layer_share_its_ratio():
    net = _net()
    spec = PrunableSpec(include_bias=True)
    s = score(net, "smart_ratio", spec=spec)
    assert list(s) == list(prunable_parameters(net, spec))
    sizes = {n: t.numel() for n, t in s.items()}
    r = smart_ratio_keep_ratios(sizes, 0.5)
    assert r["0.weight"] == r["0.bias"] and r["2.weight"] == r["2.bias"]


def test_at_init_trains_the_masked_net_and_keeps_it_sparse():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 20, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    data = DataBundle("tiny", (x[:64], y[:64]), (x[64:], y[64:]), 3, (20,))
    net = _net()
    mask, record = at_init(net, data, "smart_ratio", 0.9,
                           train_config=TrainConfig(epochs=2, lr=0.05), seed=2)  # fmt: skip
    assert record.procedure == "at-init" and record.criterion == "smart_ratio"
    assert mask.nnz == round(0.1 * mask.total)
    for n, prm in prunable_parameters(net).items():
        assert torch.all(prm[~mask.masks[n]] == 0)
    assert record.after_finetune is not None
    assert "smart_ratio" in CRITERIA.names() and not CRITERIA.get("smart_ratio").needs_data
    with pytest.raises(PrunelabError, match="no hparam"):
        score(net, "smart_ratio", temperature=2.0)
    with pytest.raises(PrunelabError, match="num_layers"):
        smart_ratio_weights(0)
