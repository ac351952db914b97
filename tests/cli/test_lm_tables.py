"""The CLI's tables for a language model: perplexity first, per-block density, N:M column."""

from __future__ import annotations

import re

CORPUS = "to be or not to be, that is the question. " * 60


def train_tiny_gpt(cli, root):
    """``prunelab train`` a gpt-tiny on a character corpus: (checkpoint, data flags, stdout)."""
    (root / "a.txt").write_text(CORPUS)
    data = ["--data-dir", root, "--data-option", "context=8", "--data-option", "tokens=char"]
    code, out, err = cli(
        ["train", "--model", "gpt-tiny", "--data", "text", *data, "--epochs", "1",
         "--out", root / "dense"]
    )  # fmt: skip
    assert code == 0, err
    return root / "dense", data, out


def test_prune_of_a_gpt_prints_perplexity_and_per_block_density(cli, tmp_path):
    dense, data, out = train_tiny_gpt(cli, tmp_path)
    pruned = tmp_path / "pruned"
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


def test_score_spectrum_and_bad_nm_on_a_gpt(cli, tmp_path):
    dense, data, _ = train_tiny_gpt(cli, tmp_path)
    code, out, err = cli(["score", dense, "--criterion", "wanda", "--samples", "16", "--json"])
    assert code == 0, err
    code, out, err = cli(["spectrum", dense, "--iters", "4", "--runs", "1", "--samples", "16"])
    assert code == 0, err
    before = sorted(p.name for p in tmp_path.iterdir())
    # N >= M, and M = 3 not dividing the input width 32: one line each, exit 2, nothing written
    for nm, word in (("4:4", "4:4"), ("2:3", "2:3")):
        code, out, err = cli(
            ["prune", dense, "--sparsity", "0.5", "--nm", nm, "--out", tmp_path / "bad"]
        )  # fmt: skip
        assert code == 2 and len(err.strip().splitlines()) == 1 and word in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == before
