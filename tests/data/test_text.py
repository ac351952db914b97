"""The ``text`` dataset: a folder of .txt files or the fortunes package, deterministic windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunelab import data as datasets
from prunelab.data import text
from prunelab.errors import PrunelabError

CORPUS = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "a.txt").write_text(CORPUS, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("pack my box with five dozen liquor jugs. " * 30)
    (tmp_path / "ignored.md").write_text("not a .txt file")
    return tmp_path


def test_windows_are_next_token_pairs_and_the_split_is_deterministic(corpus):
    a = datasets.load("text", seed=0, data_dir=corpus, context=16)
    b = datasets.load("text", seed=0, data_dir=corpus, context=16)
    assert a.task == "language-model" and a.sequence and a.input_shape == (16,)
    assert a.num_classes == 256 and a.output_dim == 256
    for (xa, ya), (xb, yb) in zip((a.train, a.test), (b.train, b.test), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.dtype == torch.long and xa.shape == ya.shape
        assert torch.equal(xa[:, 1:], ya[:, :-1])  # y is x shifted by one token
    stream = (corpus / "a.txt").read_bytes().strip() + b"\n\n"
    stream += (corpus / "sub" / "b.txt").read_bytes().strip()
    n = (len(stream) - 1) // 16
    assert a.info["windows"]["all"] == n
    assert len(a.train[0]) + len(a.test[0]) == n
    assert len(a.test[0]) == round(0.1 * n)
    # every window is a slice of the stream, and no window is in both splits
    ids = np.frombuffer(stream, dtype=np.uint8)
    starts = {bytes(ids[i * 16 : i * 16 + 16]): i for i in range(n)}
    tr = {starts[bytes(x.numpy().astype(np.uint8))] for x in a.train[0]}
    te = {starts[bytes(x.numpy().astype(np.uint8))] for x in a.test[0]}
    assert tr.isdisjoint(te) or len(set(starts)) < n  # repeated text may repeat windows
    c = datasets.load("text", seed=1, data_dir=corpus, context=16)
    assert not torch.equal(a.test[0], c.test[0])


def test_char_tokens_and_the_unigram_baseline(corpus):
    d = datasets.load("text", data_dir=corpus, context=8, tokens="char")
    chars = d.info["chars"]
    assert (
        d.num_classes
        == len(chars)
        == len(set(CORPUS + "pack my box with five dozen liquor jugs.\n"))
    )
    counts = np.bincount(d.train[1].reshape(-1).numpy(), minlength=d.num_classes) + 1.0
    logp = np.log(counts / counts.sum())
    want = math.exp(-logp[d.test[1].reshape(-1).numpy()].mean())
    assert d.info["unigram_perplexity"] == pytest.approx(want)
    assert 1 < want < d.num_classes


def test_subsamples_are_seeded_and_capped(corpus):
    d = datasets.load("text", data_dir=corpus, context=8, subsample_train=50, subsample_test=5)
    assert len(d.train[0]) == 50 and len(d.test[0]) == 5
    e = datasets.load("text", data_dir=corpus, context=8, subsample_train=50, subsample_test=5)
    assert torch.equal(d.train[0], e.train[0])
    full = datasets.load("text", data_dir=corpus, context=8, subsample_train=None)
    assert len(full.train[0]) == full.info["windows"]["all"] - len(full.test[0])


@pytest.mark.parametrize(
    ("setup", "options", "message"),
    [
        ("empty", {}, "no text in"),
        ("blank", {}, "no text in"),
        ("missing", {}, "is not a directory"),
        ("ok", {"context": 0}, "context must be"),
        ("ok", {"tokens": "word"}, "unknown tokens 'word'"),
        ("ok", {"val_fraction": 1.0}, "val_fraction must be in"),
        ("ok", {"context": 5000}, "need at least one per split"),
        ("ok", {"colour": 1}, "unknown option 'colour'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, setup, options, message):
    folder = tmp_path / "c"
    if setup != "missing":
        folder.mkdir()
    if setup == "blank":
        (folder / "a.txt").write_text("  \n\n")
    if setup == "ok":
        (folder / "a.txt").write_text(CORPUS)
    with pytest.raises(PrunelabError, match=message) as info:
        datasets.load("text", data_dir=folder, **options)
    assert "\n" not in str(info.value)


def test_no_corpus_names_the_package_and_the_flag(monkeypatch, tmp_path):
    monkeypatch.setattr(text, "FORTUNES_DIR", tmp_path / "nope")
    with pytest.raises(PrunelabError, match="install the Debian package fortunes.*--data-dir"):
        datasets.load("text")


@pytest.mark.skipif(not text.FORTUNES_DIR.is_dir(), reason="Debian package fortunes not installed")
def test_the_fortunes_package_is_found_without_a_directory():
    d = datasets.load("text", max_bytes=200_000)
    assert d.info["directory"] == str(text.FORTUNES_DIR) and d.info["files"] > 10
    x = d.train[0]
    assert not (x == ord("%")).all(dim=1).any()
    assert d.info["unigram_perplexity"] > 10
