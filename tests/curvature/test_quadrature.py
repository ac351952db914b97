"""Gauss and averaged Gauss/anti-Gauss rules from Lanczos coefficients (pure math)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from prunelab.curvature import (
    anti_gauss_rule,
    chain_rule,
    gauss_rule,
    measure_from_lanczos,
)
from prunelab.errors import PrunelabError


def _lanczos(a, v, k):
    """Plain float64 Lanczos with full re-orthogonalisation (reference)."""
    q = [v / np.linalg.norm(v)]
    alphas, betas = [], []
    for j in range(k):
        w = a @ q[-1]
        alphas.append(q[-1] @ w)
        for _ in range(2):
            w = w - np.stack(q).T @ (np.stack(q) @ w)
        betas.append(np.linalg.norm(w))
        if j + 1 < k:
            q.append(w / betas[-1])
    return np.array(alphas), np.array(betas)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(-0.5, 0.5, 150), rng.uniform(1, 4, 50)])
    qmat, _ = np.linalg.qr(rng.normal(size=(200, 200)))
    a = qmat @ np.diag(lam) @ qmat.T
    v = rng.choice([-1.0, 1.0], size=200)
    u = v / np.linalg.norm(v)
    return a, u, lam, (qmat.T @ u) ** 2  # the exact measure seen from u


def _moment(nodes, weights, j):
    return float(np.sum(weights * nodes**j))


@pytest.mark.parametrize("k", [3, 6, 10])
def test_polynomial_exactness_and_anti_gauss_error(problem, k):
    a, u, lam, tau = problem
    alphas, betas = _lanczos(a, u, k)
    g_nodes, g_w = gauss_rule(alphas, betas, k)
    g1_nodes, g1_w = gauss_rule(alphas, betas, k - 1)
    a_nodes, a_w = anti_gauss_rule(alphas, betas, k)
    av_nodes, av_w = chain_rule(alphas, betas, k, k, "averaged")
    for w in (g_w, a_w, av_w):
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
    for j in range(2 * k):  # degree <= 2k - 1
        exact = _moment(lam, tau, j)
        assert _moment(g_nodes, g_w, j) == pytest.approx(exact, rel=1e-8, abs=1e-10)
        assert _moment(av_nodes, av_w, j) == pytest.approx(exact, rel=1e-8, abs=1e-10)
        err_g = exact - _moment(g1_nodes, g1_w, j)
        err_a = exact - _moment(a_nodes, a_w, j)
        # round-off of a degree-j moment is ~1e-13 of sum τ|λ|^j
        assert err_a == pytest.approx(-err_g, abs=1e-10 * _moment(np.abs(lam), tau, j))
    # the (k-1)-point rule is not exact at degree 2k-2: the identity above is not vacuous
    j = 2 * k - 2
    assert abs(_moment(g1_nodes, g1_w, j) - _moment(lam, tau, j)) > 1e-9 * _moment(
        np.abs(lam), tau, j
    )


def test_breakdown_complete_space_and_bad_rule(problem):
    a, u, *_ = problem
    alphas, betas = _lanczos(a, u, 8)
    res = SimpleNamespace(
        alphas=np.stack([alphas, alphas]),
        betas=np.stack([betas, betas]),
        lengths=np.array([8, 5]),  # chain 2 "broke down" after 5 steps: exact G_5
    )
    nodes, weights = measure_from_lanczos(res, 8, "averaged")
    assert nodes.shape == (2, 15)
    g5 = gauss_rule(alphas, betas, 5)
    assert np.allclose(nodes[1, :5], g5[0]) and np.all(weights[1, 5:] == 0)
    assert np.allclose(weights.sum(axis=1), 1.0)
    res.dim = 8  # 8 steps span the whole space: averaged falls back to exact Gauss
    nodes, _ = measure_from_lanczos(res, 8, "averaged")
    assert nodes.shape == (2, 8)
    with pytest.raises(PrunelabError, match="quadrature"):
        chain_rule(alphas, betas, 8, 8, "trapezoid")


def test_ritz_deflate_moves_unresolved_nodes_to_zero():
    from prunelab.curvature import ritz_deflate

    nodes = np.array([[-1e-4, 2e-3, 1.0], [5e-5, 0.5, 0.9]])
    weights = np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    (out,), z = ritz_deflate([(nodes, weights)], num_iters=10)  # cut = 1.0 / 100
    assert np.array_equal(out[0], [[0.0, 0.0, 1.0], [0.0, 0.5, 0.9]])
    assert np.array_equal(out[1], weights)
    assert z == pytest.approx(((0.5 + 0.3) + 0.6) / 2)


@pytest.fixture(scope="module")
def hessian_problem():
    from torch import nn

    from prunelab.curvature import Hessian

    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=g)
    return Hessian(net, nn.functional.cross_entropy, [(x, y)])


@pytest.mark.parametrize("rule", ["gauss", "averaged", "anti-gauss"])
def test_quadrature_measure_is_measure_from_lanczos_as_a_spectral_measure(hessian_problem, rule):
    from prunelab.curvature import SpectralMeasure, lanczos, quadrature_measure, slq
    from prunelab.limits import limit_from_measures

    op = hessian_problem
    res = lanczos(op, 10, 3, num_runs=3)
    nodes, weights = measure_from_lanczos(res, 10, rule)
    mu = quadrature_measure(res, 10, rule, seed=3)
    assert np.array_equal(mu.nodes.numpy(), nodes) and np.array_equal(mu.weights.numpy(), weights)
    assert (mu.seed, mu.dim, mu.num_iters) == (3, op.dim, 10)
    assert mu.lengths.tolist() == [{"averaged": 19}.get(rule, 10)] * 3  # Gauss 9 + anti 10
    back = SpectralMeasure.from_dict(mu.to_dict())
    assert torch.equal(back.nodes[back.mask], mu.nodes[mu.mask])
    theta = np.linspace(-1.0, 1.0, op.dim)
    assert limit_from_measures(theta, [mu], 0.1).to_dict() == (
        limit_from_measures(theta, [(nodes, weights)], 0.1).to_dict()
    )
    if rule == "gauss":  # NumPy and torch eigensolvers: equal to round-off
        assert torch.allclose(mu.nodes, slq(op, 10, 3, 3).nodes, atol=1e-10)


def test_ritz_deflate_keeps_the_form_of_spectral_measures(hessian_problem):
    from prunelab.curvature import SpectralMeasure, ritz_deflate, slq

    mus = [slq(hessian_problem, 6, 2, s) for s in (0, 1)]
    out, z = ritz_deflate(mus, num_iters=6)
    ref, z_ref = ritz_deflate([m.to_numpy() for m in mus], num_iters=6)
    assert z == z_ref and all(isinstance(m, SpectralMeasure) for m in out)
    for m, r, orig in zip(out, ref, mus, strict=True):
        assert np.array_equal(m.nodes.numpy(), r[0]) and m.weights is orig.weights
