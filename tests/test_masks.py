"""Mask invariants: exact counts, ordering, ties, monotone shrinking, torch interop.

The fast selection (`Mask.from_scores`) is compared with slow pure-Python references
that sort `(score, position)` tuples; hypothesis draws tiny score dicts with many ties.
"""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score

FAST = settings(max_examples=30, deadline=None)


def tiny_net() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()


@st.composite
def score_dicts(draw, max_layers=3, max_size=6, ties=True):
    """1-3 layers of 1-6 scores; small integer values (many ties) or floats."""
    n_layers = draw(st.integers(1, max_layers))
    values = st.integers(0, 3).map(float) if ties else st.floats(-10, 10, allow_nan=False)
    out = {}
    for i in range(n_layers):
        size = draw(st.integers(1, max_size))
        offset = draw(st.sampled_from([0.0, -20.0]))  # whole layers scoring low → collapse
        vals = draw(st.lists(values, min_size=size, max_size=size))
        out[f"l{i}.weight"] = torch.tensor(vals, dtype=torch.float64) + offset
    return out


def flat_items(scores):
    """[(layer, index-in-layer, global position, score)] in concatenation order."""
    items, pos = [], 0
    for name, s in scores.items():
        for j, v in enumerate(s.reshape(-1).tolist()):
            items.append((name, j, pos, v))
            pos += 1
    return items


def reference_global(scores, p, previous=None, min_per_layer=0):
    """Obviously-right global selection: sort by (unavailable, -score, position)."""
    items = flat_items(scores)

    def avail(it):
        return previous is None or bool(previous.masks[it[0]].reshape(-1)[it[1]])

    ranked = sorted(items, key=lambda it: (not avail(it), -it[3], it[2]))
    k = round((1 - p) * len(items))
    keep = {(it[0], it[1]) for it in ranked[:k]}
    mins = {
        n: min(min_per_layer, sum(1 for it in items if it[0] == n and avail(it))) for n in scores
    }
    count = {n: sum(1 for (m, _) in keep if m == n) for n in scores}
    short = [n for n in scores if count[n] < mins[n]]
    extra = 0
    for n in short:
        layer_ranked = [it for it in ranked if it[0] == n]
        for it in layer_ranked[: mins[n]]:
            keep.add((n, it[1]))
        extra += mins[n] - count[n]
    for it in reversed(ranked[:k]):  # lowest kept first
        if extra == 0:
            break
        n = it[0]
        if n not in short and count[n] > mins[n]:
            keep.discard((n, it[1]))
            count[n] -= 1
            extra -= 1
    return {
        n: torch.tensor([(n, j) in keep for j in range(s.numel())]).reshape(s.shape)
        for n, s in scores.items()
    }


def kept_and_pruned(mask, scores, previous=None):
    kept, pruned = [], []
    for n, s in scores.items():
        m = mask.masks[n].reshape(-1)
        a = previous.masks[n].reshape(-1) if previous else torch.ones_like(m)
        kept += s.reshape(-1)[m].tolist()
        pruned += s.reshape(-1)[~m & a].tolist()
    return kept, pruned


# --------------------------------------------------------------------- selection
@FAST
@given(scores=st.one_of(score_dicts(), score_dicts(ties=False)), p=st.floats(0.0, 0.95))
def test_global_matches_reference_and_orders(scores, p):
    mask = Mask.from_scores(scores, p, min_per_layer=0)
    expected = reference_global(scores, p)
    for n in scores:
        assert torch.equal(mask.masks[n], expected[n]), n
    D = sum(s.numel() for s in scores.values())
    assert mask.nnz == round((1 - p) * D)
    kept, pruned = kept_and_pruned(mask, scores)
    if kept and pruned:
        assert min(kept) >= max(pruned)


@FAST
@given(scores=score_dicts(), p=st.floats(0.0, 0.95), mpl=st.integers(0, 3))
def test_layer_scope_counts_and_order(scores, p, mpl):
    mask = Mask.from_scores(scores, p, scope="layer", min_per_layer=mpl)
    for n, s in scores.items():
        expected = max(round((1 - p) * s.numel()), min(mpl, s.numel()))
        assert int(mask.masks[n].sum()) == expected
        kept = s[mask.masks[n]].tolist()
        pruned = s[~mask.masks[n]].tolist()
        if kept and pruned:
            assert min(kept) >= max(pruned)


