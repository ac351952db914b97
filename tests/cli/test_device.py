"""``--device``: every command takes one; ``cuda`` without a GPU is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunelab.cli import main
from prunelab.device import resolve_device
from prunelab.errors import PrunelabError

COMMANDS = ("eval", "spectrum", "limit", "score")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "fc"
    argv = ["train", "--model", "lenet300", "--data", "digits", "--epochs", "0", "--out", str(out)]
    assert main([*argv, "--device", "auto"]) == 0
    return out


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(None)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(PrunelabError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("command", COMMANDS)
def test_cuda_without_a_gpu_is_one_line(ckpt, command, capsys, tmp_path):
    extra = ["--criterion", "magnitude"] if command == "score" else []
    before = sorted(p.name for p in ckpt.iterdir())
    assert main([command, str(ckpt), *extra, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA GPU is visible" in err
    assert sorted(p.name for p in ckpt.iterdir()) == before
    argv = ["prune", str(ckpt), "--sparsity", "0.5", "--out", str(tmp_path / "p")]
    assert main([*argv, "--device", "cuda"]) == 2 and not (tmp_path / "p").exists()


def test_auto_runs_where_it_can(ckpt, capsys):
    assert main(["eval", str(ckpt), "--device", "auto", "--json"]) == 0
    assert '"accuracy"' in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_sweep_and_demo_refuse_cuda_without_a_gpu_before_writing(tmp_path, capsys):
    tiny = str(Path(__file__).resolve().parents[2] / "experiments" / "tiny.toml")
    assert main(["sweep", tiny, "--out", str(tmp_path / "s"), "--device", "cuda"]) == 2
    assert main(["demo", "--out", str(tmp_path / "d"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("no CUDA GPU is visible" in line for line in err)
    assert not (tmp_path / "s").exists() and not (tmp_path / "d").exists()
