"""One-shot and iterative pruning: schedule, shrinking masks, exact density, re-scoring, records."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures import density_schedule, iterative, one_shot, run_procedure
from prunelab.scores import score
from prunelab.train import TrainConfig


def tiny_data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return DataBundle(
        "tiny", (x[: n // 2 + 8], y[: n // 2 + 8]), (x[n // 2 + 8 :], y[n // 2 + 8 :]), 3, (4,)
    )


def tiny_net(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)
    ).double()


def test_density_schedule_is_exponential_in_density():
    sched = density_schedule(0.05, 4)
    assert sched[-1] == 0.05
    ratios = [b / a for a, b in zip([1.0] + sched[:-1], sched, strict=True)]
    assert all(r == pytest.approx(0.05**0.25, rel=1e-12) for r in ratios)
    assert density_schedule(0.2, 2, start_density=0.8) == pytest.approx([0.4, 0.2])
    assert density_schedule(0.3, 1) == [0.3]
    with pytest.raises(PrunelabError, match="steps"):
        density_schedule(0.5, 0)
    with pytest.raises(PrunelabError, match="start density"):
        density_schedule(0.5, 2, start_density=0.4)


@pytest.mark.parametrize(
    ("sparsity", "steps", "scope"), [(0.9, 5, "global"), (0.7, 3, "layer"), (0.5, 1, "global")]
)
def test_masks_only_shrink_and_hit_target_exactly(float64, monkeypatch, sparsity, steps, scope):
    data = tiny_data()
    net = tiny_net()
    seen = []
    original = Mask.from_scores

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(Mask, "from_scores", spy)
    mask, rec = iterative(net, "taylor1", sparsity, steps, data=data, scope=scope)
    assert len(seen) == steps and seen[-1] is mask
    prev = Mask.dense(net)
    total = prev.total
    for m, d in zip(seen, rec.densities, strict=True):
        for name in m.masks:
            assert not (m.masks[name] & ~prev.masks[name]).any(), "a pruned weight revived"
        if scope == "global":
            assert m.nnz == round(d * total)
        prev = m
    if scope == "global":
        assert mask.nnz == round((1 - sparsity) * total)
    else:
        assert all(
            r["kept"] == max(1, round((1 - sparsity) * r["total"])) for r in mask.per_layer()
        )
    for name, p in dict(net.named_parameters()).items():
        if name in mask.masks:
            assert torch.equal(p[~mask.masks[name]], torch.zeros_like(p[~mask.masks[name]]))
    assert [r["nnz"] for r in rec.step_log] == [m.nnz for m in seen]


def test_rescoring_happens_at_the_masked_point(float64):
    data = tiny_data()
    net = tiny_net()
    ref = copy.deepcopy(net)
    batches = list(data.batches("train", 256, limit=1000))
    mask, rec = iterative(net, "taylor1", 0.75, 2, data=data)
    # Reference: by hand, with the same schedule.
    d1 = density_schedule(0.25, 2)[0]
    m1 = Mask.from_scores(score(ref, "taylor1", batches, F.cross_entropy), 1 - d1)
    m1.apply(ref)
    m2 = Mask.from_scores(score(ref, "taylor1", batches, F.cross_entropy), 0.75, previous=m1)
    assert mask.equal(m2)
    # Scoring the dense point twice gives a different (non-local) mask here.
    dense = score(tiny_net(), "taylor1", batches, F.cross_entropy)
    assert not mask.equal(Mask.from_scores(dense, 0.75))


def test_iterative_with_locality_and_hparams_recorded(float64):
    data = tiny_data()
    a, rec = iterative(tiny_net(), "obd", 0.8, 3, data=data, curvature="exact", locality=1e9)
    b, _ = iterative(tiny_net(), "magnitude", 0.8, 3, data=data)
    assert a.equal(b)
    assert rec.hparams["locality"] == 1e9 and rec.hparams["curvature"] == "exact"
    assert rec.procedure == "iterative" and rec.steps == 3


def test_record_has_metrics_after_prune_and_after_finetune(float64):
    data = tiny_data()
    net = tiny_net()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, optimizer="adam")
    mask, rec = one_shot(net, "snip", 0.6, data=data, finetune=cfg)
    assert rec.procedure == "one-shot"
    for stage in (rec.dense, rec.after_prune, rec.after_finetune):
        assert set(stage) == {"loss", "accuracy", "train_loss", "train_accuracy"}
    assert rec.dense != rec.after_prune != rec.after_finetune
    assert len(rec.history) == 2
    assert rec.sparsity == pytest.approx(mask.sparsity) and rec.nnz == mask.nnz
    for name, keep in mask.masks.items():  # fine-tuning kept the mask exactly
        assert (dict(net.named_parameters())[name][~keep] == 0).all()
    # The scoring batches are the whole (tiny) training split here.
    assert rec.step_log[0]["loss"] == pytest.approx(rec.after_prune["train_loss"], rel=1e-12)
    json.dumps(rec.to_dict())  # JSON-ready


def test_loss_change_recorded_per_step(float64):
    data = tiny_data()
    _, rec = iterative(tiny_net(), "taylor1", 0.5, 2, data=data, loss_change="hvp")
    for row in rec.step_log:
        lc = row["loss_change"]
        assert lc["loss_after"] == pytest.approx(row["loss"], rel=1e-12)
        assert lc["measured"] == pytest.approx(lc["loss_after"] - lc["loss_before"])


def test_bad_inputs(float64):
    data = tiny_data()
    with pytest.raises(PrunelabError, match="steps"):
        iterative(tiny_net(), "magnitude", 0.5, 0, data=data)
    with pytest.raises(PrunelabError, match="steps"):
        run_procedure(tiny_net(), data, "magnitude", 0.5, steps=0)
    with pytest.raises(PrunelabError, match="locality"):
        iterative(tiny_net(), "taylor1", 0.5, 2, data=data, locality=-0.1)
    with pytest.raises(PrunelabError, match="needs data"):
        one_shot(tiny_net(), "taylor2", 0.5)
    with pytest.raises(PrunelabError, match="curvature"):
        one_shot(tiny_net(), "taylor2", 0.5, data=data, curvature="kfac")
    with pytest.raises(PrunelabError, match="no prunable parameters"):
        one_shot(nn.Sequential(nn.Tanh()), "magnitude", 0.5)
    with pytest.raises(PrunelabError, match="sparsity"):
        one_shot(tiny_net(), "magnitude", 1.0)
    with pytest.raises(PrunelabError, match="loss_change"):
        one_shot(tiny_net(), "magnitude", 0.5, data=data, loss_change="exact")


def test_run_procedure_dispatch(float64):
    data = tiny_data()
    _, rec = run_procedure(tiny_net(), data, "magnitude", 0.5)
    assert rec.procedure == "one-shot"
    _, rec = run_procedure(tiny_net(), data, "taylor1", 0.5, steps=3, hparams={"locality": 0.1})
    assert rec.procedure == "iterative" and rec.steps == 3 and rec.hparams["locality"] == 0.1
    with pytest.raises(PrunelabError, match="only for 'at-init'"):
        run_procedure(tiny_net(), data, "magnitude", 0.5, bn_recalibrate=True)
    prev = Mask.from_scores(score(tiny_net(), "magnitude"), 0.5)
    net = tiny_net()
    mask, rec = run_procedure(net, data, "taylor1", 0.8, steps=2, previous=prev)
    assert rec.densities[0] == pytest.approx((prev.density * 0.2) ** 0.5, rel=1e-12)
    assert all(not (mask.masks[n] & ~prev.masks[n]).any() for n in mask.masks)