@FAST
@given(scores=score_dicts(), p=st.floats(0.0, 0.95), mpl=st.integers(1, 2))
def test_min_per_layer_exact_total_and_reference(scores, p, mpl):
    D = sum(s.numel() for s in scores.values())
    k = round((1 - p) * D)
    need = sum(min(mpl, s.numel()) for s in scores.values())
    if need > k:
        with pytest.raises(PrunelabError, match="min_per_layer"):
            Mask.from_scores(scores, p, min_per_layer=mpl)
        return
    mask = Mask.from_scores(scores, p, min_per_layer=mpl)
    assert mask.nnz == k
    for n, s in scores.items():
        assert int(mask.masks[n].sum()) >= min(mpl, s.numel())
    assert mask.collapsed == []
    expected = reference_global(scores, p, min_per_layer=mpl)
    for n in scores:
        assert torch.equal(mask.masks[n], expected[n]), n


@FAST
@given(
    scores=score_dicts(),
    p1=st.floats(0.0, 0.6),
    dp=st.floats(0.0, 0.35),
    scope=st.sampled_from(["global", "layer"]),
)
def test_iterative_masks_only_shrink(scores, p1, dp, scope):
    first = Mask.from_scores(scores, p1, scope=scope, min_per_layer=0)
    # Re-scored in the opposite order; pruned weights get huge scores to tempt a revival.
    second_scores = {
        n: torch.where(first.masks[n], -s, torch.full_like(s, 1e300)) for n, s in scores.items()
    }
    p2 = p1 + dp
    try:
        second = Mask.from_scores(second_scores, p2, scope=scope, previous=first, min_per_layer=0)
    except PrunelabError as exc:  # only legitimate when rounding asks for more weights
        assert "masks can only shrink" in str(exc)
        return
    for n in scores:
        assert not (second.masks[n] & ~first.masks[n]).any(), "a pruned weight revived"
    assert second.nnz <= first.nnz
    if scope == "global":
        assert second.nnz == round((1 - p2) * first.total)
        expected = reference_global(second_scores, p2, previous=first)
        for n in scores:
            assert torch.equal(second.masks[n], expected[n])
        kept, pruned = kept_and_pruned(second, second_scores, previous=first)
        if kept and pruned:
            assert min(kept) >= max(pruned)


def test_previous_pruned_lose_even_to_minus_inf():
    scores = {"w": torch.tensor([math.inf, -math.inf, 1.0, 2.0])}
    prev = Mask({"w": torch.tensor([False, True, True, True])})
    m = Mask.from_scores(scores, 0.25, previous=prev, min_per_layer=0)
    assert m.masks["w"].tolist() == [False, True, True, True]
    with pytest.raises(PrunelabError, match="masks can only shrink"):
        Mask.from_scores(scores, 0.0, previous=prev)


def test_all_equal_scores_keep_earliest_positions():
    scores = {"a": torch.zeros(2, 2), "b": torch.zeros(3)}
    m = Mask.from_scores(scores, 3 / 7, min_per_layer=0)
    assert m.masks["a"].tolist() == [[True, True], [True, True]]
    assert m.masks["b"].tolist() == [False, False, False]
    assert m.collapsed == ["b"]
    again = Mask.from_scores({k: v.clone() for k, v in scores.items()}, 3 / 7, min_per_layer=0)
    assert again.equal(m)
    # With the default min_per_layer=1, "b" gets its first weight; "a" gives up its last one.
    m1 = Mask.from_scores(scores, 3 / 7)
    assert m1.masks["a"].tolist() == [[True, True], [True, False]]
    assert m1.masks["b"].tolist() == [True, False, False]


def test_collapse_reported_and_logged(caplog):
    scores = {"a": torch.arange(10.0), "b": torch.full((4,), -1.0)}
    with caplog.at_level(logging.WARNING, logger="prunelab.masks"):
        m = Mask.from_scores(scores, 0.5, min_per_layer=0)
    assert m.collapsed == ["b"]
    assert "b" in caplog.text and "collapse" in caplog.text
    kept = Mask.from_scores(scores, 0.5)
    assert kept.collapsed == [] and kept.nnz == 7 and int(kept.masks["b"].sum()) == 1


# --------------------------------------------------------------------- torch interop
@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
def test_equals_torch_global_unstructured(p):
    net = tiny_net()
    D = sum(w.numel() for w in prunable_parameters(net).values())  # 12 + 6 = 18
    # torch prunes round(p·D) weights and we keep round((1-p)·D): they agree only when
    # the two roundings add up to D (true for 0.3, 0.5, 0.7 with D = 18).
    assert round(p * D) + round((1 - p) * D) == D
    ours = Mask.from_scores(score(net, "magnitude"), p, min_per_layer=0)
    ref = copy.deepcopy(net)
    prune.global_unstructured(
        [(ref[0], "weight"), (ref[2], "weight")],
        pruning_method=prune.L1Unstructured,
        amount=p,
    )
    theirs = Mask.from_torch_prune(ref)
    assert ours.equal(theirs)


