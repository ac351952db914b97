"""Weight scaling ×α: exact path vs an independent dense GGN, Lanczos bracket vs the probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from prunelab.curvature.estimate import probe_rows
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits._crossing import crossing, removed_norm_curve, solve_crossing
from prunelab.limits.weight_scaling import scaled_curve, weight_scaling
from prunelab.prunable import prunable_parameters

ALPHAS = (1.0, 2.0, 3.5, 5.0)


def _case(n=40, hidden=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    data = DataBundle("tiny", (x, y), (x[:8], y[:8]), 3, (5,))
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, 3))
    return net, data


def _dense_ggn(net, data):
    """Independent reference: G = mean_n J_nᵀ (diag p_n − p_n p_nᵀ) J_n, float64."""
    net = net.double()
    params = prunable_parameters(net)
    names, shapes = list(params), [p.shape for p in params.values()]
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    x = data.train[0].double()

    def logits(f):
        chunks, s = {}, 0
        for n, sh in zip(names, shapes, strict=True):
            chunks[n] = f[s : s + sh.numel()].reshape(sh)
            s += sh.numel()
        return functional_call(net, chunks, (x,))

    J = jacrev(logits)(flat)  # (N, C, D)
    p = torch.softmax(logits(flat), dim=1)
    lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    G = torch.einsum("ncd,nck,nke->de", J, lam, J) / x.shape[0]
    return G.detach().numpy(), flat.numpy()


def test_scaling_the_weights_is_scaling_r():
    w = np.random.default_rng(0).standard_normal(50)
    r = removed_norm_curve(w)
    nodes, weights = np.array([[0.0, 0.5, 3.0]]), np.array([[0.2, 0.5, 0.3]])
    for a in ALPHAS:
        np.testing.assert_allclose(scaled_curve(r, a).cumsum, removed_norm_curve(a * w).cumsum)
        assert crossing(scaled_curve(r, a), nodes, weights, 0.1) == pytest.approx(
            crossing(removed_norm_curve(a * w), nodes, weights, 0.1), abs=1e-12
        )


def test_exact_method_equals_the_dense_reference(float64):
    net, data = _case()
    eps = 0.05
    res = weight_scaling(net, data, ALPHAS, method="exact", eps=eps)
    G, flat = _dense_ggn(net, data)
    lam = np.clip(np.linalg.eigvalsh(G), 0.0, None)
    removed = removed_norm_curve(flat)
    assert res.method == "exact" and res.converged and res.dim == flat.size
    previous = 1.0
    for pt, a in zip(res.points, ALPHAS, strict=True):
        ref = solve_crossing(
            lambda p, a=a: float(np.mean(1 / (1 + (a * removed(p)) ** 2 * lam / (2 * eps))))
        )
        assert pt.p_lower == pt.p_upper == pytest.approx(ref, abs=1e-9)
        assert pt.p_trace <= ref + 1e-12  # Jensen: the trace form is a lower bound
        assert pt.p_lower < previous  # larger weights, smaller removable fraction
        previous = pt.p_lower
    assert res.mean_eigenvalue == pytest.approx(np.trace(G) / flat.size, rel=1e-9)


def test_lanczos_bracket_holds_every_alpha(float64):
    net, data = _case()
    eps = 0.05
    G, flat = _dense_ggn(net, data)
    lam, Q = np.linalg.eigh(G)
    lam = np.clip(lam, 0.0, None)
    V = probe_rows(0, 0, 4, flat.size, torch.float64, "cpu").numpy()
    proj = (V / np.linalg.norm(V, axis=1, keepdims=True) @ Q) ** 2  # probes' exact measures
    removed = removed_norm_curve(flat)
    few = weight_scaling(net, data, ALPHAS, method="lanczos", eps=eps, num_probes=4, max_iters=3)
    full = weight_scaling(net, data, ALPHAS, method="lanczos", eps=eps, num_probes=4,
                          max_iters=200, tolerance=1e-7)  # fmt: skip
    assert few.num_iters == 3 and not few.converged and full.converged
    for lo_pt, hi_pt, a in zip(few.points, full.points, ALPHAS, strict=True):
        probe_exact = solve_crossing(lambda p, a=a: float(
            (proj / (1 + (a * removed(p)) ** 2 * lam / (2 * eps))).sum(1).mean()))  # fmt: skip
        assert lo_pt.p_lower - 1e-9 <= probe_exact <= lo_pt.p_upper + 1e-9
        assert lo_pt.width > 0
        assert abs(hi_pt.p_mid - probe_exact) < 1e-6
        assert hi_pt.p_trace <= hi_pt.p_lower + 1e-12


def test_rank_floor_and_bad_input(float64):
    net, data = _case(n=16, hidden=6)  # D = 48 > 16·2
    res = weight_scaling(net, data, ALPHAS, method="exact", eps=1e-4)
    assert res.rank_deficient and res.rho_floor == pytest.approx(1 - 32 / 48)
    assert all(p.p_lower >= res.rho_floor - 1e-9 for p in res.points)
    with pytest.raises(PrunelabError, match="alphas"):
        weight_scaling(net, data, [0.0])
    with pytest.raises(PrunelabError, match="method"):
        weight_scaling(net, data, method="slq")
    with torch.no_grad():
        net[0].weight[0, 0] = 0.0
    with pytest.raises(PrunelabError, match="dense model"):
        weight_scaling(net, data, method="lanczos")


def test_a_pruned_model_is_predicted_on_its_remaining_weights(float64):
    net, data = _case()
    with torch.no_grad():
        net[0].weight[:2] = 0.0  # 10 of D = 32 weights pruned
    eps = 0.05
    res = weight_scaling(net, data, (1.0, 3.0), eps=eps)
    assert res.method == "exact" and res.dim == 22
    assert res.initial_sparsity == pytest.approx(10 / 32)
    G, flat = _dense_ggn(net, data)
    live = flat != 0
    lam = np.clip(np.linalg.eigvalsh(G[np.ix_(live, live)]), 0.0, None)
    removed = removed_norm_curve(flat[live])
    for pt, a in zip(res.points, (1.0, 3.0), strict=True):
        ref = solve_crossing(
            lambda p, a=a: float(np.mean(1 / (1 + (a * removed(p)) ** 2 * lam / (2 * eps))))
        )
        assert pt.p_lower == pytest.approx(10 / 32 + 22 / 32 * ref, abs=1e-9)
