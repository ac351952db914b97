"""Rare Gems (GEM-MINER): exact sparsity, determinism, the relaxed gradient, score dynamics."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.procedures import PruneSettings, rare_gems, run_procedure
from prunelab.procedures.rare_gems import gem_objective, rank_scores, train_scores
from prunelab.prunable import prunable_parameters
from prunelab.train import TrainConfig


def tiny_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g) * 3 + 1
    y = (x[:, 0] > 1).long() + (x[:, 1] > 2).long()
    return DataBundle("tiny", (x[:48], y[:48]), (x[48:], y[48:]), 3, (4,))


def mlp(seed=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def scores_cfg(seed=0, epochs=3, **kw):
    return TrainConfig(epochs=epochs, batch_size=16, lr=kw.pop("lr", 0.5), seed=seed, **kw)


@pytest.mark.parametrize(("p", "rounds"), [(0.7, 1), (0.7, 3), (0.5, 2), (0.0, 1)])
def test_mask_keeps_exactly_round_of_one_minus_p_times_d(p, rounds):
    net, data = mlp(), tiny_data()
    init = copy.deepcopy(net)
    ft = TrainConfig(epochs=1, batch_size=16)
    mask, rec = rare_gems(
        net, data, p, score_config=scores_cfg(), rounds=rounds, finetune=ft, eval_train=False
    )
    d = 24 + 18
    assert mask.total == d and mask.nnz == round((1 - p) * d)
    assert rec.nnz == mask.nnz and rec.procedure == "rare-gems" and rec.after_finetune
    assert [r["step"] for r in rec.step_log] == list(range(1, rounds + 1))
    assert rec.step_log[-1]["nnz"] == mask.nnz
    for n, w in prunable_parameters(net).items():  # the fine-tuned weights respect the mask
        assert torch.all(w[~mask.masks[n]] == 0)
    # and the mask was taken at the initialisation: the score phase changed no weight
    net2 = copy.deepcopy(init)
    train_scores(net2, data, p, scores_cfg(), rounds=rounds)
    for (k, a), (_, b) in zip(net2.state_dict().items(), init.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_same_seed_same_mask_different_seed_different_mask():
    data = tiny_data()
    masks = [rare_gems(mlp(), data, 0.6, score_config=scores_cfg(seed=s), eval_train=False)[0]
             for s in (0, 0, 1)]  # fmt: skip
    assert masks[0].equal(masks[1])
    assert not masks[0].equal(masks[2])


def _objective_fd_check(forward):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    weights = {n: p.detach().clone() for n, p in prunable_parameters(net).items()}
    scores = {
        n: torch.rand(w.shape, dtype=torch.float64).requires_grad_() for n, w in weights.items()
    }
    keep = {n: torch.ones_like(w) for n, w in weights.items()}
    keep["0.weight"][1, 2] = 0.0  # a frozen-pruned weight: no gradient from the loss
    lam = 0.03

    def value(sc):
        data_loss, penalty = gem_objective(
            net, weights, sc, x, y, F.cross_entropy, lam, keep, forward
        )
        return data_loss + penalty

    value(scores).backward()
    return net, weights, scores, keep, lam, value


def test_relaxed_gradient_matches_float64_finite_differences():
    _, weights, scores, keep, lam, value = _objective_fd_check("relaxed")
    h = 1e-6
    for n, s in scores.items():
        fd = torch.zeros_like(s)
        for i in range(s.numel()):
            plus = {k: v.detach().clone() for k, v in scores.items()}
            minus = {k: v.detach().clone() for k, v in scores.items()}
            plus[n].view(-1)[i] += h
            minus[n].view(-1)[i] -= h
            fd.view(-1)[i] = (value(plus) - value(minus)) / (2 * h)
        torch.testing.assert_close(s.grad, fd, rtol=1e-6, atol=1e-9)
    # the frozen weight's gradient is the penalty's alone: 2·λ·s
    s = scores["0.weight"]
    assert float(s.grad[1, 2]) == pytest.approx(2 * lam * float(s[1, 2]), rel=1e-12)


def test_relaxed_gradient_is_w_times_the_effective_weight_gradient():
    """Chain rule on one linear layer by hand: ∂L/∂S = W ⊙ ∂L/∂(W⊙S) (λ = 0)."""
    torch.manual_seed(2)
    net = nn.Linear(3, 2, bias=False).double()
    x, y = torch.randn(7, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    w = net.weight.detach().clone()
    s = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    data_loss, _ = gem_objective(net, {"weight": w}, {"weight": s}, x, y, F.cross_entropy, 0.0)
    data_loss.backward()
    z = x @ (w * s.detach()).T
    dz = (torch.softmax(z, 1) - F.one_hot(y, 2).double()) / x.shape[0]
    torch.testing.assert_close(s.grad, w * (dz.T @ x), rtol=1e-12, atol=1e-14)


def test_rounded_forward_is_straight_through():
    """Rounded: the value uses 1[s > 0.5], the gradient is the relaxed one at 1[s > 0.5]."""
    net, weights, scores, keep, lam, _ = _objective_fd_check("rounded")
    hard = {n: (s.detach() > 0.5).double().requires_grad_() for n, s in scores.items()}
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    soft = {n: s.detach().clone().requires_grad_() for n, s in scores.items()}
    a, _ = gem_objective(net, weights, soft, x, y, F.cross_entropy, 0.0, keep, "rounded")
    b, _ = gem_objective(net, weights, hard, x, y, F.cross_entropy, 0.0, keep, "relaxed")
    assert float(a) == float(b)
    a.backward()
    b.backward()
    for n in soft:
        torch.testing.assert_close(soft[n].grad, hard[n].grad, rtol=0, atol=0)


def planted():
    """Class = sign of x0; the net's only useful weights are the two on input 0."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] > 0).long()
    data = DataBundle("planted", (x[:192], y[:192]), (x[192:], y[192:]), 2, (4,))
    net = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(0.05 * torch.randn(2, 4, generator=g))
        net.weight[0, 0], net.weight[1, 0] = -2.0, 2.0  # the planted, useful weights
    return net, data