def test_torch_prune_round_trip_and_remove():
    net = tiny_net()
    mask = Mask.from_scores(score(net, "random", seed=3), 0.5)
    net.eval()
    mask.to_torch_prune(net)
    assert hasattr(net[0], "weight_orig") and hasattr(net[0], "weight_mask")
    back = Mask.from_torch_prune(net, remove=True)
    assert back.equal(mask)
    assert not hasattr(net[0], "weight_orig") and "0.weight" in dict(net.named_parameters())
    assert Mask.from_model_zeros(net).equal(mask)


def test_apply_is_hook_free_deepcopy_and_state_dict():
    net = tiny_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    mask = Mask.from_scores(score(net, "magnitude"), 0.6)
    assert mask.apply(net) is net
    for n, w in prunable_parameters(net).items():
        assert (w[~mask.masks[n]] == 0.0).all()
        assert torch.equal(w[mask.masks[n]], before[n][mask.masks[n]])
    assert torch.equal(net[0].bias, before["0.bias"])  # biases are not prunable by default
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in net.modules())
    clone = copy.deepcopy(net)
    fresh = tiny_net()
    fresh.load_state_dict(net.state_dict())
    assert Mask.from_model_zeros(clone).equal(mask)
    assert Mask.from_model_zeros(fresh).equal(mask)


def test_bias_spec_and_classifier_exclusion():
    net = tiny_net()
    spec = PrunableSpec(include_classifier=False, include_bias=True)
    m = Mask.dense(net, spec)
    assert list(m.masks) == ["0.weight", "0.bias"] and m.spec == spec
    m2 = Mask.from_scores(score(net, "magnitude", spec=spec), 0.5, previous=m)
    assert m2.spec == spec and m2.total == 15


# --------------------------------------------------------------------- statistics
def test_statistics_and_tables():
    scores = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.arange(4.0)}
    m = Mask.from_scores(scores, 0.6, min_per_layer=0)  # keep round(0.4·10) = 4
    assert (m.total, m.nnz) == (10, 4)
    assert m.density == pytest.approx(0.4) and m.sparsity == pytest.approx(0.6)
    assert m.compression_ratio == pytest.approx(2.5)
    rows = m.per_layer()
    assert rows[0] == {"name": "a", "shape": (2, 3), "total": 6, "kept": 3, "density": 0.5}
    assert rows[1]["kept"] == 1 and rows[1]["density"] == 0.25
    table = m.summary_table()
    assert table[0] == ["layer", "shape", "kept", "total", "density"]
    assert table[1] == ["a", "2x3", "3", "6", "0.5000"]
    assert table[-1] == ["all", "", "4", "10", "0.4000"]
    d = Mask({"a": torch.ones(2, 3, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)})
    assert d.sparsity == 0.0 and d.compression_ratio == 1.0
    empty = Mask({"a": torch.zeros(3, dtype=torch.bool)})
    assert empty.compression_ratio == math.inf and empty.collapsed == ["a"]


def test_intersection_equal_and_state_dict():
    a = Mask({"x": torch.tensor([True, True, False]), "y": torch.tensor([True, False])})
    b = Mask({"x": torch.tensor([True, False, True]), "y": torch.tensor([True, True])})
    both = a & b
    assert both.masks["x"].tolist() == [True, False, False]
    assert both.masks["y"].tolist() == [True, False]
    assert a.equal(a) and not a.equal(b)
    assert not a.equal(Mask({"x": torch.tensor([True, True, False])}))
    with pytest.raises(PrunelabError, match="different layers"):
        _ = a & Mask({"x": torch.tensor([True, True, False])})
    sd = a.state_dict()
    assert all(t.dtype == torch.bool for t in sd.values())
    assert Mask.from_state_dict(sd).equal(a)
    assert Mask.from_state_dict({k: v.to(torch.uint8) for k, v in sd.items()}).equal(a)
    with pytest.raises(PrunelabError, match="other than 0 and 1"):
        Mask.from_state_dict({"x": torch.tensor([0.0, 2.0, 1.0])})


