"""The ``gpt`` family: shapes, causality, the tied head outside the prunable set, training."""

from __future__ import annotations

import pytest
import torch

from prunelab import data as datasets
from prunelab import models
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.models.gpt import GPT
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.train import TrainConfig, evaluate, train_model


def test_sizes_and_the_prunable_set():
    net = models.build("gpt", input_shape=(64,), output_dim=256)
    total = sum(p.numel() for p in net.parameters())  # the tied tensor once
    assert 1_000_000 < total < 3_000_000
    names = list(prunable_parameters(net))
    assert len(names) == 6 * 6 and "head.weight" not in names
    assert names[:6] == [
        f"blocks.0.{n}.weight" for n in ("attn.q", "attn.k", "attn.v", "attn.out", "fc", "proj")
    ]
    assert net.head.weight is net.tok.weight
    d = sum(p.numel() for p in prunable_parameters(net).values())
    assert d == 6 * 12 * 128 * 128
    # include_classifier=False drops nothing more: the classifier is the tied head
    assert list(prunable_parameters(net, PrunableSpec(include_classifier=False))) == names
    with_bias = prunable_parameters(net, PrunableSpec(include_bias=True))
    assert len(with_bias) == 2 * len(names)
    large = models.build("gpt-large", input_shape=(64,), output_dim=256)
    assert 2_000_000 < sum(p.numel() for p in large.parameters()) < 3_000_000


def test_a_shared_tensor_is_counted_once():
    lin = torch.nn.Linear(3, 3)
    net = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    assert list(prunable_parameters(net)) == ["0.weight"]


def test_attention_is_causal_and_outputs_are_logits():
    torch.manual_seed(0)
    net = GPT(vocab=11, context=8, d_model=16, n_layer=2, n_head=4).eval()
    x = torch.randint(0, 11, (2, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 11
    with torch.no_grad():
        a, b = net(x), net(y)
    assert a.shape == (2, 8, 11)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    assert net(x[:, :3]).shape == (2, 3, 11)  # shorter than the context
    assert net(torch.zeros(1, 8)).shape == (1, 8, 11)  # float probes (FLOP counts) work


def test_bad_shapes_are_one_line():
    with pytest.raises(PrunelabError, match="token-sequence input_shape"):
        models.build("gpt", input_shape=(1, 8, 8), output_dim=10)
    with pytest.raises(PrunelabError, match="longer than the context"):
        GPT(5, 4, 8, 1, 2)(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(PrunelabError, match="must divide"):
        GPT(5, 4, 8, 1, 3)


def test_a_tiny_gpt_learns_below_the_unigram_baseline_and_masks_hold(tmp_path):
    (tmp_path / "a.txt").write_text("abcdefgh " * 400)  # deterministic after one letter
    data = datasets.load("text", data_dir=tmp_path, context=16)
    torch.manual_seed(0)
    net = models.build("gpt-tiny", data)
    before = evaluate(net, data)
    assert before["perplexity"] == pytest.approx(torch.tensor(before["loss"]).exp().item())
    mask = Mask.from_scores({n: p.detach().abs() for n, p in prunable_parameters(net).items()}, 0.5)
    mask.apply(net)
    config = TrainConfig(epochs=4, batch_size=8, optimizer="adam", lr=1e-2, schedule="constant")
    history = train_model(net, data, config, mask=mask).history
    after = evaluate(net, data)
    assert after["perplexity"] < 0.5 * data.info["unigram_perplexity"]
    assert 0 <= history[-1]["train_accuracy"] <= 100 and after["accuracy"] > 50
    assert Mask.from_model_zeros(net).nnz <= mask.nnz
