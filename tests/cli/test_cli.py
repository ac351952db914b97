"""End-to-end CLI checks on digits with a tiny model (fast), including every bad input."""

import json

import pytest

from prunelab import checkpoint
from prunelab.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "lenet"
    rc = main(
        ["train", "--model", "lenet300", "--data", "digits", "--epochs", "2", "--out", str(out)]
    )
    assert rc == 0
    return out


def test_train_eval_prune_keeps_exactly_ten_percent(trained, tmp_path, capsys):
    out = tmp_path / "p90"
    rc = main(
        [
            "prune",
            str(trained),
            "--criterion",
            "magnitude",
            "--sparsity",
            "0.9",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    meta = json.loads(capsys.readouterr().out)
    model, mask, _ = checkpoint.load(out)
    assert mask.nnz == round(0.1 * mask.total) == meta["nnz"]
    weights = [p for n, p in model.named_parameters() if n in mask.masks]
    assert sum(int((w != 0).sum()) for w in weights) <= mask.nnz
    assert main(["eval", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["nnz"] == mask.nnz and 0 <= ev["accuracy"] <= 100


def test_prune_random_with_finetune(trained, tmp_path, capsys):
    out = tmp_path / "r50"
    rc = main(
        [
            "prune",
            str(trained),
            "--criterion",
            "random",
            "--hparam",
            "seed=3",
            "--sparsity",
            "0.5",
            "--finetune-epochs",
            "1",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    meta = json.loads(capsys.readouterr().out)
    record = meta["record"]
    assert all(record[k] is not None for k in ("dense", "after_prune", "after_finetune"))
    assert meta["settings"]["hparams"] == {"seed": 3}
    _, mask, _ = checkpoint.load(out)
    assert mask.sparsity == pytest.approx(0.5, abs=1 / mask.total)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["prune", "{ckpt}", "--sparsity", "1.0", "--out", "{tmp}/a"], "outside [0, 1)"),
        (["prune", "{ckpt}", "--sparsity", "-0.1", "--out", "{tmp}/a"], "outside [0, 1)"),
        (["prune", "{ckpt}", "--sparsity", "abc", "--out", "{tmp}/a"], "not a number"),
        (
            ["prune", "{ckpt}", "--criterion", "nope", "--sparsity", "0.5", "--out", "{tmp}/a"],
            "valid choices: magnitude",
        ),
        (
            ["prune", "{ckpt}", "--sparsity", "0.5", "--hparam", "bogus=1", "--out", "{tmp}/a"],
            "no hparam 'bogus'",
        ),
        (
            ["train", "--model", "nope", "--data", "digits", "--out", "{tmp}/a"],
            "valid choices: fc5",
        ),
        (["train", "--model", "fc5", "--data", "nope", "--out", "{tmp}/a"], "valid choices:"),
        (
            ["train", "--model", "fc5", "--data", "digits", "--epochs", "-2", "--out", "{tmp}/a"],
            "negative",
        ),
        (
            [
                "train",
                "--model",
                "fc5",
                "--data",
                "digits",
                "--optimizer",
                "rmsprop",
                "--out",
                "{tmp}/a",
            ],
            "rmsprop",
        ),
        (["eval", "{tmp}/does-not-exist"], "does not exist"),
        (
            [
                "train",
                "--model",
                "fc5",
                "--data",
                "mnist",
                "--data-dir",
                "{tmp}/nowhere",
                "--out",
                "{tmp}/a",
            ],
            "mnist",
        ),
        (
            [
                "train",
                "--model",
                "lenet300",
                "--data",
                "digits",
                "--epochs",
                "0",
                "--out",
                "{ckpt}",
            ],
            "different run",
        ),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(trained, tmp_path, capsys, argv, needle):
    argv = [a.format(ckpt=trained, tmp=tmp_path) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert needle in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_prune_iterative_obd_hutchinson(trained, tmp_path, capsys):
    out = tmp_path / "obd"
    argv = [
        "prune",
        str(trained),
        "--criterion",
        "obd",
        "--curvature",
        "hutchinson",
        "--probes",
        "4",
        "--steps",
        "3",
        "--sparsity",
        "0.8",
        "--samples",
        "200",
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)["record"]
    assert record["procedure"] == "iterative" and len(record["densities"]) == 3
    assert record["hparams"]["curvature"] == "hutchinson" and record["hparams"]["num_probes"] == 4
    _, mask, _ = checkpoint.load(out)
    assert mask.nnz == round(0.2 * mask.total)


def test_flag_a_criterion_lacks_is_refused(trained, tmp_path, capsys):
    argv = [
        "prune",
        str(trained),
        "--criterion",
        "snip",
        "--curvature",
        "exact",
        "--sparsity",
        "0.5",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 2
    assert "no hparam 'curvature'" in capsys.readouterr().err


def test_demo_help_lists_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    assert "default" in capsys.readouterr().out
