"""Every user mistake or fault ends in one line and exit 2, with nothing written (issue 14).

Read-only folders, a corrupt ``meta.json``, a user model that does not fit the data or
fails later, an ``OSError`` from the disk, Ctrl-C, ``--data-dir`` where no files are
read, and a trace from one probe.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from prunelab import _io
from prunelab.experiments import jobs

TRAIN = ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1"]


def one_line(code: int, err: str, expected_code: int = 2) -> str:
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        [*TRAIN, "--out", "{ro}/run"],
        ["prune", "{ckpt}", "--sparsity", "0.5", "--out", "{ro}/pruned"],
        ["prune", "{ckpt}", "--sparsity", "0.5", "--out", "{ro}/deeper/pruned"],
    ],
)
def test_read_only_parent_of_out(cli, disk, read_only, ckpt, tmp_path, argv):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    before = disk(tmp_path, ckpt)
    code, _, err = cli([a.format(ro=ro, ckpt=ckpt) for a in argv])
    line = one_line(code, err)
    assert "read-only" in line and str(ro) in line
    assert disk(tmp_path, ckpt) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["spectrum", "{ckpt}", "--iters", "3", "--runs", "1", "--samples", "50"],
        ["limit", "{ckpt}", "--method", "cosine"],
        ["score", "{ckpt}", "--criterion", "magnitude"],
        ["score", "{ckpt}", "--criterion", "snip", "--samples", "50"],
    ],
)
def test_read_only_checkpoint_for_reports(cli, disk, read_only, ckpt_copy, argv):
    read_only(ckpt_copy)
    before = disk(ckpt_copy)
    code, _, err = cli([a.format(ckpt=ckpt_copy) for a in argv])
    line = one_line(code, err)
    assert "read-only" in line and "report" in line
    assert disk(ckpt_copy) == before


def test_an_oserror_anywhere_is_one_line(cli, disk, monkeypatch, tmp_path):
    """Past every early check, the disk still fails: the CLI tells it at one place."""

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(_io.tempfile, "mkdtemp", full)
    before = disk(tmp_path)
    code, out, err = cli([*TRAIN, "--out", tmp_path / "run", "--json"])
    line = one_line(code, err)
    assert "No space left on device" in line and line.startswith("prunelab train: error:")
    assert json.loads(out) == {"error": line, "kind": "os"}
    assert disk(tmp_path) == before


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_real_read_only_file_system(ckpt, tmp_path):
    """The same refusals on a real read-only mount (where mount namespaces are allowed)."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here")
    ro, ck = tmp_path / "ro", tmp_path / "ck"
    ro.mkdir()
    shutil.copytree(ckpt, ck)
    exe = [sys.executable, "-c", "import sys; from prunelab.cli import main; sys.exit(main())"]
    cmd = " ".join(exe[:2]) + f' "{exe[2]}"'
    script = textwrap.dedent(f"""
        set -u
        mount -t tmpfs -o ro tmpfs {ro} && mount --bind {ck} {ck} &&
        mount -o remount,ro,bind {ck} || exit 99
        for args in "train --model fc5 --data digits --epochs 1 --out {ro}/x" \\
                    "prune {ck} --sparsity 0.5 --out {ro}/p" \\
                    "limit {ck} --method cosine" "score {ck} --criterion magnitude"; do
            {cmd} $args 2>>{tmp_path}/err.txt; echo $? >> {tmp_path}/codes.txt
        done
    """)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if done.returncode == 99:
        pytest.skip("cannot mount here")
    assert (tmp_path / "codes.txt").read_text().split() == ["2"] * 4
    lines = (tmp_path / "err.txt").read_text().strip().splitlines()
    assert len(lines) == 4 and all("read-only" in line for line in lines), lines
    assert sorted(p.name for p in ck.iterdir()) == sorted(p.name for p in ckpt.iterdir())


def test_meta_prunable_with_an_unknown_key(cli, disk, ckpt_copy, tmp_path):
    meta_file = ckpt_copy / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["prunable"]["include_norm"] = True
    meta_file.write_text(json.dumps(meta))
    before = disk(tmp_path)
    for argv in (
        ["eval", ckpt_copy],
        ["prune", ckpt_copy, "--sparsity", "0.5", "--out", tmp_path / "p"],
    ):
        line = one_line(*cli(argv)[::2])
        assert "unknown key 'include_norm'" in line and "include_bias" in line
    assert disk(tmp_path) == before


def test_meta_prunable_value_must_be_a_boolean(cli, ckpt_copy):
    meta_file = ckpt_copy / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["prunable"]["include_bias"] = "yes"
    meta_file.write_text(json.dumps(meta))
    line = one_line(*cli(["eval", ckpt_copy])[::2])
    assert "include_bias must be true or false" in line


