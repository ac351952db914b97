"""Pruning at initialisation: BatchNorm recalibration touches only running statistics."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.masks import Mask
from prunelab.procedures import SYNFLOW_ROUNDS, at_init, recalibrate_bn, run_procedure
from prunelab.procedures.iterative import density_schedule
from prunelab.train import TrainConfig

STATS = ("running_mean", "running_var", "num_batches_tracked")


def tiny_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g) * 3 + 1
    y = (x[:, 0] > 1).long() + (x[:, 1] > 2).long()
    return DataBundle("tiny", (x[:48], y[:48]), (x[48:], y[48:]), 3, (4,))


def bn_net():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(4, 6),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Linear(6, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).double()


def test_recalibration_changes_only_running_statistics(float64):
    net = bn_net().eval()
    params = {k: v.clone() for k, v in net.named_parameters()}
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    data = tiny_data()
    seen = recalibrate_bn(net, data.batches("train", 16))
    assert seen == 48
    for k, v in net.named_parameters():
        assert torch.equal(v, params[k]), k
    changed = {k for k, v in net.named_buffers() if not torch.equal(v, buffers[k])}
    assert changed  # the statistics did move away from (0, 1)
    assert all(k.rsplit(".", 1)[1] in STATS for k in changed)
    assert not net.training and all(not m.training for m in net.modules())
    assert net[1].momentum == 0.1  # restored after the cumulative pass
    assert int(net[1].num_batches_tracked) == 3
    # Cumulative average of the three equal-size batches' statistics.
    with torch.no_grad():
        h = net[0](data.train[0].double())
    means = torch.stack([h[i : i + 16].mean(0) for i in (0, 16, 32)])
    variances = torch.stack([h[i : i + 16].var(0, unbiased=True) for i in (0, 16, 32)])
    torch.testing.assert_close(net[1].running_mean, means.mean(0))
    torch.testing.assert_close(net[1].running_var, variances.mean(0))


def test_recalibration_is_a_noop_without_batchnorm(float64):
    net = nn.Sequential(nn.Linear(4, 3)).double()
    before = copy.deepcopy(net.state_dict())
    assert recalibrate_bn(net, tiny_data().batches("train", 16)) == 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_at_init_with_bn_recalibration_keeps_weights(float64):
    data = tiny_data()
    net = bn_net()
    init = copy.deepcopy(net)
    mask, rec = at_init(net, data, "snip", 0.5, bn_recalibrate=True)
    assert rec.bn_recalibrated and rec.procedure == "at-init" and rec.after_finetune is None
    init_params = dict(init.named_parameters())
    for k, v in net.named_parameters():
        keep = mask.masks.get(k)
        want = init_params[k] if keep is None else torch.where(keep, init_params[k], 0.0)
        assert torch.equal(v, want), k
    assert not torch.equal(net[1].running_var, init[1].running_var)
    # Without recalibration eval-mode BN uses (0, 1) statistics: a different mask here.
    other, _ = at_init(bn_net(), data, "snip", 0.5)
    assert not other.equal(mask)


def test_synflow_rounds_follow_the_density_schedule(float64):
    data = tiny_data()
    mask, rec = at_init(bn_net(), data, "synflow", 0.9)
    assert rec.steps == SYNFLOW_ROUNDS == len(rec.step_log)
    assert rec.densities == pytest.approx(density_schedule(0.1, SYNFLOW_ROUNDS), rel=1e-12)
    assert mask.nnz == round(0.1 * mask.total)
    nnz = [r["nnz"] for r in rec.step_log]
    assert nnz == sorted(nnz, reverse=True) and nnz[0] < mask.total
    _, few = at_init(bn_net(), data, "synflow", 0.9, rounds=3)
    assert few.steps == 3


def test_at_init_trains_with_the_mask_and_warns_on_trained_parent(float64, caplog):
    data = tiny_data()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05)
    net = bn_net()
    with caplog.at_level(logging.WARNING):
        mask, rec = run_procedure(
            net,
            data,
            "magnitude",
            0.7,
            kind="at-init",
            bn_recalibrate=True,
            finetune=cfg,
            parent_meta={"job": "train", "train": {"epochs": 5}},
        )
    assert rec.warnings and "already trained" in caplog.text
    assert rec.after_finetune is not None and len(rec.history) == 2
    for name, keep in mask.masks.items():
        assert (dict(net.named_parameters())[name][~keep] == 0).all()
    assert Mask.from_model_zeros(net).nnz <= mask.nnz


def test_bad_rounds(float64):
    from prunelab.errors import PrunelabError

    with pytest.raises(PrunelabError, match="rounds"):
        at_init(bn_net(), tiny_data(), "synflow", 0.5, rounds=0)
    with pytest.raises(PrunelabError, match="only for 'at-init'"):
        run_procedure(bn_net(), tiny_data(), "synflow", 0.5, rounds=5)