def test_from_state_dict_with_model_checks_and_orders():
    net = tiny_net()
    m = Mask.from_scores(score(net, "magnitude"), 0.5)
    shuffled = dict(reversed(list(m.state_dict().items())))  # e.g. a sorted file format
    back = Mask.from_state_dict(shuffled, model=net)
    assert list(back.masks) == ["0.weight", "2.weight"] and back.equal(m)
    with pytest.raises(PrunelabError, match="do not match"):
        Mask.from_state_dict({"0.weight": shuffled["0.weight"]}, model=net)
    bad = dict(shuffled, **{"2.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(PrunelabError, match="shape"):
        Mask.from_state_dict(bad, model=net)


def test_score_helpers():
    net = tiny_net()
    mag = score(net, "magnitude")
    assert torch.equal(mag["0.weight"], net[0].weight.detach().abs())
    r1, r2, r3 = (
        score(net, "random", seed=5),
        score(net, "random", seed=5),
        score(net, "random", seed=6),
    )
    assert all(torch.equal(r1[n], r2[n]) for n in r1)
    assert not torch.equal(r1["0.weight"], r3["0.weight"])
    assert all(((v >= 0) & (v < 1)).all() and v.shape == mag[n].shape for n, v in r1.items())


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("p", [1.0, -0.1, float("nan"), "half"])
def test_bad_sparsity(p):
    with pytest.raises(PrunelabError, match="sparsity"):
        Mask.from_scores({"w": torch.ones(4)}, p)


def test_bad_scope_min_and_nan():
    with pytest.raises(PrunelabError, match="scope 'local'; valid choices: global, layer"):
        Mask.from_scores({"w": torch.ones(4)}, 0.5, scope="local")
    with pytest.raises(PrunelabError, match="min_per_layer"):
        Mask.from_scores({"w": torch.ones(4)}, 0.5, min_per_layer=-1)
    with pytest.raises(PrunelabError, match="'conv.weight' contain NaN"):
        Mask.from_scores(
            {"fc.weight": torch.ones(2), "conv.weight": torch.tensor([1, math.nan])}, 0.5
        )
    with pytest.raises(PrunelabError, match="do not match"):
        Mask.from_scores({"w": torch.ones(4)}, 0.5, previous=Mask({"v": torch.ones(4)}))
    with pytest.raises(PrunelabError, match="shape"):
        Mask.from_scores({"w": torch.ones(4)}, 0.5, previous=Mask({"w": torch.ones(5)}))


def test_apply_to_wrong_model():
    m = Mask.dense(tiny_net())
    other = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(PrunelabError, match="shape"):
        m.apply(other)
    with pytest.raises(PrunelabError, match="do not match"):
        m.apply(nn.Linear(4, 3))


def test_apply_adopts_torch_prune_hooks(caplog):
    """A 95 % mask on a model pruned 80 % by torch hooks leaves exactly the 95 % mask."""
    net = tiny_net()
    prune.global_unstructured(
        [(net[0], "weight"), (net[2], "weight")], pruning_method=prune.L1Unstructured, amount=0.5
    )
    hooks = Mask.from_torch_prune(net)
    random_mask = Mask.from_scores(score(net, "random", seed=0), 0.5, min_per_layer=0)
    with caplog.at_level(logging.WARNING):
        random_mask.apply(net)
    assert "adopted torch.nn.utils.prune" in caplog.text and "0.weight" in caplog.text
    assert all(not m._forward_pre_hooks for m in net.modules())
    assert "0.weight" in dict(net.named_parameters()) and not hasattr(net[0], "weight_orig")
    net(torch.randn(2, 4, dtype=torch.float64))  # a forward must not bring the old weights back
    assert Mask.from_model_zeros(net).equal(random_mask & hooks)  # the hooks' zeros are kept
    copy.deepcopy(net)  # hook-free again

    net = tiny_net()
    prune.global_unstructured(
        [(net[0], "weight"), (net[2], "weight")], pruning_method=prune.L1Unstructured, amount=0.5
    )
    tighter = Mask.from_scores(score(net, "magnitude"), 0.9, min_per_layer=0)
    tighter.apply(net)
    net(torch.randn(2, 4, dtype=torch.float64))
    assert Mask.from_model_zeros(net).equal(tighter)  # today's bug: stayed at the hooks' 50 %


def test_apply_refuses_wrong_model_before_folding_hooks():
    net = tiny_net()
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    wrong = Mask.dense(nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2)))
    with pytest.raises(PrunelabError, match="does not match"):
        wrong.apply(net)
    assert hasattr(net[0], "weight_orig")  # nothing changed
