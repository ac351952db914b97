"""Training loop: exact mask preservation, schedules, seeds, penalties, divergence."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.scores import score
from prunelab.train import (
    DivergedError,
    TrainConfig,
    evaluate,
    loss_function,
    lr_at_epoch,
    make_optimizer,
    masked_step,
    penalty,
    train_model,
)


def blobs(n=40, seed=0, regression=False) -> DataBundle:
    """Two separable Gaussian blobs in 4-D (float64), split 3:1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.5
    x[:, 0] += 3.0 * (2 * y - 1)
    if regression:
        y = (x @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)).to(torch.float64)
    cut = 3 * n // 4
    return DataBundle(
        name="blobs",
        train=(x[:cut], y[:cut]),
        test=(x[cut:], y[cut:]),
        num_classes=0 if regression else 2,
        input_shape=(4,),
    )


def net(out=2, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, out)).double()


def pruned_values(model, mask):
    params = prunable_parameters(model, mask.spec)
    return torch.cat([params[n].detach()[~m] for n, m in mask.masks.items()])


# --------------------------------------------------------------------- exact masks
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_zeros_stay_exact_through_50_steps_from_nonzero_state(optimizer):
    data = blobs()
    model = net()
    cfg = TrainConfig(
        epochs=3, batch_size=10, optimizer=optimizer, lr=0.05, momentum=0.9, weight_decay=1e-2
    )
    opt = make_optimizer(model, cfg)
    train_model(model, data, cfg, optimizer=opt)  # dense: builds momentum / Adam moments
    mask = Mask.from_scores(score(model, "magnitude"), 0.6)
    key = "momentum_buffer" if optimizer == "sgd" else "exp_avg"
    w0 = model[0].weight
    state_at_pruned = opt.state[w0][key][~mask.masks["0.weight"]]
    assert (state_at_pruned != 0).all(), "precondition: optimiser state must be non-zero"

    mask.apply(model)
    kept_before = model[0].weight.detach()[mask.masks["0.weight"]].clone()
    loss_fn = loss_function(data)
    x, y = data.train
    for step in range(50):
        idx = torch.arange(step % 3 * 10, step % 3 * 10 + 10)
        opt.zero_grad()
        (loss_fn(model(x[idx]), y[idx]) + penalty([w0], l1=1e-3)).backward()
        masked_step(opt, model, mask)
        assert (pruned_values(model, mask) == 0.0).all(), f"step {step}"
    assert not torch.equal(model[0].weight.detach()[mask.masks["0.weight"]], kept_before)

    # The same through train_model with the same optimiser (5 epochs x 3 batches).
    cfg5 = TrainConfig(
        epochs=5, batch_size=10, optimizer=optimizer, lr=0.05, weight_decay=1e-2, l1=1e-3
    )
    rows = []
    train_model(model, data, cfg5, mask=mask, optimizer=opt, callback=rows.append)
    assert len(rows) == 5
    assert (pruned_values(model, mask) == 0.0).all()
    assert Mask.from_model_zeros(model).equal(mask)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gradient_masking_alone_is_not_enough(optimizer):
    # Negative control for the test above: without re-masking the weights, the
    # non-zero momentum / Adam state moves pruned weights off zero.
    data = blobs()
    model = net()
    cfg = TrainConfig(epochs=3, batch_size=10, optimizer=optimizer, weight_decay=1e-2)
    opt = make_optimizer(model, cfg)
    train_model(model, data, cfg, optimizer=opt)
    mask = Mask.from_scores(score(model, "magnitude"), 0.6)
    mask.apply(model)
    x, y = data.train
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for n, p in prunable_parameters(model).items():
        p.grad.mul_(mask.masks[n])
    opt.step()
    assert (pruned_values(model, mask) != 0.0).any()


def test_train_model_applies_mask_first():
    data = blobs()
    model = net()
    mask = Mask.from_scores(score(model, "magnitude"), 0.5)
    assert (pruned_values(model, mask) != 0).all()
    train_model(model, data, TrainConfig(epochs=1, batch_size=10), mask=mask)
    assert (pruned_values(model, mask) == 0.0).all()


