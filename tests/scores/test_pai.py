"""SNIP, GraSP, SynFlow and the 002 scores against references written from their definitions."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian

from prunelab.curvature.estimate import probe_rows
from prunelab.errors import PrunelabError
from prunelab.prunable import prunable_parameters
from prunelab.scores import score

TOL = dict(rtol=1e-10, atol=1e-12)


def tiny():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return net, [(x[:4], y[:4]), (x[4:], y[4:])], x, y


def flat(d):
    return torch.cat([v.reshape(-1) for v in d.values()])


def tempered_loss(net, x, y, temperature):
    params = prunable_parameters(net)
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]
    fixed = {n: p.detach() for n, p in net.named_parameters() if n not in params}

    def f(theta):
        values = dict(fixed)
        for n, t, s in zip(names, torch.split(theta, sizes), shapes, strict=True):
            values[n] = t.reshape(s)
        return F.cross_entropy(functional_call(net, values, (x,)) / temperature, y)

    return f, flat({n: p.detach() for n, p in params.items()})


def test_snip_is_abs_theta_times_mean_gradient(float64):
    net, batches, x, y = tiny()
    f, theta = tempered_loss(net, x, y, 1.0)
    got = flat(score(net, "snip", batches, F.cross_entropy))
    torch.testing.assert_close(got, (theta * grad(f)(theta)).abs(), **TOL)


def test_grasp_is_theta_times_hessian_gradient_at_t200(float64):
    net, batches, x, y = tiny()
    f, theta = tempered_loss(net, x, y, 200.0)
    want = theta * (hessian(f)(theta) @ grad(f)(theta))
    got = flat(score(net, "grasp", batches, F.cross_entropy))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-18)
    assert (want < 0).any() and (want > 0).any()  # signed: "keep largest", not |.|
    f1, _ = tempered_loss(net, x, y, 1.0)
    got1 = flat(score(net, "grasp", batches, F.cross_entropy, temperature=1.0))
    torch.testing.assert_close(got1, theta * (hessian(f1)(theta) @ grad(f1)(theta)), **TOL)


def test_hutchinson_pai_matches_its_definition(float64):
    net, batches, x, y = tiny()
    f, theta = tempered_loss(net, x, y, 200.0)
    h, g = hessian(f)(theta), grad(f)(theta)
    z = probe_rows(3, 0, 5, theta.numel(), torch.float64, torch.device("cpu"))
    est = (z * (z @ h)).mean(0)
    # Paper 002's HTS: +gθ, T = 200, signed ĥ inside |.|.
    got = flat(
        score(
            net,
            "hutchinson_pai",
            batches,
            F.cross_entropy,
            num_probes=5,
            seed=3,
            temperature=200.0,
            first_order_sign="plus",
        )
    )
    torch.testing.assert_close(got, (g * theta + 0.5 * est * theta**2).abs(), **TOL)
    same = score(
        net, "taylor2", batches, F.cross_entropy, curvature="hutchinson", num_probes=5, seed=3
    )
    mine = score(net, "hutchinson_pai", batches, F.cross_entropy, num_probes=5, seed=3)
    torch.testing.assert_close(flat(mine), flat(same), **TOL)


def bn_net():
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2, bias=False)
    ).double()
    with torch.no_grad():
        net[1].running_mean.copy_(torch.tensor([-0.5, 0.2, -1.0, 0.1]))
        net[1].running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 0.3]))
        net[1].weight.copy_(torch.tensor([1.0, -2.0, 0.5, -0.1]))
        net[0].weight[0, 0] = -0.0  # restoration must be bit-exact, -0.0 included
    return net


def synflow_reference(net, input_shape):
    """Functional R = sum f(1; |state|) with every state entry replaced by its abs."""
    params = prunable_parameters(net)
    state = {k: (v.abs() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    ones = torch.ones((1, *input_shape), dtype=torch.float64)
    ev = copy.deepcopy(net).eval()

    def r(weights):
        return functional_call(ev, {**state, **weights}, (ones,)).sum()

    absw = {n: state[n] for n in params}
    g = grad(r)(absw)
    return {n: (g[n] * absw[n]).abs() for n in params}


def bits(t):
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def test_synflow_reference_and_model_untouched(float64):
    net = bn_net().train()  # a train-mode model: synflow must still run in eval mode
    before = {k: v.clone() for k, v in net.state_dict().items()}
    want = synflow_reference(net, (3,))
    got = score(net, "synflow", input_shape=(3,))
    torch.testing.assert_close(flat(got), flat(want), **TOL)
    after = net.state_dict()
    assert list(after) == list(before)
    for k in before:
        assert torch.equal(bits(after[k]), bits(before[k])), k
    assert net.training and net[1].training
    assert all(p.grad is None for p in net.parameters())
    assert torch.signbit(net[0].weight[0, 0])  # still -0.0


def test_synflow_input_shape_sources_and_double(float64):
    net = bn_net().eval()
    x = torch.randn(5, 3)
    from_batches = score(net, "synflow", [(x, torch.zeros(5, dtype=torch.long))])
    net.prunelab_spec = {"name": "custom", "input_shape": [3], "output_dim": 2}
    from_spec = score(net, "synflow")
    torch.testing.assert_close(flat(from_batches), flat(from_spec), **TOL)
    with pytest.raises(PrunelabError, match="input shape"):
        score(bn_net(), "synflow")

    single = bn_net().float()
    before = {k: v.clone() for k, v in single.state_dict().items()}
    dbl = score(single, "synflow", input_shape=[3], double=True)
    assert all(v.dtype == torch.float64 for v in dbl.values())
    ref = synflow_reference(bn_net(), (3,))  # float64 reference of the same weights
    torch.testing.assert_close(flat(dbl), flat(ref), rtol=1e-6, atol=1e-7)
    for k, v in single.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(bits(v), bits(before[k]))


def test_synflow_bad_hparams():
    with pytest.raises(PrunelabError, match="input_shape"):
        score(nn.Linear(2, 2), "synflow", input_shape=(0,))
    with pytest.raises(PrunelabError, match="double"):
        score(nn.Linear(2, 2), "synflow", double="yes")
