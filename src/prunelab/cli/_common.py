"""Argument helpers and output printing shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import math
import numbers
import re
import sys

from prunelab.device import DEVICES
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec
from prunelab.schema import fields, flag
from prunelab.schema.cli import add_arguments, from_arguments
from prunelab.train_config import TrainConfig

Formatter = argparse.ArgumentDefaultsHelpFormatter


def sparsity_arg(text: str) -> float:
    """Parse a sparsity in [0, 1) for argparse (errors exit 2 with argparse's message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1) (fraction of weights removed)")
    return value


def nonneg_int(text: str) -> int:
    """Parse an integer ≥ 0 for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; expected an integer >= 0")
    return value


def pos_int(text: str) -> int:
    """Parse an integer ≥ 1 for argparse."""
    value = nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def nonneg_float(text: str) -> float:
    """Parse a finite float ≥ 0 for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def add_settings(
    p: argparse.ArgumentParser, cls: type, title: str, *, defaults=None, skip=()
) -> None:
    """An argument group generated from a settings dataclass; records flag names.

    The parser remembers ``parameter -> --flag`` so that :func:`flag_names` can put the
    user's flag into a library error that names a parameter.
    """
    add_arguments(p.add_argument_group(title), cls, defaults=defaults, skip=skip)
    known = p.get_default("_flags") or {}
    known.update({f.name: flag(f) for f in fields(cls, "cli") if f.name not in skip})
    p.set_defaults(_flags=known)


#: parameters of the job functions that every command spells the same way
COMMON_FLAGS = {
    "out": "--out",
    "force": "--force",
    "data_dir": "--data-dir",
    "data_option": "--data-option",
}


def flag_names(args: argparse.Namespace, message: str) -> str:
    """A library message that names parameters, retold with the command's flags.

    Library errors name Python parameters (``bn_recalibrate: ...``, ``pass force=True``,
    ``out '...'``); a CLI user should read the flag they typed.

    Example:
        >>> ns = argparse.Namespace(_flags={"bn_recalibrate": "--bn-recalibrate"})
        >>> flag_names(ns, "bn_recalibrate: not valid for kind 'one-shot'")
        "--bn-recalibrate: not valid for kind 'one-shot'"
        >>> flag_names(ns, "choose another out or pass force=True to replace it")
        'choose another --out or pass --force to replace it'
    """
    known = {**COMMON_FLAGS, **(getattr(args, "_flags", None) or {})}
    key, sep, rest = message.partition(": ")
    if sep and key in known:
        message = f"{known[key]}{sep}{rest}"
    # a loader option is set with --data-option KEY=VALUE ("pass verify_counts=False")
    message = re.sub(
        rf"\bpass ({'|'.join(DATA_OPTIONS)})=(\w+)",
        lambda m: f"pass --data-option {m[1]}={m[2].lower()}",
        message,
    )
    for name, flag_ in known.items():
        message = re.sub(rf"\b{name}=True\b", flag_, message)
        message = re.sub(rf"\b{name}=(\S)", rf"{flag_} \1", message)
        message = re.sub(rf"(another|pass) {name}\b", rf"\1 {flag_}", message)
    return message


def _loader_options() -> list[str]:
    from prunelab import data as datasets
    from prunelab.experiments.jobs.data import loader_options

    return sorted({o for n in datasets.DATASETS.names() for o in loader_options(n)})


#: every dataset loader's options (for retelling "pass verify_counts=False")
DATA_OPTIONS = _loader_options()


def train_config(args: argparse.Namespace, **values) -> TrainConfig:
    """The validated :class:`TrainConfig` of the parsed training flags."""
    progress = sys.stderr.isatty() and not getattr(args, "json", False)
    return from_arguments(TrainConfig, args, seed=args.seed, progress=progress, **values).validate()


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: where the model and every product live (nothing hard-codes CUDA)."""
    p.add_argument("--device", default="cpu",
                   help=f"{' | '.join(DEVICES)} (auto: a GPU when one is visible)")  # fmt: skip


def add_prunable_args(p: argparse.ArgumentParser) -> None:
    """Options choosing the prunable set."""
    p.add_argument("--exclude-classifier", action="store_true", help="do not prune the last layer")
    p.add_argument("--include-bias", action="store_true", help="also prune Linear/Conv biases")


def prunable_spec(args: argparse.Namespace) -> PrunableSpec:
    """The :class:`PrunableSpec` chosen on the command line."""
    return PrunableSpec(
        include_classifier=not args.exclude_classifier, include_bias=args.include_bias
    )


def finite_json(payload: object) -> tuple[object, dict[str, str]]:
    """``payload`` with every NaN / infinite number replaced by ``None``, and where they were.

    JSON has no NaN: ``json.dumps`` would print ``NaN``, which strict parsers refuse.

    Returns:
        The cleaned copy and ``{"a.b[2]": "nan" | "inf" | "-inf"}`` of what was replaced.

    Example:
        >>> finite_json({"trace": {"value": 2.0, "stderr": float("nan")}})
        ({'trace': {'value': 2.0, 'stderr': None}}, {'trace.stderr': 'nan'})
    """
    found: dict[str, str] = {}

    def walk(value: object, path: str) -> object:
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, int)):
            number = float(value)
            if not math.isfinite(number):
                found[path] = str(number)
                return None
            return number
        return value

    return walk(payload, ""), found


def emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else the human summary ``text``.

    The JSON is strict: a NaN or infinite number is printed as ``null`` and the payload
    gains ``"nonfinite": {"path": "nan" | "inf" | "-inf"}`` naming each one.
    """
    if getattr(args, "json", False):
        clean, found = finite_json(payload)
        if found and isinstance(clean, dict):
            clean["nonfinite"] = found
        print(json.dumps(clean, indent=2, sort_keys=True, default=str, allow_nan=False))
    else:
        print(text)


def estimate_text(value: float, stderr: float | None, n: int | None = None) -> str:
    """``value ± stderr (s.e.)``, or what a single probe or run cannot tell.

    Example:
        >>> estimate_text(12.5, float("nan"), 1)
        '12.5 (one probe: no standard error)'
    """
    if stderr is None or not math.isfinite(stderr):
        why = "one probe" if n == 1 else "single estimate"
        return f"{value:.6g} ({why}: no standard error)"
    return f"{value:.6g} ± {stderr:.2g} (s.e.)"


def add_data_option_arg(p: argparse.ArgumentParser) -> None:
    """``--data-option KEY=VALUE``: a dataset loader option (repeatable)."""
    p.add_argument(
        "--data-option",
        action="append",
        metavar="KEY=VALUE",
        help="dataset loader option (repeatable), e.g. verify_counts=false or "
        "subsample_train=5000; the loader's valid options are named on a typo",
    )


def parse_data_options(pairs: list[str] | None) -> dict:
    """Parse ``--data-option key=value`` pairs (JSON values; ``True``/``False``/``None`` too)."""
    spelled = {"True": True, "False": False, "None": None}
    out: dict = {}
    for item in pairs or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PrunelabError(f"--data-option expects key=value, got {item!r}")
        try:
            out[key.strip()] = spelled[raw] if raw in spelled else json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def parse_hparams(pairs: list[str] | None) -> dict:
    """Parse ``--hparam key=value`` pairs (values as JSON when possible, else strings)."""
    out: dict = {}
    for item in pairs or []:
        if "=" not in item:
            raise PrunelabError(f"--hparam expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
