"""Sweep configs: validation errors name the key, the grid, and stable run identities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunelab.errors import PrunelabError
from prunelab.experiments.sweep.grid import dense_specs, expand
from prunelab.experiments.sweep.load import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
REPRODUCTIONS = (
    "linear_importance",
    "locality",
    "init_second_order",
    "cosine_kurtosis",
    "pruning_limit",
)

BASE = """
name = "t"
models = ["lenet300"]
seeds = [0, 1]
sparsities = [0.5, 0.9]
[data]
name = "digits"
[train]
epochs = 1
[[criteria]]
name = "magnitude"
[[criteria]]
name = "taylor2"
hparams = {curvature = "empirical-fisher"}
"""


def _error(text: str) -> str:
    with pytest.raises(PrunelabError) as info:
        parse_config(text)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("typo_key = 1\n" + BASE, "typo_key: unknown key; valid keys: name, description"),
        (BASE + "typo_key = 1\n", "criteria[1].typo_key: unknown key; valid keys: name, label"),
        (BASE.replace('"lenet300"', "3"), "models[0]: expected str, got int"),
        (BASE + "[[criteria]]\nname = 7\n", "criteria[2].name: expected str, got int"),
        (BASE.replace("epochs = 1", "epochs = 1.5"), "train.epochs: expected int, got float"),
        (BASE.replace("epochs = 1", "epoch = 1"), "train.epoch: unknown key"),
        (BASE.replace('"magnitude"', '"magnitud"'), "criteria[0].name: unknown criterion"),
        (BASE.replace("curvature", "curvatur"), "criteria[1].hparams: criterion 'taylor2' has no"),
        (BASE.replace('"empirical-fisher"', '"bogus"'), "criteria[1].hparams:"),
        (BASE.replace('"digits"', '"digits"\noptions = {n_trian = 5}'), "data[0].options.n_trian"),
        (BASE.replace("0.9]", "1.5]"), "sparsities[1]: sparsity must be in [0, 1)"),
        (BASE.replace("0.9]", '"p_star"]'), "sparsities[1]: 'p_star' needs 'cosine'"),
        (BASE.replace("0.9]", '"p_bogus"]'), "sparsities[1]: unknown symbolic sparsity"),
        (BASE + '[[procedures]]\nkind = "one-shot"\nsteps = 3\n', "procedures[0].steps: not valid"),
        (BASE + '[[procedures]]\nkind = "iterative"\n', "procedures[0].steps: required"),
        (BASE + '[[procedures]]\nkind = "sideways"\n', "procedures[0].kind: expected one of"),
        (BASE + "[train.extra]\n", "train.extra: unknown key"),
        (BASE.replace("epochs = 1", "epochs = -1"), "training[0]: epochs must be an integer >= 0"),
        (BASE + "[[exclude]]\n", "exclude[0]: an exclude rule needs at least one key"),
        (BASE + "[[criteria]]\nname = 'magnitude'\n", "criteria[2]: duplicate criterion label"),
        (BASE + "[predictions]\nmethods = ['cosine', 'psychic']\n", "predictions.methods[1]"),
        ("name = 'x'\nmodels = [\n", "invalid TOML"),
        (BASE.replace('name = "t"', ""), "name: required key is missing"),
        ("threads = 0\n" + BASE, "threads: must be >= 1, got 0"),
        ("threads = 1.5\n" + BASE, "threads: expected int"),
        (
            BASE + "[predictions]\nmethods = ['cosine']\nkurtosis_tensors = 'all'\n",
            "predictions.kurtosis_tensors: expected one of 'weights', 'weights+bias'",
        ),
        (BASE.replace("0.9]", '"p_safe_weights_bias"]'), "'p_safe_weights_bias' needs 'cosine'"),
    ],
)
def test_config_errors_name_the_key(text, expected):
    assert expected in _error(text)


def test_missing_file_is_a_prunelab_error(tmp_path):
    with pytest.raises(PrunelabError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_grid_is_the_product_with_defaults_resolved():
    config = parse_config(BASE)
    runs = expand(config)
    assert len(runs) == 1 * 1 * 1 * 2 * 1 * 2 * 2  # model·data·training·crit·proc·p·seed
    assert len({r.hash for r in runs}) == len(runs)
    taylor2 = next(r for r in runs if r.criterion == "taylor2")
    # defaults are part of the identity; the seed hparam follows the run seed
    assert taylor2.hparams["num_probes"] == 10
    assert taylor2.hparams["seed"] == taylor2.seed
    assert taylor2.train["epochs"] == 1 and taylor2.train["seed"] == taylor2.seed
    # runs of the same seed share one dense model: train once, prune many
    assert len(dense_specs(runs)) == 2


def test_exclusions_and_automatic_drops():
    text = BASE.replace("0.9]", '0.9, "p_star"]') + (
        "[predictions]\nmethods = ['cosine']\n"
        "[[procedures]]\nkind = 'one-shot'\n"
        "[[procedures]]\nkind = 'at-init'\nbn_recalibrate = true\n"
        "[[procedures]]\nkind = 'imp'\nrounds = 2\nrewind_epoch = 0\n"
        "[[exclude]]\ncriterion = 'taylor2'\nprocedure = 'at-init'\n"
        "[[exclude]]\nseed = 1\nsparsity = [0.5]\n"
    )
    runs = expand(parse_config(text))
    kinds = [(r.procedure["kind"], r.criterion, r.sparsity, r.seed) for r in runs]
    # symbolic sparsities never reach at-init / imp (they start from the initialisation)
    assert not any(k in ("at-init", "imp") and isinstance(p, str) for k, _, p, _ in kinds)
    assert not any(k == "at-init" and c == "taylor2" for k, c, _, _ in kinds)
    assert not any(s == 1 and p == 0.5 for _, _, p, s in kinds)
    # imp is magnitude by definition: one run per (p, seed), not one per criterion
    imp = [k for k in kinds if k[0] == "imp"]
    assert sorted(imp) == sorted({k for k in imp}) and {c for _, c, _, _ in imp} == {"magnitude"}
    assert len(imp) == 3  # p ∈ {0.5, 0.9} × seeds {0, 1}, minus (0.5, seed 1)
    assert all(r.dense is None for r in runs if r.procedure["kind"] in ("at-init", "imp"))


def test_criterion_sweep_expands_hparams():
    text = BASE + "[[criteria]]\nname = 'taylor1'\nsweep = {locality = [0.0, 0.1]}\n"
    runs = expand(parse_config(text))
    labels = {r.criterion_label for r in runs if r.criterion == "taylor1"}
    assert labels == {"taylor1[locality=0.0]", "taylor1[locality=0.1]"}
    assert {r.hparams["locality"] for r in runs if r.criterion == "taylor1"} == {0.0, 0.1}


def test_hash_ignores_key_order_and_explicit_defaults():
    reordered = """
