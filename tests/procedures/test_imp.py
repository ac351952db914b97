"""IMP rewinds survivors to the early iterate; LOMP = ℓ1 training then one-shot magnitude."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures import DEFAULT_L1, imp, lomp
from prunelab.scores import score
from prunelab.train import TrainConfig, train_model


def tiny_data(n=60):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] - x[:, 3] > 0).long()
    return DataBundle("tiny", (x[:40], y[:40]), (x[40:], y[40:]), 2, (4,))


def net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).double()


CFG = TrainConfig(epochs=3, batch_size=8, lr=0.1, momentum=0.9, schedule="cosine")


@pytest.mark.parametrize("rewind_epoch", [0, 1])
def test_imp_rewinds_survivors_to_the_early_iterate(float64, rewind_epoch):
    data = tiny_data()
    early = net()
    if rewind_epoch:  # the same run, stopped after `rewind_epoch` epochs
        train_model(early, data, CFG, callback=lambda row: row["epoch"] == rewind_epoch)
    early_state = copy.deepcopy(early.state_dict())
    checked = []

    def inspect(r, model, mask):
        for k, v in model.state_dict().items():
            keep = mask.masks.get(k)
            want = early_state[k] if keep is None else torch.where(keep, early_state[k], 0.0)
            assert torch.equal(v, want), (r, k)
        checked.append(r)

    mask, rec = imp(net(), data, 0.8, 2, CFG, rewind_epoch=rewind_epoch, callback=inspect)
    assert checked == [1, 2]
    assert mask.nnz == round(0.2 * mask.total)
    assert rec.step_log[0]["nnz"] > rec.step_log[1]["nnz"] == mask.nnz
    assert rec.after_prune is not None and rec.after_finetune is not None
    assert len(rec.extra["rounds"]) == 2 and len(rec.history) == CFG.epochs - rewind_epoch


def test_imp_masks_come_from_trained_magnitudes(float64):
    data = tiny_data()
    dense = net()
    train_model(dense, data, CFG)
    want = Mask.from_scores(score(dense, "magnitude"), 0.5)
    mask, _ = imp(net(), data, 0.5, 1, CFG, rewind_epoch=1)
    assert mask.equal(want)


def test_imp_bad_inputs(float64):
    with pytest.raises(PrunelabError, match="rewind_epoch"):
        imp(net(), tiny_data(), 0.5, 1, CFG, rewind_epoch=4)
    with pytest.raises(PrunelabError, match="rounds"):
        imp(net(), tiny_data(), 0.5, 0, CFG)


def test_lomp_trains_with_l1_then_prunes_by_magnitude(float64):
    data = tiny_data()
    mask, rec = lomp(net(), data, 0.6, CFG)
    assert rec.extra["l1"] == DEFAULT_L1 == 5e-5 and rec.procedure == "lomp"
    ref = net()
    train_model(ref, data, dataclasses.replace(CFG, l1=DEFAULT_L1))
    assert mask.equal(Mask.from_scores(score(ref, "magnitude"), 0.6))
    plain = net()
    train_model(plain, data, CFG)
    assert not torch.equal(plain[0].weight, ref[0].weight)  # the penalty was active
    mask2, rec2 = lomp(net(), data, 0.6, CFG, l1=1e-3)
    assert rec2.extra["train"]["l1"] == 1e-3
