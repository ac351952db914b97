"""A bar of the scoring steps when asked, and the same numbers with or without it."""

from __future__ import annotations

import torch
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.procedures import PruneSettings, run_procedure


def _case():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    y = (x[:, 0] > 0).long()
    data = DataBundle("tiny", (x[:30], y[:30]), (x[30:], y[30:]), 2, (4,))
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)), data


def test_scoring_steps_draw_a_bar_only_when_asked(capsys):
    settings = PruneSettings(steps=3)
    net, data = _case()
    quiet = run_procedure(net, data, "taylor1", 0.7, settings)[0]
    assert "scoring (taylor1)" not in capsys.readouterr().err
    net, data = _case()
    shown = run_procedure(net, data, "taylor1", 0.7, settings, progress=True)[0]
    assert "scoring (taylor1)" in capsys.readouterr().err
    assert all(torch.equal(quiet.masks[n], shown.masks[n]) for n in quiet.masks)
