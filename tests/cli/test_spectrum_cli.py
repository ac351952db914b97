"""`prunelab spectrum --per-layer`: per-layer spectra in the table and --json; progress bars."""

import json
import sys

import pytest

from prunelab.cli import main

FAST = ["--iters", "6", "--runs", "2", "--samples", "64", "--per-layer"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("spectrum_cli") / "lenet"
    rc = main(
        ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--out", str(out)]
    )
    assert rc == 0
    return out


def test_per_layer_spectra_in_json_and_table(trained, capsys):
    assert main(["spectrum", str(trained), *FAST, "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert "Lanczos" not in captured.err  # never a bar under --json
    layers = res["layer_spectra"]
    assert list(layers) == list(res["layer_traces"]) == ["layers.0", "layers.2", "layers.4"]
    assert sum(v["dim"] for v in layers.values()) == res["dim"]
    for v in layers.values():
        assert v["top_eigenvalue"] >= v["min_ritz_value"]
        assert len(v["measure"]["runs"]) == 2 and v["measure"]["num_iters"] == 6
    assert res["files"]["layer_png"].endswith("layer_spectral_density.png")

    assert main(["spectrum", str(trained), *FAST]) == 0
    text = capsys.readouterr().out
    assert "per layer (diagonal blocks)" in text and "top eigenvalue" in text
    for name, v in layers.items():
        row = next(line for line in text.splitlines() if line.strip().startswith(name))
        assert str(v["dim"]) in row


def test_progress_bar_only_on_a_terminal_and_never_in_the_numbers(trained, capsys, monkeypatch):
    assert main(["spectrum", str(trained), *FAST, "--json"]) == 0
    quiet = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["spectrum", str(trained), *FAST, "--json"]) == 0  # --json: still no bar
    assert "Lanczos" not in capsys.readouterr().err
    assert main(["spectrum", str(trained), *FAST]) == 0
    assert "Lanczos" in capsys.readouterr().err  # a terminal: the Lanczos steps are shown
    monkeypatch.undo()
    assert main(["spectrum", str(trained), *FAST, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in again.items() if k != "files"} == {
        k: v for k, v in quiet.items() if k != "files"
    }


def test_limit_verify_progress_bar_on_a_terminal_only(trained, capsys, monkeypatch):
    cmd = ["limit", str(trained), "--method", "cosine", "--verify", "--bisect-steps", "2"]
    assert main([*cmd, "--json"]) == 0
    quiet = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main([*cmd, "--json"]) == 0
    captured = capsys.readouterr()
    assert "sparsities" not in captured.err
    assert json.loads(captured.out)["actual"] == quiet["actual"]
    assert main(cmd) == 0
    assert "sparsities" in capsys.readouterr().err  # grid points, then bisection
