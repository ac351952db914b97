"""``--data-option KEY=VALUE`` reaches the dataset loader from every command that loads data."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from prunelab.cli._common import parse_data_options


def test_train_passes_the_option_and_records_it(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli(
        [
            "train",
            "--model",
            "fc5",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--data-option",
            "test_fraction=0.5",
            "--out",
            out,
        ]
    )
    assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["data"]["test_fraction"] == 0.5
    assert cli(["eval", out])[0] == 0


@pytest.fixture
def loads(monkeypatch):
    """The options every dataset load of the job layer received."""
    from prunelab.experiments.jobs import data as job_data

    seen, real = [], job_data.datasets.load

    def spy(name, seed=0, data_dir=None, **options):
        seen.append(options)
        return real(name, seed=seed, data_dir=data_dir, **options)

    monkeypatch.setattr(job_data.datasets, "load", spy)
    job_data._CACHE.clear()
    return seen


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "{ckpt}"],
        ["prune", "{ckpt}", "--sparsity", "0.5", "--out", "{tmp}/p"],
        ["spectrum", "{ckpt}", "--iters", "3", "--runs", "1", "--samples", "40"],
        ["limit", "{ckpt}", "--method", "gaussian-width", "--samples", "40"],
        ["score", "{ckpt}", "--criterion", "snip", "--samples", "40"],
    ],
)
def test_every_command_that_reloads_data_passes_the_option(cli, loads, ckpt_copy, tmp_path, argv):
    argv = [a.format(ckpt=ckpt_copy, tmp=tmp_path) for a in argv]
    code, _, err = cli([*argv, "--data-option", "test_fraction=0.125"])
    assert code == 0, err
    assert loads and all(o == {"test_fraction": 0.125} for o in loads)


@pytest.mark.parametrize(
    "argv",
    [
        [
            "train",
            "--model",
            "fc5",
            "--data",
            "digits",
            "--data-option",
            "verify_counts=false",
            "--out",
            "{tmp}/run",
        ],
        ["eval", "{ckpt}", "--data-option", "verify_counts=false"],
        [
            "prune",
            "{ckpt}",
            "--sparsity",
            "0.5",
            "--data-option",
            "verify_counts=0",
            "--out",
            "{tmp}/p",
        ],
        ["spectrum", "{ckpt}", "--data-option", "nope=1"],
        ["limit", "{ckpt}", "--data-option", "nope=1"],
        ["score", "{ckpt}", "--criterion", "snip", "--data-option", "nope=1"],
    ],
)
def test_an_unknown_option_names_the_valid_ones(cli, disk, ckpt, tmp_path, argv):
    before = disk(tmp_path, ckpt)
    code, _, err = cli([a.format(tmp=tmp_path, ckpt=ckpt) for a in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--data-option: unknown option" in err and "'digits'; valid: test_fraction" in err
    assert disk(tmp_path, ckpt) == before


def test_a_malformed_pair_is_refused(cli, tmp_path):
    code, _, err = cli(
        [
            "train",
            "--model",
            "fc5",
            "--data",
            "digits",
            "--data-option",
            "verify_counts",
            "--out",
            tmp_path / "r",
        ]
    )
    assert code == 2 and "--data-option expects key=value" in err


def test_values_parse_as_json_or_python_spellings():
    assert parse_data_options(["a=false", "b=False", "c=3", "d=0.5", "e=None", "f=text"]) == {
        "a": False,
        "b": False,
        "c": 3,
        "d": 0.5,
        "e": None,
        "f": "text",
    }


def write_tiny_cifar10(root, per_file=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    gen = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": gen.integers(0, 256, (per_file, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in gen.integers(0, 10, per_file)],
        }
        blob = pickle.dumps(batch, protocol=2).replace(b"numpy._core", b"numpy.core")
        (folder / name).write_bytes(blob)
    names = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(names, protocol=2))
    return root


def test_cifar_verify_counts_is_reachable_as_its_error_says(cli, tmp_path):
    """The loader says "pass verify_counts=False"; the CLI says how, and that works."""
    root = write_tiny_cifar10(tmp_path / "cifar")
    base = [
        "train",
        "--model",
        "fc5",
        "--data",
        "cifar10",
        "--data-dir",
        root,
        "--epochs",
        "1",
        "--out",
        tmp_path / "run",
    ]
    code, _, err = cli(base)
    assert code == 2 and "pass --data-option verify_counts=false" in err, err
    code, _, err = cli([*base, "--data-option", "verify_counts=false"])
    assert code == 0, err
    stored = json.loads((tmp_path / "run" / "meta.json").read_text())["data"]
    assert stored["verify_counts"] is False
    code, _, err = cli(["eval", tmp_path / "run"])  # the option was recorded: it reloads
    assert code == 0, err
