"""Exactness of taylor1 / obd / taylor2 against dense float64 references.

References are written from the definitions with ``torch.func``: the dense Hessian of
the mean loss over all examples (``torch.func.hessian``), the gradient, per-example
gradients by a Python loop, and the true Fisher by a loop over classes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian

from prunelab.curvature.estimate import probe_rows
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores import CRITERIA, score

TOL = dict(rtol=1e-10, atol=1e-12)


def tiny():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    return net, [(x[:5], y[:5]), (x[5:], y[5:])], x, y


def flat_theta(net):
    return torch.cat([p.detach().reshape(-1) for p in prunable_parameters(net).values()])


def loss_of(net, x, y, temperature=1.0):
    """Mean CE over (x, y) as a function of the flat prunable vector."""
    params = prunable_parameters(net)
    names = list(params)
    shapes = [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]
    fixed = {n: p.detach() for n, p in net.named_parameters() if n not in params}

    def f(theta):
        parts = torch.split(theta, sizes)
        values = dict(fixed)
        values.update({n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)})
        return F.cross_entropy(functional_call(net, values, (x,)) / temperature, y)

    return f


def ref_grad_hess(net, x, y, temperature=1.0):
    f = loss_of(net, x, y, temperature)
    theta = flat_theta(net)
    return grad(f)(theta), hessian(f)(theta)


def flat_scores(s):
    return torch.cat([v.reshape(-1) for v in s.values()])


def test_taylor1_is_abs_g_theta(float64):
    net, batches, x, y = tiny()
    g, _ = ref_grad_hess(net, x, y)
    got = flat_scores(score(net, "taylor1", batches, F.cross_entropy))
    torch.testing.assert_close(got, (g * flat_theta(net)).abs(), **TOL)


def test_obd_exact_is_half_diag_h_theta_sq(float64):
    net, batches, x, y = tiny()
    _, h = ref_grad_hess(net, x, y)
    theta = flat_theta(net)
    d = h.diagonal()
    got = flat_scores(
        score(net, "obd", batches, F.cross_entropy, curvature="exact", negative_curvature="keep")
    )
    torch.testing.assert_close(got, 0.5 * d * theta**2, **TOL)


def test_taylor2_exact_both_signs(float64):
    net, batches, x, y = tiny()
    g, h = ref_grad_hess(net, x, y)
    theta = flat_theta(net)
    quad = 0.5 * h.diagonal() * theta**2
    minus = flat_scores(score(net, "taylor2", batches, F.cross_entropy, curvature="exact"))
    plus = flat_scores(
        score(net, "taylor2", batches, F.cross_entropy, curvature="exact", first_order_sign="plus")
    )
    torch.testing.assert_close(minus, (-g * theta + quad).abs(), **TOL)
    torch.testing.assert_close(plus, (g * theta + quad).abs(), **TOL)
    assert not torch.allclose(minus, plus)  # at a non-stationary point the sign matters


def test_negative_curvature_rules(float64):
    net, batches, x, y = tiny()
    g, h = ref_grad_hess(net, x, y)
    theta = flat_theta(net)
    d = h.diagonal()
    assert (d < 0).any() and (d > 0).any(), "test model must have mixed-sign curvature"
    rules = {"clamp": d.clamp(min=0), "keep": d, "abs": d.abs()}
    for rule, c in rules.items():
        obd = score(
            net, "obd", batches, F.cross_entropy, curvature="exact", negative_curvature=rule,
            tie_break="position",  # the raw ½cθ²; the default orders exact zeros by |θ|
        )  # fmt: skip
        t2 = score(
            net, "taylor2", batches, F.cross_entropy, curvature="exact", negative_curvature=rule
        )
        torch.testing.assert_close(flat_scores(obd), 0.5 * c * theta**2, **TOL)
        torch.testing.assert_close(flat_scores(t2), (-g * theta + 0.5 * c * theta**2).abs(), **TOL)
    # Documented defaults: OBD clamps, Taylor-2 keeps the sign inside |.|.
    assert CRITERIA.get("obd").hparams().negative_curvature == "clamp"
    assert CRITERIA.get("taylor2").hparams().negative_curvature == "keep"
    assert CRITERIA.get("obd").hparams().tie_break == "magnitude"
    default = score(net, "obd", batches, F.cross_entropy, curvature="exact")
    raw = 0.5 * d.clamp(min=0) * theta**2
    zero = raw == 0
    assert zero.any() and (theta[zero] != 0).all()
    # Positive scores unchanged; exact zeros become ½ s_min |θ| / max_0 |θ| (below them all).
    want = torch.where(zero, 0.5 * raw[~zero].min() * theta.abs() / theta[zero].abs().max(), raw)
    torch.testing.assert_close(flat_scores(default), want, **TOL)


def test_hutchinson_uses_seeded_rademacher_probes(float64):
    net, batches, x, y = tiny()
    _, h = ref_grad_hess(net, x, y)
    theta = flat_theta(net)
    z = probe_rows(7, 0, 6, theta.numel(), torch.float64, torch.device("cpu"))
    est = (z * (z @ h)).mean(0)  # H symmetric: (H z)ᵀ = zᵀ H
    kw = dict(curvature="hutchinson", num_probes=6, seed=7, negative_curvature="keep")
    got = flat_scores(score(net, "obd", batches, F.cross_entropy, **kw))
    torch.testing.assert_close(got, 0.5 * est * theta**2, **TOL)
    again = flat_scores(score(net, "obd", batches, F.cross_entropy, **kw))
    assert torch.equal(got, again)
    other = flat_scores(score(net, "obd", batches, F.cross_entropy, **{**kw, "seed": 8}))
    assert not torch.equal(got, other)


def test_empirical_fisher_from_per_example_loop(float64):
    net, batches, x, y = tiny()
    theta = flat_theta(net)
    fisher = torch.zeros_like(theta)
    for i in range(x.shape[0]):
        fisher += grad(loss_of(net, x[i : i + 1], y[i : i + 1]))(theta) ** 2
    fisher /= x.shape[0]
    got = flat_scores(score(net, "obd", batches, F.cross_entropy, curvature="empirical-fisher"))
    torch.testing.assert_close(got, 0.5 * fisher * theta**2, **TOL)
    # fisher_pai is exactly OBD with the empirical Fisher.
    pai = flat_scores(score(net, "fisher_pai", batches, F.cross_entropy))
    torch.testing.assert_close(pai, got, **TOL)


def test_true_fisher_from_class_loop(float64):
    net, batches, x, y = tiny()
    theta = flat_theta(net)
    fisher = torch.zeros_like(theta)
    with torch.no_grad():
        probs = torch.softmax(net(x), dim=1)
    for i in range(x.shape[0]):
        for c in range(3):
            label = torch.tensor([c])
            fisher += probs[i, c] * grad(loss_of(net, x[i : i + 1], label))(theta) ** 2
    fisher /= x.shape[0]
    g, _ = ref_grad_hess(net, x, y)
    got = flat_scores(score(net, "taylor2", batches, F.cross_entropy, curvature="fisher"))
    torch.testing.assert_close(got, (-g * theta + 0.5 * fisher * theta**2).abs(), **TOL)


def test_temperature_divides_logits(float64):
    net, batches, x, y = tiny()
    g, h = ref_grad_hess(net, x, y, temperature=5.0)
    theta = flat_theta(net)
    for curvature in ("exact", "fisher"):
        got = flat_scores(
            score(
                net,
                "taylor2",
                batches,
                F.cross_entropy,
                curvature=curvature,
                temperature=5.0,
            )
        )
        if curvature == "exact":
            want = (-g * theta + 0.5 * h.diagonal() * theta**2).abs()
            torch.testing.assert_close(got, want, **TOL)
        else:  # the Fisher is PSD whatever T; check only that T reaches it
            plain = flat_scores(
                score(net, "taylor2", batches, F.cross_entropy, curvature=curvature)
            )
            assert not torch.allclose(got, plain)
    t1 = flat_scores(score(net, "taylor1", batches, F.cross_entropy, temperature=5.0))
    torch.testing.assert_close(t1, (g * theta).abs(), **TOL)


@pytest.mark.parametrize("criterion", ["taylor1", "obd", "taylor2"])
def test_locality_adds_half_lambda_theta_sq_and_tends_to_magnitude(float64, criterion):
    net, batches, _, _ = tiny()
    theta = flat_theta(net)
    base = flat_scores(score(net, criterion, batches, F.cross_entropy))
    local = flat_scores(score(net, criterion, batches, F.cross_entropy, locality=0.3))
    torch.testing.assert_close(local, base + 0.15 * theta**2, **TOL)
    huge = score(net, criterion, batches, F.cross_entropy, locality=1e9)
    mag = score(net, "magnitude")
    for p in (0.25, 0.5, 0.75):
        assert Mask.from_scores(huge, p).equal(Mask.from_scores(mag, p))
    # λ = 0 ranks differently from magnitude on this model (the test can fail).
    raw = score(net, criterion, batches, F.cross_entropy)
    assert not all(Mask.from_scores(raw, p).equal(Mask.from_scores(mag, p)) for p in (0.25, 0.5))


def test_bad_inputs(float64):
    net, batches, _, _ = tiny()
    with pytest.raises(PrunelabError, match="needs data"):
        score(net, "taylor2")
    with pytest.raises(PrunelabError, match="curvature 'kfac'"):
        score(net, "obd", batches, F.cross_entropy, curvature="kfac")
    with pytest.raises(PrunelabError, match="locality"):
        score(net, "taylor1", batches, F.cross_entropy, locality=-1.0)
    with pytest.raises(PrunelabError, match="temperature"):
        score(net, "taylor1", batches, F.cross_entropy, temperature=0)
    with pytest.raises(PrunelabError, match="num_probes"):
        score(net, "obd", batches, F.cross_entropy, curvature="hutchinson", num_probes=1)
    with pytest.raises(PrunelabError, match="first_order_sign"):
        score(net, "taylor2", batches, F.cross_entropy, first_order_sign="+")
    with pytest.raises(PrunelabError, match="no hparam"):
        score(net, "taylor1", batches, F.cross_entropy, curvature="exact")
    with pytest.raises(PrunelabError, match="no prunable parameters"):
        score(nn.Sequential(nn.Tanh()), "taylor1", batches, F.cross_entropy)
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double().train()
    with pytest.raises(PrunelabError, match="eval"):
        score(bn, "obd", batches, F.cross_entropy, curvature="exact")
