"""An ``hf:PATH`` encoder through the CLI: import, score, prune (LLM criteria, row, 2:4), spectrum.

A tiny random BERT stands in for MiniLM (same code path; ``tests/models/test_hf.py`` loads
the real one). Bad input is one line, exit 2, and writes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import hf_tiny
from prunelab import checkpoint
from prunelab.cli import main

pytest.importorskip("transformers")  # the extra; `make test` installs it


def options(model: str) -> list[str]:
    pairs = [f"reference={model}", "calibration=8", "evaluation=6", "max_tokens=16"]
    return [a for p in pairs for a in ("--data-option", p)]


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """A private copy of a checkpoint's files (commands that write reports into it)."""
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("hfcli")
    return f"hf:{hf_tiny.save_tiny_bert(root / 'bert')}", hf_tiny.write_corpus(root / "corpus")


@pytest.fixture(scope="module")
def imported(tiny, tmp_path_factory) -> Path:
    """``prunelab train --epochs 0``: the pretrained encoder as a checkpoint (an import)."""
    model, corpus = tiny
    out = tmp_path_factory.mktemp("hfcli-ck") / "ck"
    argv = ["train", "--model", model, "--data", "sentences", "--data-dir", corpus,
            *options(model), "--epochs", "0", "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out


def test_the_import_is_the_pretrained_model(imported, tiny):
    meta = json.loads((imported / "meta.json").read_text())
    assert meta["model"]["name"] == tiny[0] and meta["data"]["reference"] == tiny[0]
    dense = meta["metrics"]["dense"]
    assert dense["accuracy"] is None and 0 <= dense["loss"] < 1e-10
    assert dense["cosine"] == 1 - dense["loss"]
    model, mask, _ = checkpoint.load(imported)
    assert mask.total == 2 * (4 * 16 * 16 + 2 * 16 * 32)


@pytest.mark.parametrize(
    ("criterion", "extra", "structure"),
    [
        ("magnitude", [], "unstructured"),
        ("wanda", ["--scope", "row"], "unstructured"),
        ("sparsegpt", ["--nm", "2:4"], "2:4"),
        ("magnitude", ["--nm", "2:4"], "2:4"),
    ],
)
def test_prune_with_the_llm_criteria(cli, imported, tmp_path, criterion, extra, structure):
    out = tmp_path / "pruned"
    code, stdout, err = cli(["prune", imported, "--criterion", criterion, "--sparsity", "0.5",
                             *extra, "--out", out, "--json"])  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)  # machine-readable
    model, mask, meta = checkpoint.load(out)
    assert mask.nnz == mask.total // 2
    if structure == "2:4":  # exactly two of every four consecutive inputs kept
        for m in mask.state_dict().values():
            assert (m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all()
    if "--scope" in extra:
        for m in mask.state_dict().values():
            assert (m.sum(1) == m.shape[1] // 2).all()
    code, stdout, err = cli(["eval", out, "--json"])
    assert code == 0, err
    assert "cosine" in stdout


@pytest.mark.parametrize(
    ("criterion", "hparams"),
    [("taylor1", []), ("obd", ["--hparam", "curvature=empirical-fisher"])],
)
def test_gradient_scores_at_the_dense_model_are_deterministic(
    cli, imported, tmp_path, criterion, hparams
):
    """1 − cos has a zero gradient at the dense model: these are rounding noise or zero."""
    written = []
    for i in range(2):
        copy = copy_checkpoint(imported, tmp_path / f"ck{i}")
        code, _, err = cli(["score", copy, "--criterion", criterion, *hparams])
        assert code == 0, err
        written.append(load_file(copy / "report" / "scores" / f"{criterion}.safetensors"))
    for name, a in written[0].items():
        assert (a == written[1][name]).all(), name
    if all(float(a.abs().max()) < 1e-6 for a in written[0].values()):
        return  # rounding noise (or exact zeros): no information, as the README says
    # obd's exactly-zero scores are ordered by |θ| (its tie_break): magnitude ranking
    assert criterion == "obd"
    model, _, _ = checkpoint.load(imported)
    theta = {n: p.detach().abs() for n, p in model.named_parameters() if n in written[0]}
    top = max(float(t.max()) for t in theta.values())
    for name, a in written[0].items():
        torch.testing.assert_close(a, 0.5 * theta[name] / top)


def test_spectrum_runs_on_an_hf_encoder(cli, imported, tmp_path):
    copy = copy_checkpoint(imported, tmp_path / "ck")
    code, stdout, err = cli(["spectrum", copy, "--iters", "3", "--runs", "1", "--json"])
    assert code == 0, err
    assert json.loads(stdout)


def test_limit_on_an_hf_encoder_uses_the_minimum_cosine(cli, imported, tmp_path):
    copy = copy_checkpoint(imported, tmp_path / "ck")
    argv = ["limit", copy, "--method", "quadratic", "--verify", "--min-cosine", "0.99",
            "--samples", "8", "--grid", "0.1", "0.3", "0.5", "0.7", "--bisect-steps", "2",
            "--json"]  # fmt: skip
    code, stdout, err = cli(argv)
    assert code == 0, err
    out = json.loads(stdout)
    actual = out["actual"]
    assert actual["task"] == "embedding" and abs(out["tolerance"]["eps"] - 0.01) < 1e-12
    # the rule as stated, mean(1 - cos) <= dense + 0.01: the limit passes, all above it fail
    limit = actual["dense_loss"] + 0.01
    curve = {p: loss for p, _, loss in actual["curve"]}
    assert curve[actual["p_actual"]] <= limit
    assert all(loss > limit for p, loss in curve.items() if p > actual["p_actual"])
    assert out["estimates"]["quadratic"]["eps"] == out["tolerance"]["eps"]


def one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_one_line_and_writes_nothing(cli, disk, tiny, tmp_path, monkeypatch):
    model, corpus = tiny
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "readme.txt").write_text("hello")
    cases = [
        (f"hf:{tmp_path / 'missing'}", corpus, [], "does not exist"),
        (f"hf:{tmp_path / 'notmodel'}", corpus, [], "no config.json"),
        (model, empty, [], "no text in"),
        (model, corpus, ["--data-option", "calibration=0"], "calibration must be a positive"),
    ]
    for name, folder, extra, needle in cases:
        before = disk(tmp_path)
        argv = ["train", "--model", name, "--data", "sentences", "--data-dir", folder,
                *options(name), *extra, "--epochs", "0", "--out", tmp_path / "out"]  # fmt: skip
        code, _, err = cli(argv)
        assert needle in one_line(code, err)
        assert disk(tmp_path) == before  # nothing half-written
    monkeypatch.setitem(sys.modules, "transformers", None)  # the extra "not installed"
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    argv = ["train", "--model", model, "--data", "sentences", "--data-dir", corpus,
            *options(model), "--epochs", "0", "--out", tmp_path / "out"]  # fmt: skip
    before = disk(tmp_path)
    code, _, err = cli(argv)
    assert "pip install -e '.[transformers]'" in one_line(code, err)
    assert disk(tmp_path) == before
