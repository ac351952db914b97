"""Paper 000: closed-form excess risk of pruning a linear fit, and the pruning comparison."""

from __future__ import annotations

import pytest
import torch

from prunelab.errors import PrunelabError
from prunelab.limits.linear_theory import (
    fit_linear,
    linear_scores,
    monte_carlo_excess,
    population_risk,
    prune_coefficients,
    pruning_excess_risk,
    simulate_linear_pruning,
)

SEEDS = (0, 1, 2, 3)
SPARSITIES = (0.3, 0.6, 0.8)


def test_closed_form_equals_population_risk_difference():
    gen = torch.Generator().manual_seed(0)
    d = 7
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    cov = a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)  # full, not diagonal
    beta_star = torch.randn(d, generator=gen, dtype=torch.float64)
    beta_hat = beta_star + 0.5 * torch.randn(d, generator=gen, dtype=torch.float64)
    removed = torch.tensor([True, False, True, True, False, False, True])
    pruned = torch.where(removed, 0.0, beta_hat)
    want = population_risk(pruned, beta_star, cov) - population_risk(beta_hat, beta_star, cov)
    assert pruning_excess_risk(beta_hat, beta_star, cov, removed) == pytest.approx(want, rel=1e-12)
    # 1-D sign check: removing β̂ = 2 when β* = 1 leaves the risk unchanged.
    one = torch.ones(1, dtype=torch.float64)
    assert pruning_excess_risk(2 * one, one, torch.eye(1), torch.tensor([True])) == 0.0


def test_monte_carlo_matches_closed_form_on_a_full_covariance():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    cov = a @ a.T + torch.eye(5, dtype=torch.float64)
    beta_star = torch.randn(5, generator=gen, dtype=torch.float64)
    beta_hat = beta_star + 0.3 * torch.randn(5, generator=gen, dtype=torch.float64)
    removed = torch.tensor([False, True, False, True, False])
    pruned = torch.where(removed, 0.0, beta_hat)
    closed = pruning_excess_risk(beta_hat, beta_star, cov, removed)
    mean, se = monte_carlo_excess(pruned, beta_hat, beta_star, cov, 1.0, 20_000, seed=3)
    assert abs(mean - closed) < 4 * se
    again = monte_carlo_excess(pruned, beta_hat, beta_star, cov, 1.0, 20_000, seed=3)
    assert again == (mean, se)


def test_fit_linear_least_squares_and_ridge():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(
        fit_linear(x, y), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    )
    lam = 0.3
    ridge = fit_linear(x, y, lam)
    grad = -2 * x.T @ (y - x @ ridge) / 40 + 2 * lam * ridge  # stationarity
    assert grad.abs().max() < 1e-10
    with pytest.raises(PrunelabError, match="ridge"):
        fit_linear(x, y, -1.0)


def test_cov_scaled_beats_magnitude_with_heterogeneous_scales():
    study = simulate_linear_pruning(
        SPARSITIES, SEEDS, methods=("magnitude", "cov_scaled"), n_mc=4000
    )
    by = {(r["method"], r["sparsity"]): r for r in study.summary}
    for p in SPARSITIES:
        assert by[("cov_scaled", p)]["risk_mean"] < by[("magnitude", p)]["risk_mean"]
    # Per seed too, at the two higher sparsities.
    for seed in SEEDS:
        for p in SPARSITIES[1:]:
            rows = {
                r["method"]: r for r in study.per_seed if r["seed"] == seed and r["sparsity"] == p
            }
            assert rows["cov_scaled"]["risk"] < rows["magnitude"]["risk"]


def test_equal_scales_give_identical_masks_and_risk():
    study = simulate_linear_pruning(
        SPARSITIES, SEEDS, scales="equal", methods=("magnitude", "cov_scaled"), n_mc=2000
    )
    mag = [r for r in study.per_seed if r["method"] == "magnitude"]
    cov = [r for r in study.per_seed if r["method"] == "cov_scaled"]
    for a, b in zip(mag, cov, strict=True):
        assert (a["seed"], a["sparsity"]) == (b["seed"], b["sparsity"])
        assert a["risk"] == b["risk"] and a["excess_sim"] == b["excess_sim"]
    # And the masks themselves: Σ = I makes Σ_ii β̂² a monotone function of |β̂|.
    beta = torch.randn(30, dtype=torch.float64)
    cov_eye = torch.eye(30, dtype=torch.float64)
    x = torch.randn(10, 30, dtype=torch.float64)
    for p in SPARSITIES:
        assert torch.equal(
            prune_coefficients(linear_scores("magnitude", beta, cov_eye, x), p),
            prune_coefficients(linear_scores("cov_scaled", beta, cov_eye, x), p),
        )


def test_closed_form_and_simulated_excess_agree_within_sampling_error():
    study = simulate_linear_pruning(SPARSITIES, SEEDS, ridge=0.05, n_mc=8000)
    assert {r["method"] for r in study.per_seed} == {"magnitude", "cov_scaled", "hessian"}
    for r in study.per_seed:
        assert abs(r["excess_closed"] - r["excess_sim"]) < 4 * r["excess_sim_se"], r
    assert all(row["max_abs_z"] < 4 for row in study.summary)
    hess = {r["sparsity"]: r["risk_mean"] for r in study.summary if r["method"] == "hessian"}
    mag = {r["sparsity"]: r["risk_mean"] for r in study.summary if r["method"] == "magnitude"}
    assert all(hess[p] < mag[p] for p in SPARSITIES)  # the empirical Hessian also helps


def test_bad_inputs():
    with pytest.raises(PrunelabError, match="method"):
        simulate_linear_pruning([0.5], [0], methods=("obs",))
    with pytest.raises(PrunelabError, match="sparsity"):
        simulate_linear_pruning([1.5], [0])
    with pytest.raises(PrunelabError, match="seeds"):
        simulate_linear_pruning([0.5], [])
