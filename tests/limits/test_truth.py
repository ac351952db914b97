"""Ground truths with intervals and the quadratic references, against slow brute force."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn
from torch.func import functional_call, hessian

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits.quadratic import quadratic_one_shot_limit, retrained_quadratic_limit
from prunelab.limits.truth import _interval, _limits, fine_tuned_limit, one_shot_limit
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores import score
from prunelab.train import TrainConfig, evaluate, loss_function, train_model


def _data(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 0.8).long()
    return DataBundle("tiny", (x[:80], y[:80]), (x[80:], y[80:]), 3, (4,))


def _trained(data, hidden=5, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3)).double()
    train_model(net, data, TrainConfig(epochs=20, lr=0.1, batch_size=16))
    return net.eval()


@pytest.fixture(scope="module")
def trained():
    data = _data()
    return data, _trained(data)


def test_bootstrap_interval_covers_the_true_limit_at_its_rate():
    # population: example n breaks at sparsity b_n ~ U(0.3, 1); accuracy(p) = P(b > p)
    grid = np.round(np.arange(0, 1, 0.01), 4)
    true = max(p for p in grid if min(1.0, (1 - p) / 0.7) >= 0.95)  # 5-point tolerance
    rng = np.random.default_rng(0)
    n, reps, covered, widths = 200, 100, 0, []
    for _ in range(reps):
        b = rng.uniform(0.3, 1.0, n)
        C = (grid[:, None] < b[None, :]).astype(float)
        args = (C, np.ones(n), np.zeros_like(C), np.zeros(n), grid, 5.0, 0.0)
        last, _, _ = _limits(np.ones((1, n)), *args)
        w = rng.multinomial(n, np.full(n, 1 / n), size=200).astype(float)
        iv = _interval(last[0], _limits(w, *args)[0])
        covered += iv.low <= true <= iv.high
        widths.append(iv.high - iv.low)
    assert 0.88 <= covered / reps <= 1.0  # stated 95 %; ±3 s.e. of 100 draws
    assert 0 < np.mean(widths) < 0.1  # informative, not a trivially wide interval


def test_one_shot_limit_matches_direct_evaluation(trained):
    data, net = trained
    res = one_shot_limit(net, data, tolerance=1.0, grid=[0.0, 0.2, 0.4, 0.6, 0.8], bootstrap=200)
    scores = score(net, "magnitude")
    for p, acc in zip(res.grid, res.accuracy, strict=True):
        pruned = Mask.from_scores(scores, p).apply(copy.deepcopy(net))
        assert acc == pytest.approx(evaluate(pruned, data)["accuracy"], abs=1e-9)
    passing = [
        p for p, a in zip(res.grid, res.accuracy, strict=True) if a >= res.dense_accuracy - 1
    ]
    assert res.last_pass.value == max(passing)
    assert res.last_pass.low <= res.last_pass.value <= res.last_pass.high
    assert res.num_test == 40
    with pytest.raises(PrunelabError, match="bootstrap"):
        one_shot_limit(net, data, bootstrap=-1)


def _flat_loss(net, data, params):
    names = list(params)
    shapes = [params[n].shape for n in names]
    x, y = data.train
    loss_fn = loss_function(data)
    frozen = {k: v.detach() for k, v in net.named_parameters() if k not in params}

    def f(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            k = int(np.prod(s))
            parts[n] = flat[i : i + k].reshape(s)
            i += k
        return loss_fn(functional_call(net, {**frozen, **parts}, (x,)), y)

    return f


def test_one_shot_quadratic_equals_the_dense_hessian_reference(trained):
    data, net = trained
    params = prunable_parameters(net)
    theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
    f = _flat_loss(net, data, params)
    H = hessian(f)(theta)
    g = torch.func.grad(f)(theta)
    grid = [round(0.0135 * i, 6) for i in range(70)]  # > 2 blocks of products
    res = quadratic_one_shot_limit(net, data, eps=0.05, grid=grid, samples=80, batch_size=32)
    scores = score(net, "magnitude")
    for p, dl in zip(grid, res.delta_loss, strict=True):
        keep = Mask.from_scores(scores, p).masks
        kept = torch.cat([keep[n].reshape(-1) for n in params])
        d = torch.where(kept, torch.zeros_like(theta), -theta)
        assert dl == pytest.approx(float(g @ d + 0.5 * d @ H @ d), rel=1e-9, abs=1e-12)
    ok = [p for p, v in zip(grid, res.delta_loss, strict=True) if v <= 0.05]
    assert res.p_hat == (max(ok) if ok else 0.0)


def test_retrained_quadratic_equals_brute_force_minimisation(float64):
    data = _data()
    net = _trained(data, hidden=3)
    params = prunable_parameters(net)
    res = retrained_quadratic_limit(net, data, eps=0.05, grid=[0.3, 0.6], samples=80,
                                    damping=0.0)  # fmt: skip
    from prunelab.curvature import GGN

    G = GGN(net, loss_function(data), [data.train], params=list(params)).to_dense().numpy()
    theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
    g = torch.func.grad(_flat_loss(net, data, params))(theta).numpy()
    scores = score(net, "magnitude")
    for p, value in zip([0.3, 0.6], res.delta_loss, strict=True):
        keep = Mask.from_scores(scores, p).masks
        K = torch.cat([keep[n].reshape(-1) for n in params]).numpy()
        dS = -theta.numpy()[~K]

        def q(dK, dS=dS, K=K):
            d = np.zeros(len(K))
            d[K], d[~K] = dK, dS
            return g @ d + 0.5 * d @ G @ d

        best = minimize(q, np.zeros(int(K.sum())), method="BFGS", options={"gtol": 1e-12})
        assert value == pytest.approx(best.fun, rel=1e-5, abs=1e-9)
        assert value <= q(np.zeros(int(K.sum()))) + 1e-12  # refitting never hurts


def test_fine_tuned_limit_bisects_per_seed(trained):
    data, net = trained
    ft = TrainConfig(epochs=3, lr=0.05, batch_size=16)
    res = fine_tuned_limit(
        net, data, ft, tolerance=2.0, seeds=(0, 1), high=0.95, steps=3, reference="dense"
    )
    assert len(res.per_seed) == 2 and res.limit.low <= res.limit.value <= res.limit.high
    for seed, p_lim in zip((0, 1), res.per_seed, strict=True):
        evals = [(p, a) for s, p, a, _ in res.evaluations if s == seed]
        target = res.dense_accuracy - 2.0
        assert any(p == p_lim and a >= target for p, a in evals) or p_lim == 0.0
        assert all(a < target for p, a in evals if p > p_lim)  # every larger p tried failed
    # the loss version: the same bisection on the test loss of the same fine-tuned models
    assert res.loss_tolerance == 0.05
    assert res.dense_loss == pytest.approx(evaluate(net, data)["loss"])
    assert res.loss_limit.low <= res.loss_limit.value <= res.loss_limit.high
    for seed, p_lim in zip((0, 1), res.loss_per_seed, strict=True):
        evals = [(p, lo) for s, p, _, lo in res.evaluations if s == seed]
        target = res.dense_loss + 0.05
        assert any(p == p_lim and lo <= target for p, lo in evals) or p_lim == 0.0
        assert all(lo > target for p, lo in evals if p > p_lim)
    assert len({(s, p) for s, p, _, _ in res.evaluations}) == len(res.evaluations)  # no repeats
    with pytest.raises(PrunelabError, match="seeds"):
        fine_tuned_limit(net, data, ft, seeds=())


def test_fine_tuned_limit_paired_reference_is_the_same_budget_at_zero(trained):
    data, net = trained
    ft = TrainConfig(epochs=3, lr=0.05, batch_size=16)
    res = fine_tuned_limit(net, data, ft, tolerance=2.0, seeds=(0, 1), high=0.95, steps=3)
    assert res.reference == "paired"
    for i, seed in enumerate((0, 1)):
        # brute force: the unpruned model fine-tuned with the same budget and seed
        work = copy.deepcopy(net)
        train_model(work, data, TrainConfig(epochs=3, lr=0.05, batch_size=16, seed=seed))
        ref = evaluate(work, data)
        assert res.reference_per_seed[i] == pytest.approx(ref["accuracy"])
        assert res.reference_loss_per_seed[i] == pytest.approx(ref["loss"])
        evals = [(p, a, lo) for s, p, a, lo in res.evaluations if s == seed]
        target, loss_target = ref["accuracy"] - 2.0, ref["loss"] + 0.05
        p_lim, p_loss = res.per_seed[i], res.loss_per_seed[i]
        assert any(p == p_lim and a >= target for p, a, _ in evals)  # p = 0 passes by design
        assert all(a < target for p, a, _ in evals if p > p_lim)
        assert all(lo > loss_target for p, _, lo in evals if p > p_loss)
    with pytest.raises(PrunelabError, match="reference must be one of paired, dense"):
        fine_tuned_limit(net, data, ft, seeds=(0,), reference="fine-tuned")
