"""Argument helpers and output printing shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import math
import sys

from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec
from prunelab.train import TrainConfig

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


def add_train_args(p: argparse.ArgumentParser, epochs: int = 30, lr: float = 0.05) -> None:
    """Training hyper-parameters shared by ``train`` and fine-tuning in ``prune``."""
    d = TrainConfig()
    p.add_argument("--batch-size", type=pos_int, default=d.batch_size, help="examples per step")
    p.add_argument("--optimizer", default=d.optimizer, help="sgd | adam")
    p.add_argument("--lr", type=nonneg_float, default=lr, help="peak learning rate")
    p.add_argument("--momentum", type=nonneg_float, default=d.momentum, help="SGD momentum")
    p.add_argument(
        "--weight-decay",
        type=nonneg_float,
        default=d.weight_decay,
        help="optimizer weight decay (all params)",
    )
    p.add_argument("--schedule", default=d.schedule, help="constant | step | cosine")
    p.add_argument(
        "--warmup-epochs", type=nonneg_int, default=d.warmup_epochs, help="linear warm-up"
    )
    p.add_argument(
        "--l1", type=nonneg_float, default=0.0, help="l1 penalty on the prunable set (LOMP)"
    )
    p.add_argument("--l2", type=nonneg_float, default=0.0, help="l2 penalty on the prunable set")


def train_config(args: argparse.Namespace, epochs: int) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from parsed arguments."""
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        l1=args.l1,
        l2=args.l2,
        seed=args.seed,
        progress=sys.stderr.isatty() and not getattr(args, "json", False),
    )
    cfg.validate()
    return cfg


def add_prunable_args(p: argparse.ArgumentParser) -> None:
    """Options choosing the prunable set."""
    p.add_argument("--exclude-classifier", action="store_true", help="do not prune the last layer")
    p.add_argument("--include-bias", action="store_true", help="also prune Linear/Conv biases")


def prunable_spec(args: argparse.Namespace) -> PrunableSpec:
    """The :class:`PrunableSpec` chosen on the command line."""
    return PrunableSpec(
        include_classifier=not args.exclude_classifier, include_bias=args.include_bias
    )


def emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else the human summary ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True, default=str))
    else:
        print(text)


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
