"""Sub-commands ``train``, ``eval``, ``prune`` and ``demo``."""

from __future__ import annotations

import argparse
import sys

from prunelab import data as datasets
from prunelab.cli._common import (
    Formatter,
    add_data_option_arg,
    add_device,
    add_prunable_args,
    add_settings,
    emit,
    estimate_text,
    nonneg_float,
    nonneg_int,
    parse_data_options,
    parse_hparams,
    pos_int,
    prunable_spec,
    sparsity_arg,
    train_config,
)
from prunelab.cli._table import metrics_text, text_table
from prunelab.experiments import jobs
from prunelab.experiments.jobs.data import check_data_options
from prunelab.procedures import PruneSettings
from prunelab.procedures.record import per_block, stage_rows
from prunelab.schema.cli import from_arguments
from prunelab.scores import CRITERIA
from prunelab.train_config import TrainConfig

#: LOMP's l1 is the parent's training; ``--l1`` on ``prune`` is the fine-tuning penalty
PRUNE_SKIP = ("l1",)


def _train(args: argparse.Namespace) -> int:
    options = check_data_options(args.data, parse_data_options(args.data_option))
    cfg = train_config(args)
    data = datasets.load(args.data, seed=args.seed, data_dir=args.data_dir, **options)
    meta = jobs.train_job(
        args.model, data, cfg, args.out, spec=prunable_spec(args), weights=args.weights,
        force=args.force, device=args.device,
    )  # fmt: skip
    dense = meta["metrics"]["dense"]
    emit(
        args,
        meta,
        f"trained {args.model} on {args.data} for {cfg.epochs} epochs in "
        f"{meta['seconds']:.1f} s: {metrics_text(dense)}\n"
        f"checkpoint: {args.out}",
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    payload = jobs.evaluate_job(
        args.checkpoint,
        args.split,
        args.data_dir,
        parse_data_options(args.data_option),
        device=args.device,
    )
    text = (
        f"{args.checkpoint}: {metrics_text(payload, args.split)}; sparsity "
        f"{payload['sparsity']:.4f} ({payload['nnz']}/{payload['total']} kept, "
        f"{payload['compression_ratio']:.1f}x)\n\n" + text_table(payload["per_layer"])
    )
    emit(args, payload, text)
    return 0


def _criterion_hparams(args: argparse.Namespace) -> dict:
    """Typed flags go into the criterion's hparams only when given (criteria differ)."""
    hp = parse_hparams(args.hparam)
    flags = {
        "curvature": args.curvature,
        "num_probes": args.probes,
        "seed": args.probe_seed,
        "temperature": args.temperature,
        "locality": args.locality,
        "negative_curvature": args.negative_curvature,
        "first_order_sign": args.first_order_sign,
    }
    hp.update({k: v for k, v in flags.items() if v is not None})
    return hp


def _prune(args: argparse.Namespace) -> int:
    finetune = train_config(args, epochs=args.finetune_epochs) if args.finetune_epochs else None
    settings = from_arguments(PruneSettings, args, skip=PRUNE_SKIP)
    meta = jobs.prune_job(
        args.checkpoint, args.criterion, args.sparsity, settings,
        hparams=_criterion_hparams(args), finetune=finetune, out=args.out,
        data_dir=args.data_dir, data_options=parse_data_options(args.data_option),
        force=args.force, device=args.device,
        progress=sys.stderr.isatty() and not args.json,
    ).meta  # fmt: skip
    rec = meta["record"]
    nm = settings.nm or "unstructured"
    text = (
        f"pruned {args.checkpoint} with {args.criterion} ({rec['procedure']}, {rec['steps']} "
        f"step(s), scope {rec['scope']}, {nm}) to sparsity {meta['sparsity']:.4f} "
        f"({meta['nnz']}/{meta['total']} weights kept, "
        f"{meta['total'] / max(meta['nnz'], 1):.1f}x) -> {args.out}\n\n"
        + text_table(stage_rows(rec))
        + "\n\n"
        + text_table([dict(b, nm=nm) for b in per_block(rec["per_layer"])])
    )
    for warning in rec["warnings"] + [f"layer collapse in {n}" for n in rec["collapsed"]]:
        text += f"\nwarning: {warning}"
    emit(args, meta, text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from prunelab.experiments.demo.run import run_demo
    from prunelab.experiments.demo.section import LIMIT_COLUMNS, VERDICTS

    result = run_demo(
        args.out, seed=args.seed, epochs=args.epochs, workers=args.workers,
        progress=sys.stderr.isatty() and not args.json, device=args.device,
    )  # fmt: skip
    dense = ", ".join(f"{k} {v['accuracy']:.2f}%" for k, v in result.dense.items())
    ft = [r for r in result.criteria if r["stage"] == "after fine-tune"]
    tr = result.spectrum["trace"]
    text = (
        f"fc5 on digits, dense test accuracy: {dense}\n\n"
        "How far can it be pruned? Each prediction against the truth it claims "
        "(sparsity = fraction removed; truth_low/high: its 95 % interval; delta in points)\n"
        + text_table(result.limits, LIMIT_COLUMNS)
        + f"\n{VERDICTS}\n"
        + "\n\nWhich weights matter? accuracy after pruning + a short fine-tune\n"
        + text_table(ft, ["criterion", "sparsity", "accuracy", "accuracy_sd", "loss"])
        + f"\n\nHessian: top eigenvalue {result.spectrum['top_eigenvalue']:.4g}, trace "
        + estimate_text(tr["value"], tr["stderr"], tr.get("n"))
        + f"\n\nreport: {result.report}  ({result.seconds['total']:.0f} s)"
    )
    payload = {
        "dense": result.dense,
        "criteria": result.criteria,
        "limits": result.limits,
        "truths": result.truths,
        "spectrum": result.spectrum,
        "report": str(result.report),
        "seconds": result.seconds,
    }
    emit(args, payload, text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the basic sub-commands to the top-level parser."""
    p = sub.add_parser(
        "train", help="train a dense model and save a checkpoint", formatter_class=Formatter
    )
    p.add_argument("--model", required=True, help="registered name or package.module:factory")
    p.add_argument("--data", required=True, help=f"dataset: {', '.join(datasets.DATASETS.names())}")
    p.add_argument("--data-dir", default=None, help="directory holding the dataset files")
    add_data_option_arg(p)
    p.add_argument("--weights", default=None, help="state_dict file to start from (user models)")
    add_settings(p, TrainConfig, "training (TrainConfig)")
    add_prunable_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and data order")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace a different run in --out")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_device(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint", formatter_class=Formatter)
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--data-dir", default=None, help="override the stored dataset directory")
    add_data_option_arg(p)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_device(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "prune", help="prune a checkpoint with any criterion", formatter_class=Formatter
    )
    p.add_argument("checkpoint", help="checkpoint directory to prune")
    p.add_argument(
        "--criterion", default="magnitude", help=f"one of: {', '.join(CRITERIA.names())}"
    )
    p.add_argument("--sparsity", type=sparsity_arg, required=True, help="fraction removed, [0, 1)")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="criterion hparam")
    g = p.add_argument_group("criterion hyper-parameters (only criteria that have them)")
    g.add_argument(
        "--curvature", default=None, help="exact | hutchinson | empirical-fisher | fisher"
    )
    g.add_argument("--probes", type=pos_int, default=None, help="Hutchinson probes")
    g.add_argument("--probe-seed", type=int, default=None, help="seed of probes / random scores")
    g.add_argument("--temperature", type=float, default=None, help="logit temperature T")
    g.add_argument("--locality", type=nonneg_float, default=None, help="locality term ½λθ²")
    g.add_argument("--negative-curvature", default=None, help="clamp | keep | abs")
    g.add_argument("--first-order-sign", default=None, help="minus (Taylor) | plus (paper 002)")
    add_settings(p, PruneSettings, "procedure (PruneSettings)", skip=PRUNE_SKIP)
    p.add_argument("--at-init", dest="kind", action="store_const", const="at-init",
                   help="= --procedure at-init: prune an initialisation, then train")  # fmt: skip
    p.add_argument("--finetune-epochs", type=nonneg_int, default=0, help="fine-tune after pruning")
    # fine-tuning starts from a trained model: a smaller step than training from scratch
    add_settings(
        p, TrainConfig, "fine-tuning (TrainConfig)", defaults={"lr": 0.01}, skip=("epochs",)
    )
    p.add_argument("--seed", type=int, default=0, help="seed of fine-tuning data order")
    p.add_argument("--data-dir", default=None, help="override the stored dataset directory")
    add_data_option_arg(p)
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace a different run in --out")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_device(p)
    p.set_defaults(func=_prune)

    p = sub.add_parser(
        "demo", help="train fc5 on digits, prune, write a report", formatter_class=Formatter
    )
    p.add_argument("--out", default="reports/demo", help="report directory")
    p.add_argument("--epochs", type=nonneg_int, default=None,
                   help="dense training epochs (default: demo.toml's)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--workers", type=nonneg_int, default=1, help="sweep worker processes")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_device(p)
    p.set_defaults(func=_demo)
