"""``--json`` is strict JSON (no NaN), errors are JSON too, and a closed pipe ends quietly."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import pytest

from prunelab.cli._common import finite_json


def strict(text: str):
    def refuse(token):
        raise AssertionError(f"non-JSON number {token} in --json output")

    return json.loads(text, parse_constant=refuse)


def test_nan_becomes_null_and_is_named(cli, ckpt_copy):
    code, out, err = cli(
        ["spectrum", ckpt_copy, "--iters", "4", "--runs", "1", "--samples", "60", "--json"]
    )
    assert code == 0, err
    payload = strict(out)
    assert payload["trace"]["stderr"] is None and math.isfinite(payload["trace"]["value"])
    assert payload["nonfinite"]["trace.stderr"] == "nan"


def test_finite_payloads_are_unchanged():
    payload = {"a": [1, 2.5, {"b": True}], "c": None, "d": "nan"}
    assert finite_json(payload) == (payload, {})
    clean, found = finite_json({"x": [float("inf"), -float("inf")], "y": 1})
    assert clean == {"x": [None, None], "y": 1}
    assert found == {"x[0]": "inf", "x[1]": "-inf"}


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["eval", "{tmp}/nowhere", "--json"], "input"),
        (["prune", "{ckpt}", "--sparsity", "2", "--out", "{tmp}/p", "--json"], "usage"),
        (["train", "--model", "fc5", "--json"], "usage"),
        (["score", "{ckpt}", "--criterion", "nope", "--json"], "input"),
    ],
)
def test_an_error_under_json_is_an_object_on_stdout(cli, ckpt, tmp_path, argv, kind):
    code, out, err = cli([a.format(tmp=tmp_path, ckpt=ckpt) for a in argv])
    assert code == 2
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err
    assert strict(out) == {"error": line, "kind": kind}


def test_without_json_an_error_prints_nothing_on_stdout(cli, tmp_path):
    code, out, err = cli(["eval", tmp_path / "nowhere"])
    assert code == 2 and out == "" and "does not exist" in err


class ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        return self._fd


def test_a_closed_pipe_in_process_is_quiet(ckpt, monkeypatch, capfd):
    from prunelab.cli import EXIT_PIPE, main

    pipe = ClosedPipe()
    pipe._fd = os.dup(1)
    monkeypatch.setattr(sys, "stdout", pipe)
    try:
        assert main(["eval", str(ckpt), "--json"]) == EXIT_PIPE
    finally:
        os.close(pipe._fd)
    assert capfd.readouterr().err == ""


def test_a_closed_pipe_in_a_real_process_is_quiet(ckpt):
    """``prunelab eval CKPT --json | head -0``: the reader is gone before the first byte."""
    read, write = os.pipe()
    os.close(read)
    code = "import sys; from prunelab.cli import main; sys.exit(main())"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, "eval", str(ckpt), "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141