# --------------------------------------------------------------------- schedules
def test_lr_schedules_hand_computed():
    step = [lr_at_epoch(0.1, e, 6, "step", step_size=2, gamma=0.5) for e in range(6)]
    assert step == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-15)
    warm = [lr_at_epoch(0.1, e, 6, "step", 2, 0.5, warmup_epochs=2) for e in range(6)]
    assert warm == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.05, 0.05], rel=1e-15)
    # cos(0), cos(π/4), cos(π/2), cos(3π/4) → (1 + c) / 2
    cos = [lr_at_epoch(1.0, e, 4, "cosine") for e in range(4)]
    assert cos == pytest.approx([1.0, 0.8535533905932737, 0.5, 0.14644660940672624], rel=1e-12)
    cos_w = [lr_at_epoch(0.2, e, 5, "cosine", warmup_epochs=1) for e in range(5)]
    assert cos_w == pytest.approx([0.2, 0.2, 0.17071067811865476, 0.1, 0.02928932188134525])
    const = [lr_at_epoch(0.3, e, 4, "constant", warmup_epochs=3) for e in range(4)]
    assert const == pytest.approx([0.1, 0.2, 0.3, 0.3], rel=1e-15)


def test_history_uses_the_schedule():
    data = blobs()
    cfg = TrainConfig(epochs=4, batch_size=10, schedule="step", lr=0.08, step_size=1, gamma=0.5)
    res = train_model(net(), data, cfg)
    assert [r["lr"] for r in res.history] == [0.08, 0.04, 0.02, 0.01]
    assert res.optimizer.param_groups[0]["lr"] == 0.01
    assert res.final is res.history[-1] and [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    keys = {"epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}
    assert set(res.final) == keys


# --------------------------------------------------------------------- determinism
def test_same_seed_identical_weights_and_rng_untouched():
    data = blobs()
    a, b, c = net(), net(), net()
    # Dropout makes the run depend on the global RNG too.
    for m in (a, b, c):
        m.insert(1, nn.Dropout(0.3))
    cfg = TrainConfig(epochs=3, batch_size=7, seed=3)
    rng = torch.get_rng_state()
    train_model(a, data, cfg)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(12345)  # a different global state must not matter
    train_model(b, data, cfg)
    train_model(c, data, TrainConfig(epochs=3, batch_size=7, seed=4))
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), n
    pairs = zip(a.parameters(), c.parameters(), strict=True)
    assert any(not torch.equal(pa, pc) for pa, pc in pairs)


def test_shuffle_differs_per_epoch_and_per_seed():
    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x):
            if self.training:
                self.seen.append(x[:, 1].clone())
            return x

    def order(seed):
        rec = Recorder()
        model = nn.Sequential(rec, net())
        train_model(model, blobs(), TrainConfig(epochs=2, batch_size=30, seed=seed))
        return rec.seen  # one full-batch forward per epoch

    a, b, c = order(0), order(0), order(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1])  # a new permutation each epoch
    assert not torch.equal(a[0], c[0])  # and another one for another seed
    assert torch.equal(a[0].sort().values, c[0].sort().values)  # same examples


# --------------------------------------------------------------------- penalties
def test_l1_gradient_is_sign_on_prunable_set_only():
    model = net()
    params = prunable_parameters(model)
    penalty(params.values(), l1=0.3).backward()
    for n, p in model.named_parameters():
        if n in params:
            assert torch.equal(p.grad, 0.3 * torch.sign(p.detach()))
        else:
            assert p.grad is None


@pytest.mark.parametrize(
    ("l1", "l2", "spec"),
    [(0.01, 0.0, PrunableSpec()), (0.0, 0.02, PrunableSpec()), (0.01, 0.02, PrunableSpec(False))],
)
def test_one_full_batch_step_matches_reference(l1, l2, spec):
    data = blobs()
    model = net()
    ref = copy.deepcopy(model)
    cfg = TrainConfig(
        epochs=1, batch_size=1000, lr=0.1, momentum=0.0, schedule="constant", l1=l1, l2=l2
    )
    train_model(model, data, cfg, spec=spec)
    x, y = data.train
    F.cross_entropy(ref(x), y).backward()
    prunable = set(prunable_parameters(ref, spec))
    for (n, p), q in zip(ref.named_parameters(), model.parameters(), strict=True):
        g = p.grad.clone()
        if n in prunable:
            g += l1 * torch.sign(p.detach()) + 2 * l2 * p.detach()
        torch.testing.assert_close(q.detach(), p.detach() - 0.1 * g, msg=n)


