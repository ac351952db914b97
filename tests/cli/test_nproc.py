"""``--nproc 2`` (torchrun, gloo) prints the numbers one process prints; rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunelab.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.dist


def _cli(*argv) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "prunelab", *map(str, argv), "--json"],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nproc") / "lenet"
    argv = ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--out", out]
    assert main([str(a) for a in argv]) == 0
    return out


@pytest.mark.timeout(600)
def test_two_processes_print_the_numbers_of_one(ckpt):
    common = ["--samples", "128", "--iters", "6", "--runs", "2"]
    one = _cli("spectrum", ckpt, *common)
    two = _cli("spectrum", ckpt, *common, "--nproc", "2")
    assert two["top_eigenvalue"] == pytest.approx(one["top_eigenvalue"], rel=1e-5)
    assert two["trace"]["value"] == pytest.approx(one["trace"]["value"], rel=1e-5)
    assert set(two["files"]) == set(one["files"])  # rank 0 wrote the report
    common = ["--method", "gaussian-width", "--samples", "128", "--iters", "6", "--runs", "2",
              "--seeds", "1"]  # fmt: skip
    one = _cli("limit", ckpt, *common)["rows"][0]
    two = _cli("limit", ckpt, *common, "--nproc", "2")["rows"][0]
    assert two["prediction"] == pytest.approx(one["prediction"], abs=1e-6)


def test_nproc_zero_is_refused(ckpt, capsys):
    assert main(["spectrum", str(ckpt), "--nproc", "0"]) == 2
    assert "nproc must be an integer >= 1" in capsys.readouterr().err
