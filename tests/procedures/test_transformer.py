"""A tiny GPT through the library.

Curvature (attention under ``torch.func``) against an exact Hessian, every criterion, and
one-shot pruning with wanda / sparsegpt per row and 2:4 followed by a masked fine-tune.
"""

from __future__ import annotations

import pytest
import torch

from prunelab import curvature as cv
from prunelab import data as datasets
from prunelab import models
from prunelab.masks import Mask
from prunelab.procedures import one_shot
from prunelab.scores import CRITERIA, score
from prunelab.train import TrainConfig, loss_function

CORPUS = "to be or not to be, that is the question. " * 60


@pytest.fixture
def lm(tmp_path):
    (tmp_path / "a.txt").write_text(CORPUS)
    data = datasets.load("text", data_dir=tmp_path, context=8, tokens="char")
    torch.manual_seed(0)
    return models.build("gpt-tiny", data).double().eval(), data


def test_curvature_of_attention_matches_the_exact_hessian():
    from prunelab.models.gpt import GPT

    torch.manual_seed(1)
    net = GPT(vocab=5, context=4, d_model=4, n_layer=1, n_head=2).double().eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(0, 5, (6, 4), generator=gen)
    batches = [(x[:4], torch.roll(x[:4], -1, 1)), (x[4:], torch.roll(x[4:], -1, 1))]
    from prunelab._evaluate import token_cross_entropy

    H = cv.Hessian(net, token_cross_entropy, batches)
    dense = H.to_dense()
    assert dense.shape == (H.dim, H.dim) and H.dim == 4 * 16 + 2 * 64
    params = dict(net.named_parameters())
    names = H.param_names
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss_of(theta):
        out, start = {}, 0
        for n in names:
            k = params[n].numel()
            out[n] = theta[start : start + k].reshape(params[n].shape)
            start += k
        total = 0.0
        for xb, yb in batches:
            logits = torch.func.functional_call(net, {**dict(net.named_parameters()), **out}, (xb,))
            total = total + token_cross_entropy(logits, yb) * xb.shape[0]
        return total / 6

    exact = torch.autograd.functional.hessian(loss_of, flat)
    torch.testing.assert_close(dense, exact, rtol=1e-8, atol=1e-10)
    mu = cv.slq(H, num_iters=10, num_runs=2, seed=0)
    assert mu is not None


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_scores_a_gpt(lm, name):
    net, data = lm
    if name == "cov_scaled":
        pytest.skip("cov_scaled is defined for a single linear layer on raw inputs only")
    batches = list(data.batches("train", 8, limit=16))
    hp = (
        {"num_probes": 2} if "num_probes" in CRITERIA.get(name).hparams.__dataclass_fields__ else {}
    )
    if (
        name in ("obd", "taylor2", "fisher_pai", "hutchinson_pai")
        and "curvature" in CRITERIA.get(name).hparams.__dataclass_fields__
    ):
        hp["curvature"] = "empirical-fisher"  # the true Fisher wants (N, C) logits
    s = score(net, name, batches, loss_function(data), **hp)
    assert set(s) == set(Mask.dense(net).masks)
    assert all(bool(torch.isfinite(v).all()) for v in s.values())


@pytest.mark.parametrize(
    ("criterion", "scope", "nm"),
    [
        ("wanda", "row", None),
        ("sparsegpt", "row", None),
        ("sparsegpt", "global", "2:4"),
        ("magnitude", "layer", "2:4"),
    ],
)
def test_one_shot_llm_pruning_of_a_gpt(lm, criterion, scope, nm):
    net, data = lm
    net = net.float()
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=1e-3, schedule="constant")
    mask, record = one_shot(
        net, criterion, 0.5, data=data, scope=scope, nm=nm, score_samples=32, finetune=config,
        eval_train=False,
    )  # fmt: skip
    assert mask.density == pytest.approx(0.5)
    assert Mask.from_model_zeros(net).nnz <= mask.nnz
    if nm:
        for m in mask.masks.values():
            assert bool((m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all())
        assert record.extra["nm"] == nm
    if criterion == "sparsegpt":
        assert record.step_log[0]["reconstructed"]
    assert "perplexity" in record.after_prune  # evaluate() of a language model
    assert record.after_prune["perplexity"] > 1
