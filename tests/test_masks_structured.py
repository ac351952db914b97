"""N:M and per-row masks: exact counts per group / row, order within them, no revival.

Property tests (hypothesis) on tiny score matrices with many ties, against the rules of
:meth:`prunelab.masks.Mask.from_scores`; plus the one-line errors.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures.settings import PruneSettings

FAST = settings(max_examples=40, deadline=None)


@st.composite
def nm_case(draw):
    """1-2 weight matrices whose input size is a multiple of M, integer scores (ties)."""
    m = draw(st.integers(2, 8))
    n = draw(st.integers(1, m - 1))
    scores = {}
    for i in range(draw(st.integers(1, 2))):
        rows, groups = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        values = draw(st.lists(st.integers(0, 3), min_size=rows * groups * m,
                               max_size=rows * groups * m))  # fmt: skip
        scores[f"l{i}.weight"] = torch.tensor(values, dtype=torch.float64).reshape(rows, groups * m)
    return n, m, scores


def groups_of(t: torch.Tensor, m: int) -> torch.Tensor:
    return t.reshape(t.shape[0], -1, m)


@FAST
@given(case=nm_case(), scope=st.sampled_from(["global", "layer", "row"]))
def test_nm_keeps_exactly_n_per_group_and_the_best_of_each(case, scope):
    n, m, scores = case
    mask = Mask.from_scores(scores, 1 - n / m, scope, min_per_layer=0, nm=f"{n}:{m}")
    for name, keep in mask.masks.items():
        g_keep, g_score = groups_of(keep, m), groups_of(scores[name], m)
        assert bool((g_keep.sum(-1) == n).all()), "not exactly N per group"
        kept_min = torch.where(g_keep, g_score, torch.inf).amin(-1)
        pruned_max = torch.where(~g_keep, g_score, -torch.inf).amax(-1)
        assert bool((kept_min >= pruned_max).all()), "a pruned weight outranks a kept one"
        # ties: the earlier position is kept
        pos = torch.arange(m).expand_as(g_score)
        tie = (g_score == kept_min[..., None]) & (g_score == pruned_max[..., None])
        if tie.any():
            first_pruned = torch.where(~g_keep & tie, pos, m).amin(-1)
            last_kept = torch.where(g_keep & tie, pos, -1).amax(-1)
            both = (first_pruned < m) & (last_kept >= 0)
            assert bool((last_kept[both] < first_pruned[both]).all())


@FAST
@given(case=nm_case(), data=st.data())
def test_nm_never_revives_pruned_weights(case, data):
    n, m, scores = case
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 100)))
    draws = {k: torch.rand(v.shape, generator=gen, dtype=torch.float64) for k, v in scores.items()}
    previous = Mask.from_scores(draws, data.draw(st.floats(0.0, 0.6)), "layer", min_per_layer=0)
    total = sum(v.numel() for v in scores.values())
    avail = sum(
        int(torch.minimum(groups_of(previous.masks[k], m).sum(-1), torch.tensor(n)).sum())
        for k in scores
    )
    p = 1 - avail / total  # the densest N:M mask the previous one allows
    mask = Mask.from_scores(scores, p, "global", previous, min_per_layer=0, nm=(n, m))
    for name, keep in mask.masks.items():
        assert not bool((keep & ~previous.masks[name]).any()), "revived a pruned weight"
        assert bool((groups_of(keep, m).sum(-1) <= n).all())
    assert mask.nnz == round((1 - p) * total)


@FAST
@given(case=nm_case(), extra=st.floats(0.0, 0.4))
def test_nm_with_higher_sparsity_prunes_among_the_survivors(case, extra):
    n, m, scores = case
    p = min(0.99, 1 - n / m + extra)
    base = Mask.from_scores(scores, 1 - n / m, "global", min_per_layer=0, nm=(n, m))
    mask = Mask.from_scores(scores, p, "global", min_per_layer=0, nm=(n, m))
    total = sum(v.numel() for v in scores.values())
    assert mask.nnz == round((1 - p) * total)
    for name, keep in mask.masks.items():
        assert not bool((keep & ~base.masks[name]).any())


@FAST
@given(case=nm_case(), p=st.floats(0.0, 0.95))
def test_row_scope_keeps_the_same_count_in_every_row(case, p):
    _, _, scores = case
    mask = Mask.from_scores(scores, p, "row", min_per_layer=0)
    for name, keep in mask.masks.items():
        s = scores[name]
        k = round((1 - p) * s.shape[1])
        assert bool((keep.sum(1) == k).all())
        kept_min = torch.where(keep, s, torch.inf).amin(1)
        pruned_max = torch.where(~keep, s, -torch.inf).amax(1)
        assert bool((kept_min >= pruned_max).all())


def test_row_scope_on_a_conv_weight_flattens_the_input_dims():
    s = torch.arange(2 * 3 * 2 * 2, dtype=torch.float64).reshape(2, 3, 2, 2)
    keep = Mask.from_scores({"c.weight": s}, 0.75, "row").masks["c.weight"]
    assert keep.reshape(2, -1).sum(1).tolist() == [3, 3]
    assert keep.reshape(2, -1)[:, -3:].all()


@pytest.mark.parametrize(
    ("nm", "message"),
    [
        ("4:4", "1 <= N < M"),
        ("5:4", "1 <= N < M"),
        ("0:4", "1 <= N < M"),
        ("2-4", "must look like 2:4"),
        ("2:3", "M=3 does not divide the input dimension 8"),
    ],
)
def test_bad_nm_is_one_line(nm, message):
    with pytest.raises(PrunelabError, match=message) as info:
        Mask.from_scores({"w": torch.rand(2, 8)}, 0.5, nm=nm)
    assert "\n" not in str(info.value)


def test_nm_needs_enough_sparsity_and_a_matrix():
    with pytest.raises(PrunelabError, match="sparsity must be >= 0.5"):
        Mask.from_scores({"w": torch.rand(2, 8)}, 0.3, nm="2:4")
    with pytest.raises(PrunelabError, match="1-D"):
        Mask.from_scores({"w": torch.rand(2, 8), "b": torch.rand(2)}, 0.5, nm="2:4")


def test_settings_check_nm_and_keep_old_identities():
    with pytest.raises(PrunelabError, match="1 <= N < M"):
        PruneSettings(nm="4:2").validate()
    with pytest.raises(PrunelabError, match="nm: not valid for kind 'imp'"):
        PruneSettings(kind="imp", rounds=2, nm="2:4").validate()
    assert "nm" not in PruneSettings().to_dict()
    assert PruneSettings(nm="2:4").to_dict()["nm"] == "2:4"
    assert PruneSettings(nm="2:4").label == "one-shot-2:4"


GPU_2_4 = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


@pytest.mark.skipif(
    not GPU_2_4,
    reason="2:4 semi-structured kernels (CUTLASS / cuSPARSELt) need an NVIDIA GPU of compute "
    "capability >= 8.0; on CPU torch.sparse.to_sparse_semi_structured has no kernel",
)
def test_a_2_4_mask_converts_to_semi_structured_sparsity_on_a_gpu():
    from torch.sparse import to_sparse_semi_structured

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(128, 256, generator=gen)
    mask = Mask.from_scores({"w": w.abs()}, 0.5, nm="2:4")
    pruned = (w * mask.masks["w"]).half().cuda()
    sparse = to_sparse_semi_structured(pruned)
    x = torch.randn(256, 64, generator=gen).half().cuda()
    torch.testing.assert_close(sparse @ x, pruned @ x, rtol=1e-2, atol=1e-2)
