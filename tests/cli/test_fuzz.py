"""A table of bad command lines across every command (issue 14's fuzz test).

Each one exits 2 with exactly one line on stderr, no traceback, and leaves the disk as it
was; under ``--json`` stdout holds the error object.
"""

from __future__ import annotations

import pytest

CK = "{ckpt}"
T = "{tmp}"
TRAIN = ["train", "--model", "fc5", "--data", "digits"]

BAD = [
    # top level
    [],
    ["nope"],
    ["--bogus"],
    # train
    ["train"],
    [*TRAIN],
    ["train", "--data", "digits", "--out", f"{T}/a"],
    [*TRAIN, "--out", f"{T}/a", "--epochs", "-1"],
    [*TRAIN, "--out", f"{T}/a", "--epochs", "two"],
    [*TRAIN, "--out", f"{T}/a", "--lr", "fast"],
    [*TRAIN, "--out", f"{T}/a", "--lr", "-1"],
    [*TRAIN, "--out", f"{T}/a", "--lr", "nan"],
    [*TRAIN, "--out", f"{T}/a", "--batch-size", "0"],
    [*TRAIN, "--out", f"{T}/a", "--optimizer", "rmsprop"],
    [*TRAIN, "--out", f"{T}/a", "--seed", "x"],
    [*TRAIN, "--out", f"{T}/a", "--data-option", "nope=1"],
    [*TRAIN, "--out", f"{T}/a", "--data-option", "=1"],
    [*TRAIN, "--out", f"{T}/a", "--data-option", "test_fraction=2"],
    [*TRAIN, "--out", f"{T}/a", "--data-dir", T],
    [*TRAIN, "--out", f"{T}/a", "--weights", f"{T}/missing.pt"],
    [*TRAIN, "--out", f"{T}/a", "--weights", f"{T}/file.txt"],
    [*TRAIN, "--out", f"{T}/file.txt"],
    [*TRAIN, "--out", CK],
    ["train", "--model", "no.such.module:make", "--data", "digits", "--out", f"{T}/a"],
    ["train", "--model", "fc5", "--data", "imagenet", "--out", f"{T}/a"],
    ["train", "--model", "fc5", "--data", "mnist", "--data-dir", f"{T}/none", "--out", f"{T}/a"],
    # eval
    ["eval"],
    ["eval", f"{T}/missing"],
    ["eval", f"{T}/file.txt"],
    ["eval", T],
    ["eval", CK, "--split", "val"],
    ["eval", CK, "--data-option", "nope=1"],
    # prune
    ["prune", CK, "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5"],
    ["prune", CK, "--sparsity", "1", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "nan", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5", "--criterion", "nope", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5", "--hparam", "bogus=1", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5", "--hparam", "noequals", "--out", f"{T}/p"],
    [
        "prune",
        CK,
        "--sparsity",
        "0.5",
        "--criterion",
        "snip",
        "--curvature",
        "exact",
        "--out",
        f"{T}/p",
    ],
    [
        "prune",
        CK,
        "--sparsity",
        "0.5",
        "--criterion",
        "obd",
        "--curvature",
        "magic",
        "--out",
        f"{T}/p",
    ],
    ["prune", CK, "--sparsity", "0.5", "--probes", "0", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5", "--steps", "0", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5", "--finetune-epochs", "-1", "--out", f"{T}/p"],
    ["prune", f"{T}/missing", "--sparsity", "0.5", "--out", f"{T}/p"],
    ["prune", CK, "--sparsity", "0.5", "--out", CK],
    ["prune", CK, "--sparsity", "0.5", "--data-option", "verify_counts=false", "--out", f"{T}/p"],
    # spectrum
    ["spectrum"],
    ["spectrum", f"{T}/missing"],
    ["spectrum", CK, "--iters", "0"],
    ["spectrum", CK, "--runs", "-3"],
    ["spectrum", CK, "--operator", "laplacian"],
    ["spectrum", CK, "--data-option", "nope=1"],
    # limit
    ["limit", f"{T}/missing"],
    ["limit", CK, "--method", "astrology"],
    ["limit", CK, "--samples", "zero"],
    ["limit", CK, "--data-dir", T],
    # score
    ["score", CK],
    ["score", CK, "--criterion", "nope"],
    ["score", CK, "--criterion", "magnitude", "--hparam", "bogus=1"],
    ["score", CK, "--criterion", "snip", "--samples", "0"],
    ["score", f"{T}/missing", "--criterion", "magnitude"],
    # sweep
    ["sweep"],
    ["sweep", f"{T}/missing.toml"],
    ["sweep", f"{T}/bad.toml", "--out", f"{T}/s"],
    ["sweep", f"{T}/unknown.toml", "--out", f"{T}/s"],
    ["sweep", f"{T}/bad.toml", "--workers", "-1"],
    # report
    ["report"],
    ["report", f"{T}/missing"],
    ["report", T],
    ["report", f"{T}/file.txt"],
    # demo
    ["demo", "--epochs", "-1"],
    ["demo", "--epochs", "many"],
    ["demo", "--workers", "x"],
    ["demo", "--seed", "0.5"],
]


def test_the_table_is_large_and_covers_every_command():
    commands = {argv[0] for argv in BAD if argv and not argv[0].startswith("-")}
    every = {"train", "eval", "prune", "spectrum", "limit", "score", "sweep", "report", "demo"}
    assert every <= commands
    assert len(BAD) >= 50 and len({tuple(a) for a in BAD}) == len(BAD)


@pytest.fixture
def place(tmp_path):
    (tmp_path / "file.txt").write_text("not a checkpoint")
    (tmp_path / "bad.toml").write_text("x = [\n")
    (tmp_path / "unknown.toml").write_text('name = "t"\nbogus = 1\n')
    return tmp_path


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a)[:60] or "(none)")
def test_bad_command_line(cli, disk, ckpt, place, argv):
    argv = [a.format(ckpt=ckpt, tmp=place) for a in argv]
    before = disk(place, ckpt)
    code, out, err = cli(argv)
    assert code == 2, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("prunelab"), err
    assert disk(place, ckpt) == before


@pytest.mark.parametrize("argv", BAD[3:], ids=lambda a: " ".join(a)[:60])
def test_bad_command_line_under_json_is_a_json_object(cli, ckpt, place, argv):
    import json

    argv = [a.format(ckpt=ckpt, tmp=place) for a in argv] + ["--json"]
    code, out, err = cli(argv)
    assert code == 2
    assert json.loads(out) == {"error": err.strip(), "kind": json.loads(out)["kind"]}
