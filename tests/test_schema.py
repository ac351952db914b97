"""One settings dataclass generates CLI flags and TOML keys: a new field needs no other edit."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from prunelab.cli import build_parser
from prunelab.curvature.settings import SpectrumSettings
from prunelab.errors import PrunelabError
from prunelab.experiments.sweep.load import parse_config
from prunelab.limits.settings import ActualSettings, LimitSettings
from prunelab.procedures import PruneSettings
from prunelab.schema import fields, flag, setting
from prunelab.schema.cli import add_arguments, from_arguments
from prunelab.schema.toml import build, overrides
from prunelab.train_config import TrainConfig


@dataclass(frozen=True)
class Toy:
    steps: int = setting(3, "how many steps", minimum=1)
    rate: float = setting(0.5, "a rate", minimum=0)
    mode: Literal["a", "b"] = setting("a", "a mode")
    on: bool = setting(False, "a switch")
    grid: tuple[float, ...] | None = setting(None, "some values")
    hidden: int = setting(7, cli=False, toml=False)


def _help(parser: argparse.ArgumentParser) -> str:
    return parser.format_help()


def test_a_new_field_appears_in_the_cli_and_the_toml():
    # the same extension a developer would make to TrainConfig: one field, nothing else
    Plus = dataclasses.make_dataclass(
        "Plus", [("dropout", float, setting(0.1, "dropout rate", minimum=0))], bases=(Toy,),
        frozen=True,
    )  # fmt: skip
    p = argparse.ArgumentParser()
    add_arguments(p, Plus)
    assert "--dropout" in _help(p) and "dropout rate" in _help(p) and "--hidden" not in _help(p)
    got = from_arguments(Plus, p.parse_args(["--dropout", "0.3", "--steps", "5", "--on"]))
    assert got == Plus(dropout=0.3, steps=5, on=True)
    assert from_arguments(Plus, p.parse_args([])) == Plus()  # defaults declared once
    assert build(Plus, {"dropout": 0.25}).dropout == 0.25
    assert overrides(Plus, {"dropout": 1}, "train") == {"dropout": 1.0}
    with pytest.raises(PrunelabError, match="train.dropout: expected float, got str"):
        overrides(Plus, {"dropout": "x"}, "train")
    with pytest.raises(PrunelabError, match="hidden: unknown key"):
        build(Plus, {"hidden": 1})


def test_cli_parsing_refuses_bad_values_and_reads_types():
    p = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(p, Toy)
    for argv in (["--steps", "0"], ["--rate", "-1"], ["--mode", "c"], ["--steps", "x"]):
        with pytest.raises((argparse.ArgumentError, SystemExit)):
            p.parse_args(argv)
    assert from_arguments(Toy, p.parse_args(["--grid", "0.1", "0.2"])).grid == (0.1, 0.2)


@pytest.mark.parametrize(
    ("command", "cls", "skip"),
    [
        ("train", TrainConfig, ()),
        ("prune", PruneSettings, ("l1",)),
        ("spectrum", SpectrumSettings, ()),
        ("limit", LimitSettings, ()),
        ("limit", ActualSettings, ()),
    ],
)
def test_every_settings_field_is_a_flag_of_its_command(command, cls, skip):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices[command].format_help()
    for f in fields(cls, "cli"):
        if f.name not in skip:
            assert flag(f) in text, (command, f.name)


def test_every_train_and_prune_field_is_a_toml_key():
    base = 'name = "t"\nmodels = ["fc5"]\nsparsities = [0.5]\n[data]\nname = "digits"\n'
    base += '[[criteria]]\nname = "magnitude"\n'
    train = {f.name: repr(getattr(TrainConfig(), f.name)) for f in fields(TrainConfig, "toml")}
    train = {k: v.replace("'", '"').replace("True", "true").replace("False", "false")
             for k, v in train.items()}  # fmt: skip
    text = base + "[train]\n" + "".join(f"{k} = {v}\n" for k, v in train.items())
    config = parse_config(text)
    assert set(config.train) == set(train)
    with pytest.raises(PrunelabError, match="train.seed: unknown key"):  # the run seed rules
        parse_config(base + "[train]\nseed = 3\n")
    scoring = "[scoring]\nsamples = 50\nbatch_size = 10\nmin_per_layer = 2\nscope = 'layer'\n"
    assert parse_config(base + scoring).scoring["min_per_layer"] == 2
