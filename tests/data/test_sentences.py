"""``sentences``: corpus sentences, disjoint seeded splits, reference embeddings as targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import hf_tiny
from prunelab import _hf, models
from prunelab import data as datasets
from prunelab._evaluate import cosine_distance, evaluate, loss_function
from prunelab.data.sentences import MIN_WORDS, split_sentences
from prunelab.errors import PrunelabError
from prunelab.train import TrainConfig, train_model

pytest.importorskip("transformers")  # the extra; `make test` installs it


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return hf_tiny.save_tiny_bert(tmp_path_factory.mktemp("hf") / "bert")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return hf_tiny.write_corpus(tmp_path_factory.mktemp("corpus"))


def load(tiny: Path, corpus: Path, **options) -> datasets.DataBundle:
    options = {"calibration": 8, "evaluation": 6, "max_tokens": 24, **options}
    return datasets.load("sentences", data_dir=corpus, reference=f"hf:{tiny}", **options)


def test_sentence_rules():
    text = (
        "Short one. This sentence has five words! And this one has six words?\n"
        "\t\t-- An Attribution Line That Is Long\n\n"
        "THIS SENTENCE HAS FIVE WORDS! ####### ####### ####### #######"
    )
    assert split_sentences(text) == ["This sentence has five words!", "And this one has six words?"]
    assert MIN_WORDS == 4


def test_splits_shapes_targets_and_the_spec(tiny, corpus):
    data = load(tiny, corpus)
    (xtr, ytr), (xte, yte) = data.train, data.test
    assert data.task == "embedding" and not data.has_accuracy and data.num_classes == 0
    assert xtr.dtype == torch.int64 and ytr.dtype == torch.float32
    assert xtr.shape[0] == ytr.shape[0] == 8 and xte.shape[0] == yte.shape[0] == 6
    assert data.input_shape == (xtr.shape[1],) and data.output_dim == ytr.shape[1] == 16
    text = data.info["text"]
    assert len(set(text["train"]) | set(text["test"])) == 14  # disjoint
    assert data.info["reference"] == f"hf:{tiny}" and data.spec["reference"] == f"hf:{tiny}"
    lengths = (torch.cat([xtr, xte]) != 0).sum(1)
    assert int(lengths.max()) == xtr.shape[1] <= 24  # padded to the longest, truncated at 24
    assert ((torch.cat([xtr, xte])[:, 0]) == 2).all()  # [CLS] first
    # the targets are the pristine reference's embeddings of exactly these ids
    encoder = _hf.load_encoder(f"hf:{tiny}")
    with torch.no_grad():
        torch.testing.assert_close(encoder(xte), yte, rtol=1e-5, atol=1e-6)
    again = datasets.load(**data.spec)  # what a checkpoint's data reload does
    for a, b in zip(data.train + data.test, again.train + again.test, strict=True):
        assert torch.equal(a, b)
    other = load(tiny, corpus, seed=1)
    assert other.info["text"]["train"] != text["train"]


def test_the_task_loss_and_evaluate(tiny, corpus):
    data = load(tiny, corpus)
    assert loss_function(data) is cosine_distance
    net = models.build(f"hf:{tiny}", data)
    dense = evaluate(net, data)
    assert sorted(dense) == ["accuracy", "cosine", "loss"] and dense["accuracy"] is None
    assert 0 <= dense["loss"] < 1e-10  # zero up to float32 rounding
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
        x, y = data.test
        ref = F.cosine_similarity(net(x).double(), y.double(), dim=-1).mean()
    moved = evaluate(net, data, batch_size=4)
    assert moved["loss"] > 1e-3
    assert moved["cosine"] == pytest.approx(float(ref), abs=1e-6)
    assert moved["cosine"] == 1 - moved["loss"]
    config = TrainConfig(epochs=3, batch_size=4, optimizer="adam", lr=3e-3, schedule="constant")
    history = train_model(net, data, config).history  # the task trains like any other
    assert history[-1]["train_accuracy"] is None
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_a_model_of_another_reference_is_refused(tiny, corpus, tmp_path):
    other = hf_tiny.save_tiny_bert(tmp_path / "other", seed=1)
    data = load(tiny, corpus)
    with pytest.raises(PrunelabError, match="does not match the data's reference model"):
        models.build(f"hf:{other}", data)
    with pytest.raises(PrunelabError, match="reference=minilm"):
        models.build("minilm", data)


def test_bad_input_is_one_line(tiny, corpus, tmp_path, monkeypatch):
    def refused(needle: str, data_dir: Path = corpus, **options) -> None:
        options = {"reference": f"hf:{tiny}", **options}
        with pytest.raises(PrunelabError, match=needle) as info:
            datasets.load("sentences", data_dir=data_dir, **options)
        assert "\n" not in str(info.value) and str(info.value).startswith("sentences: ")

    refused("calibration must be a positive integer, got 0", calibration=0)
    refused("evaluation must be a positive integer", evaluation=-1)
    refused("max_tokens must be at least 3", max_tokens=2)
    refused("unknown option 'count'", count=3)
    refused("reference must be 'minilm' or 'hf:PATH'", reference="bert")
    refused(
        "gives 18 sentence.* need calibration \\+ evaluation = 31", calibration=25, evaluation=6
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("  \n")
    refused("no text in", tmp_path / "empty")
    (tmp_path / "none").mkdir()
    refused(r"no text in .* \(0 \.txt file", tmp_path / "none")
    refused("is not a directory", tmp_path / "missing")
    with pytest.raises(PrunelabError, match="does not exist") as info:
        datasets.load("sentences", data_dir=corpus, reference=f"hf:{tmp_path / 'nope'}",
                      calibration=4, evaluation=4)  # fmt: skip
    assert "\n" not in str(info.value)
    notok = tmp_path / "no-tokenizer"
    notok.mkdir()
    for name in ("config.json", "model.safetensors"):
        (notok / name).write_bytes((tiny / name).read_bytes())
    with pytest.raises(PrunelabError, match="no tokenizer.json"):
        datasets.load(
            "sentences", data_dir=corpus, reference=f"hf:{notok}", calibration=4, evaluation=4
        )
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(PrunelabError, match=r"pip install -e '\.\[transformers\]'"):
        datasets.load(
            "sentences", data_dir=corpus, reference=f"hf:{tiny}", calibration=4, evaluation=4
        )
