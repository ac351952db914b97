"""Pure math of the spectral limit: R(p), ρ(R), the crossing and its bounds (no model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.limits import (
    GW_LOWER_FACTOR,
    crossing,
    jensen_crossing,
    jensen_rho,
    limit_from_measures,
    mean_abs_eigenvalue,
    removed_norm_curve,
    rho,
    solve_crossing,
)
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores import score


def _random_measure(rng, runs=3, m=7, spread=3.0, negative=True):
    nodes = 10 ** rng.uniform(-spread, 1.0, size=(runs, m))
    if negative:
        nodes[:, 0] *= -1  # an indefinite Hessian: |λ| must be used
    w = rng.uniform(0.1, 1.0, size=(runs, m))
    return nodes, w / w.sum(axis=1, keepdims=True)


def _rho_reference(R, nodes, weights, eps, z=0.0):
    """Obviously-right loop version of ρ(R)."""
    total = 0.0
    for run_nodes, run_weights in zip(nodes, weights, strict=True):
        s = 0.0
        for lam, tau in zip(run_nodes, run_weights, strict=True):
            r2 = 2 * eps / abs(lam) if lam != 0 else math.inf
            s += tau * (1.0 if math.isinf(r2) else r2 / (R**2 + r2))
        total += s
    return z + (1 - z) * total / len(nodes)


def test_removed_norm_equals_norm_of_weights_actually_pruned(float64):
    net = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    params = prunable_parameters(net)
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    d = flat.numel()
    curve = removed_norm_curve(flat)
    assert curve.size == d
    for k in [0, 1, 2, 7, 13, d // 2, d - 3, d - 1]:
        mask = Mask.from_scores(score(net, "magnitude"), k / d, min_per_layer=0)
        removed = torch.cat([p.detach()[~mask.masks[n]] for n, p in params.items()])
        assert removed.numel() == k
        want = float(torch.linalg.vector_norm(removed))
        assert curve.at_count(k) == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert float(curve(k / d)) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_removed_norm_is_linear_in_r_squared_between_counts():
    w = np.array([0.3, -2.0, 1.0, 0.1])
    curve = removed_norm_curve(w)
    # counts: 0 -> 0, 1 -> 0.01, 2 -> 0.10, 3 -> 1.10, 4 -> 5.10
    assert float(curve.squared(0.125)) == pytest.approx(0.005)
    assert float(curve.squared(0.625)) == pytest.approx(0.10 + 0.5 * 1.0)
    p = np.linspace(0, 1, 1001)
    assert np.all(np.diff(curve(p)) >= 0)
    assert float(curve(1.0)) == pytest.approx(np.linalg.norm(w))


def test_rho_matches_loop_reference_and_zero_mass():
    rng = np.random.default_rng(1)
    nodes, w = _random_measure(rng)
    for R in [0.0, 0.05, 0.7, 3.0, 40.0]:
        for z in [0.0, 0.3]:
            got = float(rho(R, nodes, w, eps=0.02, zero_mass=z))
            assert got == pytest.approx(_rho_reference(R, nodes, w, 0.02, z), rel=1e-13)
    Rs = np.array([0.1, 1.0, 10.0])
    vec = rho(Rs, nodes, w, eps=0.02)
    assert vec.shape == (3,)
    assert np.all(np.diff(vec) < 0)
    assert float(rho(0.0, nodes, w, eps=0.02)) == pytest.approx(1.0)


def test_rho_rejects_bad_input():
    nodes, w = np.array([1.0, 2.0]), np.array([0.5, 0.5])
    with pytest.raises(PrunelabError, match="eps"):
        rho(1.0, nodes, w, eps=0.0)
    with pytest.raises(PrunelabError, match="eps"):
        rho(1.0, nodes, w, eps=-1.0)
    with pytest.raises(PrunelabError, match="sum to 1"):
        rho(1.0, nodes, np.array([0.5, 0.6]), eps=1.0)
    with pytest.raises(PrunelabError, match="shape"):
        rho(1.0, nodes, np.array([1.0]), eps=1.0)
    with pytest.raises(PrunelabError, match="zero_mass"):
        rho(1.0, nodes, w, eps=1.0, zero_mass=1.5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("z", [0.0, 0.25])
def test_crossing_agrees_with_brute_force_grid(seed, z):
    rng = np.random.default_rng(seed)
    weights = rng.standard_t(df=3, size=500) * 0.1
    curve = removed_norm_curve(weights)
    nodes, w = _random_measure(rng, runs=2, m=9)
    eps = float(10 ** rng.uniform(-3, -1))
    p_hat = crossing(curve, nodes, w, eps, z)
    n = 200_000
    grid = np.arange(n + 1) / n
    diff = rho(curve(grid), nodes, w, eps, z) - grid
    i = int(np.nonzero(diff < 0)[0][0])  # first grid point past the root
    assert grid[i - 1] <= p_hat <= grid[i]
    assert float(rho(curve(p_hat), nodes, w, eps, z)) == pytest.approx(p_hat, abs=1e-10)


def test_bounds_are_ordered_and_jensen_holds():
    rng = np.random.default_rng(5)
    weights = rng.laplace(size=800) * 0.05
    curve = removed_norm_curve(weights)
    nodes, w = _random_measure(rng, runs=3, m=12)
    m_abs = mean_abs_eigenvalue(nodes, w)
    assert m_abs == pytest.approx(float((np.abs(nodes) * w).sum(axis=1).mean()))
    Rs = np.linspace(0, 5, 200)
    for z in (0.0, 0.4):
        assert np.all(jensen_rho(Rs, m_abs, 0.01, z) <= rho(Rs, nodes, w, 0.01, z) + 1e-15)
        p_hat = crossing(curve, nodes, w, 0.01, z)
        low = crossing(curve, nodes, w, 0.01, z, scale=GW_LOWER_FACTOR)
        tr = jensen_crossing(curve, m_abs, 0.01, z)
        assert low < p_hat and tr <= p_hat
        assert low > 0 and tr > 0


def test_solve_crossing_edges():
    assert solve_crossing(lambda p: 1.0) == 1.0  # everything prunable
    assert solve_crossing(lambda p: 0.0) == 0.0
    assert solve_crossing(lambda p: 0.5 * (1 - p)) == pytest.approx(1 / 3, abs=1e-12)
    curve = removed_norm_curve(np.ones(10))
    assert crossing(curve, np.zeros((1, 3)), np.full((1, 3), 1 / 3), eps=1.0) == 1.0


def test_limit_from_measures_exact_spectrum_and_json():
    rng = np.random.default_rng(7)
    d = 300
    theta = rng.normal(size=d) * 0.1
    lam = 10 ** rng.uniform(-2, 1, size=d)
    est = limit_from_measures(theta, [(lam, np.full(d, 1 / d))], eps=0.05)
    direct = crossing(removed_norm_curve(theta), lam, np.full(d, 1 / d), 0.05)
    assert est.p_hat == pytest.approx(direct, abs=1e-12)
    assert est.lower < est.p_hat <= est.upper <= est.p_hat + 2 / d
    assert est.trace_lower <= est.p_hat
    assert est.p_hat_without_zero_mass == est.p_hat
    assert math.isnan(est.spread) and est.p_hat_runs == [pytest.approx(est.p_hat)]
    assert len(est.curve["p"]) == len(est.curve["rho"]) == len(est.curve["R"]) == 1001
    d_json = json.loads(json.dumps(est.to_dict()))
    assert d_json["spread"] is None and d_json["p_hat"] == pytest.approx(est.p_hat)


def test_limit_from_measures_zero_mass_shown_separately():
    rng = np.random.default_rng(8)
    theta = rng.normal(size=200)
    lam = 10 ** rng.uniform(-1, 1, size=50)
    meas = [(lam, np.full(50, 1 / 50))]
    with_z = limit_from_measures(theta, meas, eps=0.5, zero_mass=0.3)
    without = limit_from_measures(theta, meas, eps=0.5, zero_mass=0.0)
    assert with_z.p_hat_without_zero_mass == pytest.approx(without.p_hat)
    assert with_z.p_hat > without.p_hat
    # The point mass equals an explicit block of zero eigenvalues in the measure.
    lam_z = np.concatenate([lam, np.zeros(50)])
    w_z = np.concatenate([np.full(50, 0.7 / 50), np.full(50, 0.3 / 50)])
    explicit = limit_from_measures(theta, [(lam_z, w_z)], eps=0.5)
    assert with_z.p_hat == pytest.approx(explicit.p_hat, abs=1e-10)


def test_limit_from_measures_already_pruned_weights():
    rng = np.random.default_rng(9)
    live = rng.normal(size=150)
    theta = np.concatenate([live, np.zeros(50)])[rng.permutation(200)]
    lam = 10 ** rng.uniform(-1, 1, size=40)
    meas = [(lam, np.full(40, 1 / 40))]
    est = limit_from_measures(theta, meas, eps=0.3)
    assert est.initial_sparsity == pytest.approx(0.25)
    q = crossing(removed_norm_curve(live), lam, np.full(40, 1 / 40), 0.3)
    assert est.p_hat == pytest.approx(0.25 + 0.75 * q, abs=1e-10)
    # Same number from the whole vector: zeros removed first (R = 0), ρ_total = p0 + (1-p0)ρ.
    whole = removed_norm_curve(theta)
    p = solve_crossing(lambda p: 0.25 + 0.75 * float(rho(whole(p), lam, np.full(40, 1 / 40), 0.3)))
    assert est.p_hat == pytest.approx(p, abs=1e-9)
    assert est.curve["rho"][0] == pytest.approx(1.0)


def test_spread_over_seed_measures():
    rng = np.random.default_rng(10)
    theta = rng.normal(size=100)
    meas = [_random_measure(rng, runs=2, m=5, negative=False) for _ in range(3)]
    est = limit_from_measures(theta, meas, eps=1.0)
    per = [crossing(removed_norm_curve(theta), n, w, 1.0) for n, w in meas]
    assert est.p_hat_runs == pytest.approx(per, abs=1e-10)
    assert est.spread == pytest.approx(float(np.std(per, ddof=1)), abs=1e-10)
    pooled = crossing(
        removed_norm_curve(theta),
        np.concatenate([n for n, _ in meas]),
        np.concatenate([w for _, w in meas]),
        1.0,
    )
    assert est.p_hat == pytest.approx(pooled, abs=1e-12)
    with pytest.raises(PrunelabError, match="already zero"):
        limit_from_measures(np.zeros(5), meas, eps=1.0)
