"""predict_limit on models: a synthetic quadratic with a known spectrum, ε, null-space mass."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from prunelab.curvature import Hessian, RestrictedOperator
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits import (
    batch_loss_std,
    cosine_rule,
    jacobian_null_mask,
    limit_from_measures,
    predict_limit,
    resolve_eps,
)
from prunelab.train import loss_function

D, NULL = 40, 4  # weights; the last NULL inputs are always 0 -> zero Hessian rows


def _quadratic(null=NULL, seed=0):
    """Linear(D, 1) regression whose MSE Hessian is exactly A = Q diag(λ) Qᵀ (⊕ 0_null).

    With N = D examples X = sqrt(N/2)·[diag(√λ) Qᵀ, 0], ``(2/N) XᵀX = A``; targets
    ``y = Xθ*`` make ``θ*`` the minimum, and the model's weights are set to ``θ*``.
    """
    g = torch.Generator().manual_seed(seed)
    k = D - null
    lam = torch.logspace(-2, 1, k, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    x = torch.zeros(D, D, dtype=torch.float64)
    x[:k, :k] = math.sqrt(D / 2) * torch.diag(lam.sqrt()) @ q.T
    theta = 0.2 * torch.distributions.StudentT(3.0).sample((D,)).double()
    y = x @ theta
    data = DataBundle("quad", (x, y), (x, y), 0, (D,))
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(theta[None])
    a = torch.zeros(D, D, dtype=torch.float64)
    a[:k, :k] = q @ torch.diag(lam) @ q.T
    return model, data, a


def _exact(model, a, eps, live=None):
    theta = model.weight.detach().reshape(-1)
    idx = torch.arange(D) if live is None else torch.nonzero(live).reshape(-1)
    lam = torch.linalg.eigvalsh(a[idx][:, idx]).numpy()
    return limit_from_measures(theta.numpy(), [(lam, np.full(lam.size, 1 / lam.size))], eps)


def test_quadratic_hessian_is_the_constructed_matrix():
    model, data, a = _quadratic()
    op = Hessian(model, loss_function(data), [data.train], params=["weight"])
    assert torch.allclose(op.to_dense(), a, atol=1e-10)
    idx = torch.tensor([0, 3, 5, 17, 30])
    sub = RestrictedOperator(op, idx)
    v = torch.randn(5, 2, dtype=torch.float64)
    assert torch.allclose(sub.matmat(v), a[idx][:, idx] @ v, atol=1e-10)
    assert torch.allclose(sub @ v[:, 0], a[idx][:, idx] @ v[:, 0], atol=1e-10)
    assert sub.shape == (5, 5)


def test_jacobian_null_mask_matches_exact_hessian_rows(float64):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        net[0].bias[2] = -100.0  # unit 2 is dead on every input
    x = torch.randn(30, 5)
    x[:, 4] = 0.0  # input 4 is always zero
    y = torch.randint(0, 3, (30,))
    params = dict(net.named_parameters())
    names = ["0.weight", "2.weight"]
    null = jacobian_null_mask(net.eval(), {n: params[n] for n in names}, [(x, y)])

    def loss(w0, w2):
        h = torch.relu(x @ w0.T + params["0.bias"])
        return nn.functional.cross_entropy(h @ w2.T + params["2.bias"], y)

    blocks = torch.func.hessian(loss, argnums=(0, 1))(params["0.weight"], params["2.weight"])
    n0, n2 = params["0.weight"].numel(), params["2.weight"].numel()
    h = torch.cat(
        [
            torch.cat([blocks[0][0].reshape(n0, n0), blocks[0][1].reshape(n0, n2)], 1),
            torch.cat([blocks[1][0].reshape(n2, n0), blocks[1][1].reshape(n2, n2)], 1),
        ]
    )
    zero_rows = h.abs().amax(dim=1) == 0
    assert torch.equal(null, zero_rows)
    # dead unit: its 5 incoming and 3 outgoing weights; zero input: 6 - 1 other weights
    assert int(null.sum()) == 5 + 3 + 5


def test_batch_loss_std_is_the_spread_of_full_batch_losses():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=g)
    y = torch.randint(0, 3, (300,), generator=g)
    data = DataBundle("t", (x, y), (x, y), 3, (4,))
    net = nn.Linear(4, 3)
    net.train()
    std, n = batch_loss_std(net, data, loss_function(data))
    assert n == 2  # 300 = 128 + 128 + 44: the incomplete batch is dropped
    with torch.no_grad():
        losses = [
            float(nn.functional.cross_entropy(net(x[i : i + 128]), y[i : i + 128]))
            for i in (0, 128)
        ]
    assert std == pytest.approx(float(np.std(losses)))
    assert net.training
    value, source = resolve_eps(net, data, loss_function(data), "train-loss")
    with torch.no_grad():
        assert value == pytest.approx(float(nn.functional.cross_entropy(net(x), y)))
    assert source.startswith("train-loss")
    assert resolve_eps(net, data, loss_function(data), None) == (std, source_of_default(n))
    assert resolve_eps(net, data, loss_function(data), 0.25) == (0.25, "given")


def source_of_default(n):
    return f"batch-std: std of {n} training batch losses of 128"


def test_bad_input():
    model, data, _ = _quadratic()
    for eps in (0.0, -1.0, float("nan"), "big"):
        with pytest.raises(PrunelabError, match="eps"):
            predict_limit(model, data, eps=eps)
    with pytest.raises(PrunelabError, match="method"):
        predict_limit(model, data, method="magic", eps=1.0)
    for z in ("foo", 1.0, -0.1, True):
        with pytest.raises(PrunelabError, match="zero_mass"):
            predict_limit(model, data, eps=1.0, zero_mass=z)
    with pytest.raises(PrunelabError, match="num_iters"):
        predict_limit(model, data, eps=1.0, num_iters=0)
    # y = Xθ*: the loss is 0; 40 examples are not even two batches of 128
    with pytest.raises(PrunelabError, match="eps 'batch-std' needs at least 2"):
        predict_limit(model, data)
    with pytest.raises(PrunelabError, match="eps rule 'train-loss' gives 0"):
        predict_limit(model, data, eps="train-loss")


def test_cosine_method_gives_the_uniform_interface():
    model, data, _ = _quadratic()
    est = predict_limit(model, data, method="cosine")
    rule = cosine_rule(model)
    assert est.method == "cosine" and est.p_hat == rule.p_star and est.lower == rule.p_safe
    json.dumps(est.to_dict())


@pytest.mark.parametrize("zero_mass", ["auto", "none"])
def test_slq_agrees_with_exact_spectrum_within_spread(zero_mass):
    model, data, a = _quadratic()
    eps = 0.05
    est = predict_limit(
        model, data, eps=eps, num_iters=40, num_runs=2, num_seeds=8, samples=D, zero_mass=zero_mass
    )
    exact = _exact(model, a, eps)  # includes the NULL exact zeros in the uniform measure
    assert 0 < exact.p_hat < 1
    if zero_mass == "auto":
        assert est.zero_mass == pytest.approx(NULL / D)
        assert est.settings["hessian_dim"] == D - NULL
    assert est.spread > 0
    assert abs(est.p_hat - exact.p_hat) <= est.spread
    assert est.lower < est.p_hat <= est.upper and est.trace_lower <= est.p_hat
    json.dumps(est.to_dict())


def test_already_pruned_model_predicts_for_remaining_weights():
    model, data, a = _quadratic(null=0, seed=3)
    with torch.no_grad():
        w = model.weight.reshape(-1)
        w[torch.argsort(w.abs())[:10]] = 0.0  # 25% already pruned
    live = model.weight.detach().reshape(-1) != 0
    est = predict_limit(
        model, data, eps=0.05, num_iters=30, num_runs=2, num_seeds=8, samples=D, zero_mass="none"
    )
    exact = _exact(model, a, 0.05, live)
    assert est.initial_sparsity == pytest.approx(0.25)
    assert est.settings["hessian_dim"] == 30
    assert est.p_hat > 0.25
    assert abs(est.p_hat - exact.p_hat) <= est.spread


def test_ritz_zero_mass_moves_unresolved_nodes_to_zero():
    model, data, _ = _quadratic()
    est = predict_limit(
        model, data, eps=0.05, num_iters=8, num_seeds=2, samples=D, zero_mass="ritz"
    )
    assert 0 <= est.zero_mass < 1
    assert est.p_hat >= est.p_hat_without_zero_mass
    assert est.settings["zero_mass_method"] == "ritz"


def test_lanczos_measure_equals_slq_and_diagnostics_are_reported():
    from prunelab.curvature import lanczos, measure_from_lanczos, slq

    model, data, _ = _quadratic()
    op = Hessian(model, loss_function(data), [data.train], params=["weight"])
    mu = slq(op, 12, 3, 5)
    nodes, weights = measure_from_lanczos(lanczos(op, 12, 5, num_runs=3), 12, "gauss")
    assert np.allclose(nodes, mu.nodes.numpy(), atol=1e-12)
    assert np.allclose(weights, mu.weights.numpy(), atol=1e-12)
    est = predict_limit(model, data, eps=0.05, num_iters=12, num_seeds=2, samples=D)
    assert est.settings["quadrature"] == "gauss"
    conv = est.settings["convergence"]
    assert conv["num_iters"] == [6, 12] and conv["p_hat"][1] == est.p_hat
    avg = predict_limit(
        model, data, eps=0.05, num_iters=12, num_seeds=2, samples=D, quadrature="averaged"
    )
    lo, hi = sorted(avg.settings["quadrature_bracket"].values())
    assert avg.settings["quadrature_bracket"] == est.settings["quadrature_bracket"]
    assert lo <= avg.p_hat <= hi  # ρ of the average lies between ρ of its halves
    # linear model + squared loss: the GGN is the Hessian, same seeds -> same numbers
    ggn = predict_limit(
        model, data, eps=0.05, num_iters=12, num_seeds=2, samples=D, curvature="ggn"
    )
    assert ggn.p_hat == pytest.approx(est.p_hat, abs=1e-9)
    with pytest.raises(PrunelabError, match="quadrature"):
        predict_limit(model, data, eps=0.05, quadrature="simpson")
    with pytest.raises(PrunelabError, match="curvature"):
        predict_limit(model, data, eps=0.05, curvature="fisher")
