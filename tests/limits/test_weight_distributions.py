"""TV / KS distances of weight-magnitude distributions: hand-computed cases and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunelab.errors import PrunelabError
from prunelab.limits.weight_distributions import (
    compare_runs,
    ks_distance,
    log_bins,
    magnitude_histogram,
    tv_distance,
)


def test_hand_computed_case():
    # bins [1, 2), [2, 4), [4, 8] plus the zero bin
    a = np.array([0.0, 1.0, -2.0, 4.0])  # zero | 1 | 2 | 4   -> ¼ ¼ ¼ ¼
    b = np.array([1.0, -1.0, 3.0, 8.0])  # 1, 1 | 3 | 8       -> 0 ½ ¼ ¼
    edges = np.array([1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(magnitude_histogram(a, edges), [0.25, 0.25, 0.25, 0.25])
    np.testing.assert_array_equal(magnitude_histogram(b, edges), [0.0, 0.5, 0.25, 0.25])
    assert tv_distance(a, b, edges=edges) == 0.25  # ½ (¼ + ¼)
    # CDFs of |θ| at 0, 1, 2, 3, 4, 8: a = ¼ ½ ¾ ¾ 1 1, b = 0 ½ ½ ¾ ¾ 1
    assert ks_distance(a, b) == 0.25
    # unequal sizes: a vs [3, 3]: a has nothing in [2, 4) except 2 -> ½(¼+¼+¾+¼) = ¾
    assert tv_distance(a, np.array([3.0, 3.0]), edges=edges) == pytest.approx(0.75)


def test_identical_runs_give_zero_and_disjoint_runs_one():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(1000) * 0.1
    assert tv_distance(w, w.copy()) == 0.0
    assert tv_distance(w, -w[::-1]) == 0.0  # magnitudes only; order does not matter
    assert ks_distance(w, w) == 0.0
    assert tv_distance(np.full(10, 0.01), np.full(10, 10.0)) == 1.0
    assert ks_distance(np.full(10, 0.01), np.full(10, 10.0)) == 1.0
    res = compare_runs([w, w.copy(), torch.tensor(w)])
    assert res.tv == [0.0, 0.0, 0.0] and res.ks == [0.0, 0.0, 0.0]


def test_ks_is_below_tv_and_bins_are_shared_and_log_spaced():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(500), 1.5 * rng.standard_normal(700)
    e = log_bins([a, b], 40)
    assert e[0] == pytest.approx(np.abs(np.concatenate([a, b])).min())
    assert e[-1] == pytest.approx(np.abs(np.concatenate([a, b])).max())
    np.testing.assert_allclose(np.diff(np.log(e)), np.log(e[-1] / e[0]) / 40)
    # TV ≥ |P_a(S) − P_b(S)| for every union S of bins, e.g. S = [0, e_k): the CDF gap
    # at every edge is a lower bound of the TV (and the KS distance is the sup over all x)
    tv = tv_distance(a, b, edges=e)
    ma, mb = np.sort(np.abs(a)), np.sort(np.abs(b))
    inner = e[:-1]  # [0, e_last) is not a union of bins: the last bin is closed
    fa = np.searchsorted(ma, inner, "left") / ma.size
    gaps = np.abs(fa - np.searchsorted(mb, inner, "left") / mb.size)
    assert gaps.max() <= tv + 1e-12 and gaps.max() <= ks_distance(a, b) + 1e-12
    for h in (magnitude_histogram(a, e), magnitude_histogram(b, e)):
        assert h.sum() == pytest.approx(1.0) and h[0] == 0.0


def test_noise_floor_is_seeded_and_small_for_one_distribution():
    rng = np.random.default_rng(2)
    runs = [rng.standard_normal(50000) * 0.05 for _ in range(3)]
    res = compare_runs(runs, num_bins=50, seed=3)
    again = compare_runs(runs, num_bins=50, seed=3)
    assert res.noise_floor == again.noise_floor and res.pairs == [(0, 1), (0, 2), (1, 2)]
    s = res.summary()
    # same distribution: TV between runs is sampling noise, of the order of the floor
    assert s["tv"][0] < 0.05 and s["noise_floor"][0] < 0.05
    shifted = compare_runs([runs[0], 3.0 * runs[1]], num_bins=50)
    assert shifted.tv[0] > 10 * s["tv"][0]


def test_bad_input_is_refused():
    with pytest.raises(PrunelabError, match="num_bins"):
        log_bins([np.ones(3)], 0)
    with pytest.raises(PrunelabError, match="every weight is zero"):
        tv_distance(np.zeros(3), np.zeros(4))
    with pytest.raises(PrunelabError, match="outside the edges"):
        magnitude_histogram(np.array([5.0]), np.array([1.0, 2.0]))
    with pytest.raises(PrunelabError, match="at least 2"):
        compare_runs([np.ones(3)])
    with pytest.raises(PrunelabError, match="finite"):
        ks_distance(np.array([np.nan]), np.ones(2))
