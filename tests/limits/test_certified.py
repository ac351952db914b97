"""Certified spectral limit: Gauss ≤ exact ≤ Gauss–Radau, end to end against a dense GGN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.curvature import GGN, gauss_radau_rule, gauss_rule
from prunelab.curvature.estimate import probe_rows
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits._crossing import removed_norm_curve, solve_crossing
from prunelab.limits.certified import certified_limit, ggn_rank_bound
from prunelab.prunable import prunable_parameters
from prunelab.train import loss_function


def _lanczos(A: np.ndarray, v: np.ndarray, k: int):
    """Plain float64 Lanczos with full re-orthogonalisation (the slow, obvious reference)."""
    V = np.zeros((k + 1, len(v)))
    al, be = np.zeros(k), np.zeros(k)
    V[0] = v / np.linalg.norm(v)
    for j in range(k):
        w = A @ V[j]
        al[j] = w @ V[j]
        w -= al[j] * V[j] + (be[j - 1] * V[j - 1] if j else 0)
        for _ in range(2):
            w -= V[: j + 1].T @ (V[: j + 1] @ w)
        be[j] = np.linalg.norm(w)
        V[j + 1] = w / be[j]
    return al, be, V[0]


@pytest.mark.parametrize("c", [0.1, 10.0, 1e4])
@pytest.mark.parametrize("k", [2, 5, 12, 30])
def test_gauss_below_exact_below_radau_on_a_psd_spectrum(c, k):
    rng = np.random.default_rng(1)
    dim = 120
    lam = np.concatenate([np.zeros(40), rng.exponential(1.0, dim - 40) ** 3])  # null space
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    A = Q @ np.diag(lam) @ Q.T
    al, be, v = _lanczos(A, rng.choice([-1.0, 1.0], dim), k)

    def f(x):
        return 1.0 / (1.0 + c * x)

    exact = v @ (Q @ np.diag(f(lam)) @ Q.T) @ v
    n, w = gauss_rule(al, be, k)
    lower = w @ f(n)
    n, w = gauss_radau_rule(al, be, k, 0.0)
    upper = w @ f(n)
    assert lower <= exact + 1e-12 and exact <= upper + 1e-12, (lower, exact, upper)
    assert np.isclose(w.sum(), 1.0)


def _case(n=24, hidden=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    data = DataBundle("tiny", (x[: n - 8], y[: n - 8]), (x[n - 8 :], y[n - 8 :]), 3, (5,))
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, 3)).double().eval()
    return net, data


def test_bracket_holds_the_probes_exact_crossing(float64):
    net, data = _case()
    eps = 0.05
    res = certified_limit(net, data, eps=eps, num_probes=4, max_iters=3, tolerance=1e-9)
    # the slow reference: the dense GGN, its eigendecomposition, the same probes
    params = prunable_parameters(net)
    batches = list(data.batches("train", 256, shuffle=False, limit=512))
    G = GGN(net, loss_function(data), batches, params=list(params)).to_dense().numpy()
    lam, Q = np.linalg.eigh(G)
    lam = np.clip(lam, 0.0, None)
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()]).numpy()
    removed = removed_norm_curve(flat)
    V = probe_rows(0, 0, 4, G.shape[0], torch.float64, "cpu").numpy()
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    proj = (V @ Q) ** 2  # weights of each probe's exact spectral measure

    def exact_rho(p):
        r2 = float(removed(p)) ** 2
        return float((proj / (1.0 + r2 * lam / (2 * eps))).sum(1).mean())

    p_exact = solve_crossing(exact_rho)  # ρ(R(p)) = p
    assert res.num_iters == 3 and not res.converged
    assert res.p_lower - 1e-9 <= p_exact <= res.p_upper + 1e-9, (res, p_exact)
    assert res.p_upper > res.p_lower  # 3 steps cannot be exact on D = 57
    full = certified_limit(net, data, eps=eps, num_probes=4, max_iters=200, tolerance=1e-6)
    assert full.converged and abs(full.p_mid - p_exact) < 1e-5
    assert np.isfinite(full.stderr) and full.stderr >= 0


def test_rank_deficiency_is_detected():
    assert ggn_rank_bound(16, 3) == 32 and ggn_rank_bound(16, 1, classification=False) == 16
    net, data = _case(n=24, hidden=6)  # D = 5·6 + 6·3 = 48 > 16·2 = 32
    res = certified_limit(net, data, eps=0.05, num_probes=2, max_iters=8)
    assert res.rank_deficient and res.rho_floor == pytest.approx(1 - 32 / 48)
    # the floor bounds the exact (trace) crossing whatever ε is: check on the dense GGN
    params = prunable_parameters(net)
    G = GGN(net, loss_function(data), [data.train], params=list(params)).to_dense().numpy()
    lam = np.clip(np.linalg.eigvalsh(G), 0.0, None)
    assert int((lam > 1e-10 * lam.max()).sum()) <= 32
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()]).numpy()
    removed = removed_norm_curve(flat)
    for eps in (1e-6, 0.05, 10.0):
        p_exact = solve_crossing(
            lambda p, eps=eps: float(np.mean(1 / (1 + float(removed(p)) ** 2 * lam / (2 * eps))))
        )
        assert p_exact >= res.rho_floor - 1e-9
    net, data = _case(n=40, hidden=2)  # D = 5·2 + 2·3 = 16 <= 32·2
    res = certified_limit(net, data, eps=0.05, num_probes=2, max_iters=8)
    assert not res.rank_deficient and res.rho_floor == 0.0


def test_bad_settings_and_pruned_models_are_refused():
    net, data = _case()
    with pytest.raises(PrunelabError, match="num_probes"):
        certified_limit(net, data, num_probes=0)
    with pytest.raises(PrunelabError, match="tolerance"):
        certified_limit(net, data, tolerance=0.0)
    with torch.no_grad():
        net[0].weight[0, 0] = 0.0
    with pytest.raises(PrunelabError, match="dense model"):
        certified_limit(net, data)