sparsities = [0.5, 0.9]
seeds = [0, 1]
models = ["lenet300"]
name = "t"
[[criteria]]
name = "magnitude"
[[criteria]]
hparams = {num_probes = 10, curvature = "empirical-fisher"}
name = "taylor2"
[train]
lr = 0.05
epochs = 1
[data]
seed = 0
name = "digits"
"""
    a = [r.hash for r in expand(parse_config(BASE))]
    b = [r.hash for r in expand(parse_config(reordered))]
    assert a == b


def test_hash_changes_with_any_setting():
    a = {r.hash for r in expand(parse_config(BASE))}
    b = {r.hash for r in expand(parse_config(BASE.replace("epochs = 1", "epochs = 2")))}
    assert not a & b


def test_hash_is_stable_across_processes(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    code = (
        "import json, sys\n"
        "from prunelab.experiments.sweep.load import load_config\n"
        "from prunelab.experiments.sweep.grid import expand\n"
        "c = load_config(sys.argv[1])\n"
        "print(json.dumps([c.hash] + [r.hash for r in expand(c)]))\n"
    )
    outs = []
    for seed in ("1", "12345"):  # different str-hash randomisation per process
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "src")}
        res = subprocess.run(
            [sys.executable, "-c", code, str(cfg)], env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout))
    config = load_config(cfg)
    here = [config.hash] + [r.hash for r in expand(config)]
    assert outs[0] == outs[1] == here


@pytest.mark.parametrize("name", (*REPRODUCTIONS, "tiny"))
def test_shipped_configs_parse(name):
    config = load_config(EXPERIMENTS / f"{name}.toml")
    assert config.name == name
    if config.models:
        assert expand(config)


def test_kurtosis_tensors_enters_the_prediction_only_when_used():
    from prunelab.experiments.sweep.grid import prediction_settings

    cosine = BASE + "[predictions]\nmethods = ['cosine']\n"
    plain = parse_config(cosine)
    assert "kurtosis_tensors" not in prediction_settings(plain)  # older hashes unchanged
    assert "kurtosis_tensors" not in plain.to_dict()["predictions"]
    notebook = parse_config(cosine + "kurtosis_tensors = 'weights+bias'\n")
    assert prediction_settings(notebook)["kurtosis_tensors"] == "weights+bias"
    assert notebook.hash != plain.hash
    both = parse_config(cosine.replace("0.9]", '"p_safe", "p_safe_weights_bias"]'))
    assert prediction_settings(both)["kurtosis_tensors"] == "weights"
    assert {r.sparsity for r in expand(both)} == {0.5, "p_safe", "p_safe_weights_bias"}