# --------------------------------------------------------------------- behaviour
def test_loss_decreases_on_separable_problem():
    data = blobs()
    model = net()
    before = evaluate(model, data)
    res = train_model(model, data, TrainConfig(epochs=15, batch_size=10, lr=0.05))
    after = evaluate(model, data)
    assert after["loss"] < 0.5 * before["loss"]
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert after["accuracy"] == 100.0 and res.final["test_accuracy"] == 100.0


def test_regression_trains_with_mse():
    data = blobs(regression=True)
    model = net(out=1)
    before = evaluate(model, data, "train")
    res = train_model(model, data, TrainConfig(epochs=20, batch_size=10, lr=0.01))
    after = evaluate(model, data, "train")
    assert before["accuracy"] is None and res.final["train_accuracy"] is None
    assert after["loss"] < 0.2 * before["loss"]
    x, y = data.train
    with torch.no_grad():
        assert after["loss"] == pytest.approx(float(((model(x)[:, 0] - y) ** 2).mean()))


def test_modes_train_during_steps_eval_for_metrics_and_restored():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((self.training, torch.is_grad_enabled()))
            return x

    data = blobs()
    model = nn.Sequential(net(), Probe())
    model[0].eval()  # mixed modes must come back as they were
    train_model(model, data, TrainConfig(epochs=1, batch_size=10))
    assert seen[:3] == [(True, True)] * 3  # 30 training examples, batches of 10
    assert seen[3:] == [(False, False)]  # one evaluation pass over the 10 test examples
    assert model.training and not model[0].training and model[1].training


def test_evaluate_matches_manual_and_restores_mode():
    data = blobs()
    model = net()
    model.train()
    out = evaluate(model, data, "test", batch_size=3)
    assert model.training
    x, y = data.test
    with torch.no_grad():
        logits = model(x)
    assert out["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-12)
    assert out["accuracy"] == pytest.approx(100.0 * float((logits.argmax(1) == y).double().mean()))
    # float32 data on a float64 model is cast to the model's dtype
    data32 = DataBundle("b", (x.float(), y), (x.float(), y), 2, (4,))
    assert evaluate(model, data32)["loss"] == pytest.approx(out["loss"], rel=1e-6)


def test_zero_epochs_and_callback_stop():
    data = blobs()
    model = net()
    res = train_model(model, data, TrainConfig(epochs=0))
    assert res.history == [] and res.final["epoch"] == 0
    assert res.final["test_loss"] == evaluate(model, data)["loss"]
    res = train_model(net(), data, TrainConfig(epochs=5), callback=lambda row: row["epoch"] == 2)
    assert len(res.history) == 2


# --------------------------------------------------------------------- divergence
def test_nan_loss_raises_diverged_before_the_step():
    data = blobs()
    x, y = data.train
    x = x.clone()
    x[:] = math.nan
    bad = DataBundle("nan", (x, y), data.test, 2, (4,))
    model = net()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(DivergedError, match="epoch 1, step 0") as info:
        train_model(model, bad, TrainConfig(epochs=2, batch_size=10))
    assert isinstance(info.value, PrunelabError)
    assert (info.value.epoch, info.value.step) == (1, 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_exploding_regression_raises_diverged():
    data = blobs(regression=True)
    with pytest.raises(DivergedError, match="training diverged"):
        train_model(net(out=1), data, TrainConfig(epochs=50, batch_size=10, lr=10.0))


# --------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", -1),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", -0.1),
        ("lr", math.nan),
        ("optimizer", "rmsprop"),
        ("schedule", "linear"),
        ("l1", -1e-5),
        ("l2", -1.0),
        ("weight_decay", -0.1),
        ("momentum", -0.5),
        ("step_size", 0),
        ("warmup_epochs", -2),
        ("epochs", 2.5),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(PrunelabError, match=field):
        TrainConfig(**{field: value}).validate()


def test_config_messages_and_round_trip():
    with pytest.raises(PrunelabError, match="valid choices: sgd, adam"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(PrunelabError, match="valid choices: constant, step, cosine"):
        TrainConfig(schedule="linear").validate()
    cfg = TrainConfig(epochs=3, l1=5e-5, optimizer="adam")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(PrunelabError, match="unknown training option"):
        TrainConfig.from_dict({"epochs": 1, "lrate": 0.1})
    with pytest.raises(PrunelabError, match="lr"):
        train_model(net(), blobs(), TrainConfig(lr=-1.0))
