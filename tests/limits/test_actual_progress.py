"""``find_actual_limit(progress=True)``: a bar of evaluated sparsities on stderr, same result."""

from __future__ import annotations

import torch
from test_actual import GRID, _blobs, _trained

from prunelab.limits import find_actual_limit


def test_progress_bar_shows_the_points_and_changes_nothing(capsys):
    data = _blobs()
    net = _trained(data)
    quiet = find_actual_limit(net, data, grid=GRID, bisect_steps=3)
    assert capsys.readouterr().err == ""  # off by default: the library draws nothing
    loud = find_actual_limit(net, data, grid=GRID, bisect_steps=3, progress=True)
    err = capsys.readouterr().err
    assert "sparsities" in err and "point" in err
    assert quiet.to_dict() == loud.to_dict()
    assert torch.equal(torch.tensor(quiet.curve), torch.tensor(loud.curve))
