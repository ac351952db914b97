"""Limits on non-classification tasks: a tiny GPT (loss in nats) and a fake embedding model.

The loss rule is checked against a brute-force evaluation (prune a copy, compute the
token cross-entropy directly, in float64); ``prunelab limit`` runs on a GPT checkpoint
through the CLI; bad tolerances fail in one line with exit 2 and write nothing.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunelab import data as datasets
from prunelab import models
from prunelab.cli import main
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits import find_actual_limit, one_shot_limit
from prunelab.limits.task_metric import METRICS, limit_rule, loss_eps
from prunelab.masks import Mask
from prunelab.scores import score
from prunelab.train import TrainConfig, train_model

CORPUS = "to be or not to be, that is the question. " * 60
GRID = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "a.txt").write_text(CORPUS)
    data = datasets.load("text", data_dir=folder, context=8, tokens="char")
    torch.manual_seed(0)
    net = models.build("gpt-tiny", data)
    train_model(net, data, TrainConfig(epochs=8, optimizer="adam", lr=3e-3, progress=False))
    return net.double().eval(), data, folder


def _brute_loss(net, data, p):
    """Test token cross-entropy of ``net`` magnitude-pruned to ``p``, computed directly."""
    work = copy.deepcopy(net)
    Mask.from_scores(score(work, "magnitude"), p).apply(work)
    x, y = data.test
    with torch.no_grad():
        logits = work(x)
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))


def test_the_metric_table_names_each_task_once():
    assert {t: (m.key, m.higher_is_better) for t, m in METRICS.items()} == {
        "classification": ("accuracy", True),
        "language-model": ("loss", False),
        "embedding": ("loss", False),
    }
    rule = limit_rule("language-model", loss_tolerance=0.1)
    assert rule.threshold(2.0) == pytest.approx(2.1) and rule.passes(2.1, 2.1)
    assert not rule.passes(2.1000001, 2.1)
    assert limit_rule("embedding", min_cosine=0.97).eps == pytest.approx(0.03)
    assert loss_eps("classification", 0.05, 0.9) == 0.05
    with pytest.raises(PrunelabError, match="regression"):
        limit_rule("regression")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"min_cosine": 1.5}, "min_cosine: must be in"), ({"loss_tolerance": -0.1}, ">= 0 nats"),
     ({"tolerance": 101}, r"\[0, 100\]"), ({"loss_tolerance": float("nan")}, "finite")],
)  # fmt: skip
def test_bad_tolerances_are_refused_whatever_the_task(kwargs, match):
    with pytest.raises(PrunelabError, match=match):
        limit_rule("classification", **kwargs)


def _binding_tolerance(net, data):
    """A loss tolerance that the grid crosses: half the loss gained at 80 %."""
    return 0.5 * (_brute_loss(net, data, 0.8) - _brute_loss(net, data, 0.0))


def test_loss_rule_matches_brute_force(lm):
    net, data, _ = lm
    dense = _brute_loss(net, data, 0.0)
    tol = _binding_tolerance(net, data)
    assert tol > 0
    res = find_actual_limit(net, data, grid=GRID, bisect_steps=3, loss_tolerance=tol)
    assert res.metric == "loss" and res.unit == "nats" and res.tolerance == tol
    assert res.dense_loss == pytest.approx(dense, rel=1e-12)
    assert res.threshold == pytest.approx(dense + tol, rel=1e-12)
    assert res.dense_metrics["perplexity"] == pytest.approx(math.exp(dense), rel=1e-9)
    for p, _, loss in res.curve:  # every evaluated point, recomputed from scratch
        assert loss == pytest.approx(_brute_loss(net, data, p), rel=1e-10)
    passing = [p for p, _, loss in res.curve if loss <= res.threshold]
    assert res.p_actual == max(passing)
    assert all(loss > res.threshold for p, _, loss in res.curve if p > res.p_actual)
    assert 0.0 < res.p_actual < 0.8  # the rule binds inside the grid


def test_one_shot_truth_on_the_loss(lm):
    net, data, _ = lm
    tol = _binding_tolerance(net, data)
    res = one_shot_limit(net, data, loss_tolerance=tol, grid=GRID, bootstrap=50)
    dense = _brute_loss(net, data, 0.0)
    brute = [_brute_loss(net, data, p) for p in GRID]
    assert res.metric == "loss" and res.loss == pytest.approx(brute, rel=1e-10)
    assert res.last_pass.value == max(
        p for p, v in zip(GRID, brute, strict=True) if v <= dense + tol
    )
    assert res.last_pass.value < 0.8
    assert res.loss_limit.value == res.last_pass.value
    assert res.accuracy is not None and len(res.accuracy) == len(GRID)  # next-token accuracy


@pytest.fixture(scope="module")
def gpt_ckpt(lm, tmp_path_factory):
    _, _, folder = lm
    out = tmp_path_factory.mktemp("gpt_limit") / "run"
    argv = ["train", "--model", "gpt-tiny", "--data", "text", "--data-dir", folder,
            "--data-option", "context=8", "--data-option", "tokens=char", "--epochs", "8",
            "--optimizer", "adam", "--lr", "3e-3",
            "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out


FAST = ["--samples", "32", "--iters", "6", "--runs", "2", "--seeds", "1", "--probes", "2",
        "--max-iters", "8", "--bisect-steps", "2"]  # fmt: skip


@pytest.fixture
def cli(capsys):
    """``cli(argv) -> (exit code, stdout, stderr)`` of one in-process run."""

    def run(argv):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse refusals
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_limit_cli_on_a_gpt_puts_the_prediction_beside_the_loss_limit(lm, gpt_ckpt, cli):
    code, out, _ = cli(["limit", gpt_ckpt, "--verify", "--loss-tolerance", "0.05", *FAST,
                        "--json"])  # fmt: skip
    assert code == 0
    res = json.loads(out)
    assert res["tolerance"]["metric"] == "loss" and res["tolerance"]["predictor_eps"] == 0.05
    methods = [r["method"] for r in res["rows"]]
    assert methods[0] == "quadratic (one-shot loss)" and "gaussian-width" in methods
    assert all(r["actual"] == res["actual"]["p_actual"] for r in res["rows"])
    assert res["estimates"]["quadratic"]["eps"] == 0.05
    assert res["estimates"]["gaussian-width"]["eps"] == 0.05  # the measured rule's ε
    assert any(f.endswith("loss_vs_sparsity.png") for f in res["files"])
    cert = res["estimates"]["certified"]  # T = 8 next-token softmaxes per example
    assert cert["rank_bound"] == cert["num_examples"] * 8 * (lm[1].num_classes - 1)
    code, out, _ = cli(["limit", gpt_ckpt, "--verify", "--method", "quadratic", *FAST])
    assert code == 0
    assert "loss <= dense + 0.05" in out and "perplexity" in out


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [("--min-cosine", "1.5", "min-cosine"), ("--loss-tolerance", "-1", "loss-tolerance"),
     ("--tolerance", "300", "tolerance"), ("--sparsity", "1.5", "1.5")],
)  # fmt: skip
def test_bad_tolerances_fail_in_one_line_and_write_nothing(gpt_ckpt, cli, flag, value, needle):
    report = gpt_ckpt / "report" / "limit"
    before = sorted(report.rglob("*")) if report.exists() else []
    code, out, err = cli(["limit", gpt_ckpt, "--method", "cosine", flag, value])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and value in lines[0]
    assert (sorted(report.rglob("*")) if report.exists() else []) == before


class _Embedder(nn.Module):
    """Token ids ``(N, T)`` → mean-pooled embeddings ``(N, d)`` through one Linear."""

    def __init__(self, vocab=7, d=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        return self.proj(self.emb(x).mean(1))


def test_embedding_limit_uses_the_minimum_cosine():
    torch.manual_seed(0)
    net = _Embedder().double().eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 7, (40, 5), generator=gen)
    with torch.no_grad():
        y = net(x)
    data = DataBundle("fake-sentences", (x[:20], y[:20]), (x[20:], y[20:]), 0, (5,),
                      embedding=True)  # fmt: skip
    assert data.task == "embedding"
    res = find_actual_limit(net, data, grid=[0.0, 0.1, 0.3, 0.5, 0.7, 0.9], min_cosine=0.99,
                            bisect_steps=2)  # fmt: skip
    assert res.metric == "loss" and res.tolerance == pytest.approx(0.01)
    assert "min cosine 0.99" in res.rule and res.dense_accuracy is None
    for p, acc, loss in res.curve:  # loss = mean(1 - cos) against the dense embeddings
        work = copy.deepcopy(net)
        Mask.from_scores(score(work, "magnitude"), p).apply(work)
        with torch.no_grad():
            cos = F.cosine_similarity(work(x[20:]), y[20:], dim=-1).mean()
        assert acc is None and loss == pytest.approx(1 - float(cos), abs=1e-12)
    assert res.dense_loss == pytest.approx(0.0, abs=1e-12)  # the model against itself
    assert res.threshold == pytest.approx(0.01, abs=1e-12)
    at = {p: loss for p, _, loss in res.curve}
    assert at[res.p_actual] <= res.threshold  # mean cosine >= 0.99 at the limit
    assert all(loss > res.threshold for p, loss in at.items() if p > res.p_actual)
    truth = one_shot_limit(net, data, grid=[0.0, 0.1, 0.3, 0.5], bootstrap=20, min_cosine=0.99)
    assert truth.metric == "loss" and truth.accuracy is None
    assert truth.tolerance == pytest.approx(0.01, abs=1e-15)


def test_limit_per_layer_prints_each_layers_limit_and_the_allocations(gpt_ckpt, cli):
    argv = ["limit", gpt_ckpt, "--method", "cosine", "--per-layer", "--sparsity", "0.6",
            "--grid-step", "0.1", "--samples", "32"]  # fmt: skip
    code, out, _ = cli([*argv, "--json"])
    assert code == 0
    pl = json.loads(out)["per_layer"]
    assert pl["predictor"] == "quadratic" and pl["eps"] == 0.05
    total = pl["rows"][-1]["D"]
    for alloc in pl["allocations"].values():
        assert sum(alloc["kept"].values()) == round(0.4 * total)
    assert pl["rows"][-1]["layer"] == "overall"
    assert all(0 <= r["predicted limit"] <= 1 for r in pl["rows"][:-1])
    code, out, _ = cli(argv)
    assert code == 0 and "per layer: predicted limit (quadratic" in out and "erk" in out