USER_MODELS = '''
import torch
from torch import nn


def misfit(input_shape, output_dim):
    """Its last layer expects 10 features; the one before gives 32."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(10, output_dim))


def wrong_width(input_shape, output_dim):
    """Five outputs for ten classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))


class Picky(nn.Module):
    """Fits a batch of two (the fit check) but not a training batch."""

    def forward(self, x):
        return x if x.shape[0] <= 2 else x[:, :10]


def later(input_shape, output_dim):
    return nn.Sequential(nn.Flatten(), Picky(), nn.Linear(64, output_dim))
'''


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "cli_user_models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    yield "cli_user_models"
    sys.modules.pop("cli_user_models", None)


@pytest.mark.parametrize(
    ("factory", "needles"),
    [
        (
            "misfit",
            [
                "'cli_user_models:misfit'",
                "(2, 1, 8, 8)",
                "layer '3'",
                "Linear(in_features=10",
                "mat1 and mat2",
            ],
        ),
        (
            "wrong_width",
            [
                "'cli_user_models:wrong_width'",
                "(2, 5)",
                "targets of shape (2,)",
                "10 outputs expected",
            ],
        ),
        (
            "later",
            [
                "'cli_user_models:later'",
                "(64, 1, 8, 8)",
                "layer '2'",
                "Linear(in_features=64",
                "mat1 and mat2",
            ],
        ),
    ],
)
def test_user_model_that_does_not_fit(cli, disk, user_models, tmp_path, factory, needles):
    argv = [
        "train",
        "--model",
        f"{user_models}:{factory}",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--out",
        tmp_path / "run",
        "--json",
    ]
    before = disk(tmp_path)
    code, out, err = cli(argv)
    line = one_line(code, err)
    for needle in needles:
        assert needle in line, line
    assert json.loads(out)["kind"] == "model"
    assert disk(tmp_path) == before


def test_a_bug_in_prunelab_still_shows_its_traceback(cli, monkeypatch, tmp_path):
    """Only the user's model, the disk and Ctrl-C are told in one line; a bug is not hidden."""

    def bug(*a, **k):
        raise ZeroDivisionError("prunelab bug")

    monkeypatch.setattr(jobs, "train_job", bug)
    with pytest.raises(ZeroDivisionError):
        cli([*TRAIN, "--out", tmp_path / "run"])


def test_ctrl_c_is_one_line_and_writes_nothing(cli, disk, monkeypatch, tmp_path):
    from prunelab.experiments.jobs import train as train_module

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_model", interrupted)
    before = disk(tmp_path)
    code, out, err = cli([*TRAIN, "--out", tmp_path / "run", "--json"])
    assert one_line(code, err, expected_code=130) == "prunelab train: interrupted"
    assert json.loads(out) == {"error": "prunelab train: interrupted", "kind": "interrupted"}
    assert disk(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        [*TRAIN, "--data-dir", "{tmp}", "--out", "{tmp}/run"],
        [
            "train",
            "--model",
            "fc5",
            "--data",
            "synthetic-linear",
            "--data-dir",
            "{tmp}",
            "--out",
            "{tmp}/run",
        ],
        ["eval", "{ckpt}", "--data-dir", "{tmp}"],
        ["prune", "{ckpt}", "--sparsity", "0.5", "--data-dir", "{tmp}", "--out", "{tmp}/p"],
    ],
)
def test_data_dir_is_refused_where_no_files_are_read(cli, disk, ckpt, tmp_path, argv):
    before = disk(tmp_path)
    line = one_line(*cli([a.format(tmp=tmp_path, ckpt=ckpt) for a in argv])[::2])
    assert "--data-dir" in line and "would be ignored" in line
    assert disk(tmp_path) == before


def test_trace_from_one_probe_says_it_has_no_standard_error(cli, ckpt_copy):
    code, out, err = cli(["spectrum", ckpt_copy, "--iters", "4", "--runs", "1", "--samples", "60"])
    assert code == 0, err
    assert "nan" not in out
    assert "(one probe: no standard error)" in out
    code, out, _ = cli(["spectrum", ckpt_copy, "--iters", "4", "--runs", "2", "--samples", "60"])
    assert code == 0 and "(s.e.)" in out and "no standard error" not in out


def test_model_failure_reads_a_plain_traceback():
    """The one-line description works on any traceback through a user model."""
    import torch
    from torch import nn

    from prunelab._model_errors import model_failure

    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(2, 1))
    model.prunelab_spec = {"name": "pkg.mod:net", "input_shape": [4], "output_dim": 1}
    try:
        model(torch.zeros(5, 4))
    except RuntimeError as exc:
        line = model_failure(exc)
    assert line.startswith("model 'pkg.mod:net' failed on a batch of shape (5, 4) in layer '1'")
    model.prunelab_spec = {"name": "lenet300", "input_shape": [4], "output_dim": 1}
    try:
        model(torch.zeros(5, 4))
    except RuntimeError as exc:
        assert model_failure(exc) is None  # a built-in model's failure is prunelab's bug
