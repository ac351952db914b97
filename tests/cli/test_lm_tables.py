"""The CLI's tables for a language model: perplexity first, per-block density, N:M column."""

from __future__ import annotations

import re

CORPUS = "to be or not to be, that is the question. " * 60


def test_prune_of_a_gpt_prints_perplexity_and_per_block_density(cli, tmp_path):
    (tmp_path / "a.txt").write_text(CORPUS)
    dense, pruned = tmp_path / "dense", tmp_path / "pruned"
    data = ["--data-dir", tmp_path, "--data-option", "context=8", "--data-option", "tokens=char"]
    code, out, err = cli(
        ["train", "--model", "gpt-tiny", "--data", "text", *data, "--epochs", "1",
         "--out", dense]
    )  # fmt: skip
    assert code == 0, err
    assert re.search(r"test perplexity [\d.]+ \(loss [\d.]+ nats", out)
    code, out, err = cli(
        ["prune", dense, "--criterion", "wanda", "--sparsity", "0.5", "--nm", "2:4",
         "--out", pruned, *data]
    )  # fmt: skip
    assert code == 0, err
    stage, blocks = out.split("\n\n")[1:3]
    assert stage.split("\n")[0].split() == ["stage", "perplexity", "loss", "accuracy"]
    header, _, *rows = blocks.strip().split("\n")
    assert header.split() == ["block", "layers", "kept", "total", "density", "nm"]
    # gpt-tiny: two blocks of q, k, v, out (32x32) and fc, proj (32x128): 12,288 weights each
    assert [r.split() for r in rows] == [
        [f"blocks.{i}", "6", "6144", "12288", "0.5", "2:4"] for i in range(2)
    ]
