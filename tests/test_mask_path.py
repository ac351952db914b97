"""The one-sort pruning path against ``Mask.from_scores`` at every sparsity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunelab.errors import PrunelabError
from prunelab.mask_path import MaskPath
from prunelab.masks import Mask


def _same(a: Mask, b: Mask) -> bool:
    return list(a.masks) == list(b.masks) and all(
        torch.equal(a.masks[n], b.masks[n]) for n in a.masks
    )


def test_path_equals_from_scores_with_ties_and_mixed_dtypes():
    g = torch.Generator().manual_seed(0)
    scores = {  # integer-valued: many ties, broken by position across layers
        "w1": torch.randint(0, 6, (7, 5), generator=g).float(),
        "b1": torch.randint(0, 6, (7,), generator=g).double(),
        "w2": torch.randint(0, 6, (3, 7), generator=g).half(),
    }
    path = MaskPath(scores)
    grid = [round(float(p), 6) for p in np.arange(0, 0.96, 0.0125)]
    for p in grid:
        assert _same(path.at(p), Mask.from_scores(scores, p)), p


def test_path_hands_the_min_per_layer_repair_to_from_scores():
    # the small layer scores lowest: global top-k empties it at high sparsity
    scores = {"big": torch.arange(100.0) + 10, "small": torch.tensor([0.5, 0.2, 0.1])}
    for minimum in (0, 1, 2):
        path = MaskPath(scores, min_per_layer=minimum)
        for p in (0.0, 0.5, 0.9, 0.97, 0.98):
            try:
                ref = Mask.from_scores(scores, p, min_per_layer=minimum)
            except PrunelabError as err:  # too few kept for the minimum: the same error
                with pytest.raises(PrunelabError, match="min_per_layer") as got:
                    path.at(p)
                assert str(got.value) == str(err)
                continue
            assert _same(path.at(p), ref), (minimum, p)
        assert int(path.at(0.9).masks["small"].sum()) == minimum  # the repair did happen
    with pytest.raises(PrunelabError, match="min_per_layer"):
        MaskPath(scores, min_per_layer=2).at(0.97)  # keeps 3 < 2 layers x 2
    with pytest.raises(PrunelabError, match="sparsity"):
        MaskPath(scores).at(1.0)


def test_path_rejects_nan_and_empty_scores():
    with pytest.raises(PrunelabError, match="NaN"):
        MaskPath({"w": torch.tensor([1.0, float("nan")])})
    with pytest.raises(PrunelabError, match="empty"):
        MaskPath({})