def test_lambda_zero_raises_the_planted_scores_and_keeps_them():
    net, data = planted()
    init = torch.rand(2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scores, mask, history, _ = train_scores(net, data, 0.75, scores_cfg(epochs=5, lr=1.0), 0.0)
    s = scores["weight"].double()
    assert s[0, 0] == 1.0 and s[1, 0] == 1.0  # pushed up to the top of the cube
    assert s[0, 0] > init[0, 0] and s[1, 0] > init[1, 0]
    assert mask.masks["weight"].tolist() == [
        [True, False, False, False],
        [True, False, False, False],
    ]
    assert history[-1]["loss"] < history[0]["loss"]


def test_penalty_pulls_useless_scores_to_zero():
    """With nothing frozen (p = 0) what the scores do is the objective's alone."""
    net, data = planted()
    scores, *_ = train_scores(net, data, 0.0, scores_cfg(epochs=5, lr=1.0), 0.1)
    s = scores["weight"]
    assert float(s[:, 1:].max()) < 0.01  # λ·Σs² wins where the loss does not care
    assert float(s[:, 0].min()) > 0.5  # the planted weights resist it
    weak, *_ = train_scores(net, data, 0.0, scores_cfg(epochs=5, lr=1.0), 0.02)
    assert torch.all(s[:, 0] < weak["weight"][:, 0])  # a larger λ shrinks even those


def test_tied_scores_rank_by_weight_magnitude_then_position():
    s = {"a": torch.tensor([1.0, 1.0, 0.0]), "b": torch.tensor([[1.0, 1.0]])}
    w = {"a": torch.tensor([0.1, 0.3, 5.0]), "b": torch.tensor([[0.3, 0.2]])}
    r = rank_scores(s, w)
    # order (worst → best): a2 (s=0), a0 (|w| .1), b1 (.2), b0 (.3, later), a1 (.3, earlier)
    assert r["a"].tolist() == [1.0, 4.0, 0.0] and r["b"].tolist() == [[3.0, 2.0]]
    assert Mask.from_scores(r, 0.6).masks["a"].tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lam": -1.0}, "lam must be a finite number >= 0, got -1.0"),
        ({"lam": float("nan")}, "lam must be a finite number >= 0"),
        ({"forward": "soft"}, "forward must be one of relaxed, rounded, got 'soft'"),
        ({"rounds": 0}, "rounds must be an integer >= 1, got 0"),
        ({"rounds": 4}, "rounds must be <= the score epochs (3), got 4"),
        ({"score_config": scores_cfg(l2=1e-3)}, "score_config.l2 must be 0"),
        ({"score_config": scores_cfg(epochs=0)}, "score_config.epochs must be >= 1, got 0"),
    ],
)
def test_bad_input_is_a_one_line_error_naming_it(kwargs, message):
    kwargs = {"score_config": scores_cfg(), **kwargs}
    with pytest.raises(PrunelabError) as err:
        rare_gems(mlp(), tiny_data(), 0.5, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_sparsity_and_settings():
    with pytest.raises(PrunelabError, match="sparsity"):
        rare_gems(mlp(), tiny_data(), 1.0, score_config=scores_cfg())
    with pytest.raises(PrunelabError, match="gem_lr: must be a finite number > 0, got 0"):
        PruneSettings(kind="rare-gems", gem_lr=0.0).validate()
    with pytest.raises(PrunelabError, match="gem_lambda: not valid for kind 'one-shot'"):
        PruneSettings(gem_lambda=1e-3).validate()
    with pytest.raises(PrunelabError, match="nm: not valid for kind 'rare-gems'"):
        PruneSettings(kind="rare-gems", nm="2:4").validate()


def test_dispatch_settings_and_identities():
    s = PruneSettings(kind="rare-gems", gem_epochs=2, gem_lr=0.5).resolved("magnitude")
    assert (s.rounds, s.gem_lambda, s.gem_forward) == (1, 1e-4, "relaxed")
    assert s.label == "rare-gems-1rounds-lambda=0.0001-2score-epochs-score-lr=0.5"
    assert "gem_lambda" not in PruneSettings(kind="at-init").to_dict()  # old run ids stay
    net, data = mlp(), tiny_data()
    ft = TrainConfig(epochs=1, batch_size=16, weight_decay=1e-4, seed=0)
    mask, rec = run_procedure(net, data, "magnitude", 0.5, s, finetune=ft, eval_train=False)
    assert rec.procedure == "rare-gems" and mask.nnz == 21
    assert rec.hparams["score"]["epochs"] == 2 and rec.hparams["score"]["weight_decay"] == 0.0
