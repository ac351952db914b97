"""``obd`` ties at zero: ordered by |θ| (default) instead of by parameter order.

A clamped curvature diagonal makes many OBD scores exactly 0; below the sparsity that
prunes all of them, the mask among them must follow something meaningful. The reference
is a slow, obviously right float64 ranking by the key ``(½ max(c, 0) θ², |θ|, -position)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores import score
from prunelab.scores.taylor import break_zero_ties


def _net_with_zero_curvature():
    """A float64 MLP whose exact Hessian diagonal is <= 0 for a third of its weights."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double().eval()
    x = torch.randn(40, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (40,))
    return net, [(x[:25], y[:25]), (x[25:], y[25:])]


def _flat(d):
    return torch.cat([v.reshape(-1) for v in d.values()])


def _reference_keep(net, raw, k):
    """Keep the k best by (raw score, |θ|), earlier position first on exact ties."""
    theta = _flat({n: p.detach() for n, p in prunable_parameters(net).items()})
    keys = sorted(range(len(raw)), key=lambda i: (-float(raw[i]), -abs(float(theta[i])), i))
    keep = torch.zeros(len(raw), dtype=torch.bool)
    keep[keys[:k]] = True
    return keep


def test_zero_scores_are_pruned_smallest_magnitude_first():
    net, batches = _net_with_zero_curvature()
    raw = _flat(score(net, "obd", batches, F.cross_entropy, curvature="exact",
                      tie_break="position"))  # fmt: skip
    zero = raw == 0
    frac = float(zero.double().mean())
    assert 0.1 < frac < 0.9, frac  # ties at zero exist, and positive scores too
    tied = score(net, "obd", batches, F.cross_entropy, curvature="exact")
    p = frac / 2  # prunes half of the zero-scored weights: decided by the tie rule alone
    mask = Mask.from_scores(tied, p, min_per_layer=0)
    k = round((1 - p) * raw.numel())
    assert mask.nnz == k  # exact count
    keep = _flat(mask.masks)
    assert torch.equal(keep, _reference_keep(net, raw, k))
    theta = _flat({n: q.detach() for n, q in prunable_parameters(net).items()}).abs()
    assert keep[~zero].all()  # every positive score survives
    # every surviving zero-scored weight is at least as large as every pruned one
    assert float(theta[zero & keep].min()) >= float(theta[zero & ~keep].max())
    # determinism: the same call gives the same mask
    again = Mask.from_scores(score(net, "obd", batches, F.cross_entropy, curvature="exact"), p,
                             min_per_layer=0)  # fmt: skip
    assert again.equal(mask)
    # the old rule (tie_break="position") prunes the zero-scored weights by position
    old = Mask.from_scores({n: v for n, v in score(net, "obd", batches, F.cross_entropy,
                            curvature="exact", tie_break="position").items()}, p,
                           min_per_layer=0)  # fmt: skip
    old_keep = _flat(old.masks)
    idx = torch.nonzero(zero).reshape(-1)
    n_keep = int((zero & keep).sum())
    assert torch.equal(old_keep[idx], torch.arange(len(idx)) < n_keep)  # earlier kept
    assert not old.equal(mask)


def test_hutchinson_clamp_ties_are_broken_by_magnitude():
    net, batches = _net_with_zero_curvature()
    hp = dict(curvature="hutchinson", num_probes=4, seed=0)
    raw = _flat(score(net, "obd", batches, F.cross_entropy, tie_break="position", **hp))
    tied = _flat(score(net, "obd", batches, F.cross_entropy, **hp))
    zero = raw == 0
    assert zero.any()
    assert torch.equal(tied[~zero], raw[~zero])  # positive scores and their order unchanged
    assert float(tied[zero].max()) < float(raw[~zero].min())  # zeros stay below them
    theta = _flat({n: q.detach() for n, q in prunable_parameters(net).items()}).abs()
    order = torch.argsort(theta[zero])
    assert (tied[zero][order].diff() >= 0).all()  # ordered like |θ|


def test_break_zero_ties_edge_cases():
    theta = {"a": torch.tensor([0.0, -2.0, 1.0]), "b": torch.tensor([4.0, 0.5])}
    scores = {"a": torch.zeros(3), "b": torch.zeros(2)}  # nothing positive: pure magnitude
    new, n = break_zero_ties(scores, theta)
    assert n == 4 and new["a"][0] == 0  # θ = 0 (already pruned) stays 0
    assert torch.allclose(_flat(new), 0.5 * _flat(theta).abs() / 4.0)
    same, n = break_zero_ties({"a": torch.ones(3)}, {"a": torch.ones(3)})
    assert n == 0 and torch.equal(same["a"], torch.ones(3))
    # locality > 0 already separates zero-curvature weights: then nothing is changed
    net, batches = _net_with_zero_curvature()
    loc = dict(curvature="exact", locality=1e-3)
    a = score(net, "obd", batches, F.cross_entropy, **loc)
    b = score(net, "obd", batches, F.cross_entropy, tie_break="position", **loc)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(PrunelabError, match="tie_break"):
        score(net, "obd", batches, F.cross_entropy, tie_break="random")


def test_report_states_the_obd_tie_rule():
    from types import SimpleNamespace

    from prunelab.experiments.report.page import _settings

    config = {"criteria": [{"name": "obd", "hparams": {"curvature": "hutchinson"}}]}
    lines = _settings(SimpleNamespace(config=config, runs=[]))
    note = next(line for line in lines if line.startswith("obd ties at zero"))
    assert "tie_break magnitude" in note and "|θ|" in note
    config["criteria"][0]["hparams"]["tie_break"] = "position"
    assert any(
        "tie_break position" in line for line in _settings(SimpleNamespace(config=config, runs=[]))
    )
    assert not any(
        "ties at zero" in line for line in _settings(SimpleNamespace(config={}, runs=[]))
    )
