"""A re-run loses nothing.

Foreign files and reports stay, the same command in and out of a terminal is one run,
stale temporaries of a killed write are cleaned, modes follow the umask.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from prunelab import _io, checkpoint

TRAIN = ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1"]


def test_rerun_of_train_keeps_reports_and_user_files(cli, tmp_path):
    out = tmp_path / "run"
    assert cli([*TRAIN, "--out", out])[0] == 0
    assert cli(["limit", out, "--method", "cosine"])[0] == 0
    (out / "NOTES.txt").write_text("mine")
    (out / "extra").mkdir()
    (out / "extra" / "plot.png").write_bytes(b"png")
    reports = sorted(p.relative_to(out) for p in (out / "report").rglob("*"))
    assert reports
    code, _, err = cli([*TRAIN, "--out", out])  # the same run again
    assert code == 0, err
    assert (out / "NOTES.txt").read_text() == "mine"
    assert (out / "extra" / "plot.png").read_bytes() == b"png"
    assert sorted(p.relative_to(out) for p in (out / "report").rglob("*")) == reports
    checkpoint.load(out)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_forced_other_run_replaces_only_the_checkpoint_files(cli, tmp_path):
    out = tmp_path / "run"
    assert cli([*TRAIN, "--out", out])[0] == 0
    (out / "NOTES.txt").write_text("mine")
    first = json.loads((out / "meta.json").read_text())["run_id"]
    assert cli([*TRAIN, "--lr", "0.0123", "--out", out])[0] == 2  # a different run: refused
    assert cli([*TRAIN, "--lr", "0.0123", "--out", out, "--force"])[0] == 0
    assert json.loads((out / "meta.json").read_text())["run_id"] != first
    assert (out / "NOTES.txt").read_text() == "mine"


def test_rerun_of_prune_keeps_reports(cli, ckpt, tmp_path):
    out = tmp_path / "p50"
    argv = ["prune", ckpt, "--sparsity", "0.5", "--out", out]
    assert cli(argv)[0] == 0
    assert cli(["score", out, "--criterion", "magnitude"])[0] == 0
    (out / "NOTES.txt").write_text("mine")
    assert cli(argv)[0] == 0
    assert (out / "report" / "scores" / "magnitude.safetensors").is_file()
    assert (out / "NOTES.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "argv",
    [
        [*TRAIN, "--out", "{out}"],
        ["prune", "{ckpt}", "--sparsity", "0.5", "--finetune-epochs", "1", "--out", "{out}"],
    ],
)
def test_same_command_in_and_out_of_a_terminal_is_the_same_run(
    cli, monkeypatch, ckpt, tmp_path, argv
):
    out = tmp_path / "run"
    argv = [a.format(out=out, ckpt=ckpt) for a in argv]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = cli(argv)  # interactive: with a progress bar
    assert code == 0, err
    interactive = json.loads((out / "meta.json").read_text())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    for again in (argv, [*argv, "--json"]):  # from a script, and for a machine
        code, _, err = cli(again)
        assert code == 0, err  # not refused as "a different run"
        assert json.loads((out / "meta.json").read_text())["run_id"] == interactive["run_id"]


KILLED_WRITE = """
import os, signal, sys
from prunelab import _io
with _io.atomic_directory(sys.argv[1]) as tmp:
    (tmp / "model.safetensors").write_bytes(b"x" * 100000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_write_is_cleaned_by_the_next_command_there(cli, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(out)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]
    assert len(left) == 1 and left[0].name.endswith(".tmp") and not out.exists()
    assert cli([*TRAIN, "--out", out])[0] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_cleaning_spares_a_write_still_in_progress_and_removes_old_ones(tmp_path):
    target = tmp_path / "meta.json"
    live = tmp_path / f".meta.json.{os.getpid()}@{_io._host_tag()}.abcdefgh.tmp"
    dead = tmp_path / f".meta.json.{2**22 + 7}@{_io._host_tag()}.abcdefgh.tmp"
    legacy = tmp_path / ".meta.json.k2j3h4g5.old"
    other = tmp_path / ".other.json.1@abcdef.abcdefgh.tmp"
    for p in (live, dead, legacy, other):
        p.write_text("x")
    os.utime(legacy, (0, 0))  # an older prunelab's leftover, untouched for a day
    _io.atomic_write_json(target, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, other.name, target.name]
    )


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755),
                                                              (0o027, 0o640, 0o750)])  # fmt: skip
def test_files_and_folders_follow_the_umask(cli, ckpt, tmp_path, mask, file_mode, dir_mode):
    before = os.umask(mask)
    try:
        assert cli([*TRAIN, "--out", tmp_path / "run"])[0] == 0
        assert cli(["limit", tmp_path / "run", "--method", "cosine"])[0] == 0
        assert cli(["prune", ckpt, "--sparsity", "0.5", "--out", tmp_path / "p"])[0] == 0
    finally:
        os.umask(before)
    for root in (tmp_path / "run", tmp_path / "p"):
        for p in [root, *root.rglob("*")]:
            want = dir_mode if p.is_dir() else file_mode
            assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))
