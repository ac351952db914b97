"""Hessian-row ℓ1 norms against the dense float64 Hessian of ``torch.func.hessian``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits.hessian_rows import hessian_row_norms, threshold_indices
from prunelab.prunable import prunable_parameters


def _case(n=37, seed=0, dead=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long() + (x[:, 2] > 0.3).long()
    data = DataBundle("tiny", (x, y), (x[:5], y[:5]), 3, (4,))
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    if dead:  # a dead ReLU unit: its incoming and outgoing weights have zero Hessian rows
        with torch.no_grad():
            net[0].bias[2] = -100.0
    return net, data


def _dense_hessian(net, data):
    """The slow, obviously right reference: ∇² of the full-data mean loss, float64."""
    net = net.double()
    params = prunable_parameters(net)
    names = list(params)
    shapes = [p.shape for p in params.values()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params.values()])
    x, y = data.train
    x = x.double()

    def loss(flat):
        chunks, start = {}, 0
        for n, s in zip(names, shapes, strict=True):
            chunks[n] = flat[start : start + s.numel()].reshape(s)
            start += s.numel()
        out = functional_call(net, chunks, (x,))
        return nn.functional.cross_entropy(out, y)

    return hessian(loss)(flat0).detach(), flat0


@pytest.mark.parametrize("batch_size", [37, 8, 1])
def test_row_norms_equal_the_dense_hessian(batch_size):
    net, data = _case()
    levels = [i / 20 for i in range(20)]
    res = hessian_row_norms(net, data, levels, batch_size=batch_size, block=7)
    H, flat = _dense_hessian(net, data)
    assert torch.allclose(H, H.T, atol=1e-12)
    expected = H.abs().sum(1).numpy()
    idx = threshold_indices(flat, levels)
    assert np.array_equal(res.indices, idx)
    np.testing.assert_allclose(res.row_l1, expected[idx], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.magnitudes, flat.abs().numpy()[idx], rtol=0, atol=0)
    assert res.num_examples == 37 and res.dim == flat.numel()


def test_dead_unit_rows_are_zero_and_counted():
    net, data = _case(dead=True)
    levels = [i / 100 for i in range(100)]
    res = hessian_row_norms(net, data, levels)
    H, flat = _dense_hessian(net, data)
    zero_rows = (H.abs().sum(1) == 0).numpy()
    # 4 inputs + 3 outputs of the dead unit: 7 weights with an exactly flat row
    assert zero_rows.sum() == 7
    assert res.fraction_below == pytest.approx(np.mean(zero_rows[res.indices]))
    assert res.fraction_below_at(0.0) == 0.0  # nothing is below 0
    net, data = _case(dead=False)
    alive = hessian_row_norms(net, data, levels)
    assert alive.fraction_below < res.fraction_below


def test_threshold_index_is_the_largest_weight_removed():
    w = np.array([0.5, -0.1, 0.1, 0.3, -0.2])  # tie |−0.1| = |0.1|: earlier position first
    assert threshold_indices(w, [0.0, 0.2, 0.4, 0.5, 0.9]).tolist() == [1, 1, 2, 4, 0]
    rng = np.random.default_rng(0)
    w = rng.standard_normal(101)
    for p in (0.0, 0.013, 0.5, 0.99):
        t = threshold_indices(w, [p])[0]
        k = max(1, int(np.ceil(p * w.size)))
        assert (np.abs(w) < abs(w[t])).sum() == k - 1  # exactly k−1 smaller weights


def test_model_untouched_and_bad_input_refused():
    net, data = _case()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    hessian_row_norms(net, data, [0.5])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert next(net.parameters()).dtype == torch.float32
    with pytest.raises(PrunelabError, match="levels"):
        hessian_row_norms(net, data, [1.0])
    with pytest.raises(PrunelabError, match="threshold"):
        hessian_row_norms(net, data, [0.5], threshold=-1.0)
    with pytest.raises(PrunelabError, match="block"):
        hessian_row_norms(net, data, [0.5], block=0)
