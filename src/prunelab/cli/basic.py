"""Sub-commands ``train``, ``eval``, ``prune`` and ``demo``."""

from __future__ import annotations

import argparse

from prunelab import checkpoint
from prunelab import data as datasets
from prunelab.cli._common import (
    Formatter,
    add_prunable_args,
    add_train_args,
    emit,
    nonneg_float,
    nonneg_int,
    parse_hparams,
    pos_int,
    prunable_spec,
    sparsity_arg,
    train_config,
)
from prunelab.experiments import jobs
from prunelab.experiments.html import text_table
from prunelab.scores import CRITERIA
from prunelab.train import evaluate


def _train(args: argparse.Namespace) -> int:
    data = datasets.load(args.data, seed=args.seed, data_dir=args.data_dir)
    cfg = train_config(args, args.epochs)
    meta = jobs.train_checkpoint(
        args.model,
        data,
        cfg,
        args.out,
        spec=prunable_spec(args),
        weights=args.weights,
        force=args.force,
    )
    dense = meta["metrics"]["dense"]
    emit(
        args,
        meta,
        f"trained {args.model} on {args.data} for {cfg.epochs} epochs in "
        f"{meta['seconds']:.1f} s: test accuracy {dense['accuracy']:.2f}%, "
        f"loss {dense['loss']:.4f}\n"
        f"checkpoint: {args.out}",
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    model, mask, meta = checkpoint.load(args.checkpoint)
    data = jobs.load_data_for(meta, args.data_dir)
    metrics = evaluate(model, data, split=args.split)
    payload = {
        "checkpoint": args.checkpoint,
        "split": args.split,
        **metrics,
        "sparsity": mask.sparsity,
        "nnz": mask.nnz,
        "total": mask.total,
        "compression_ratio": mask.compression_ratio,
        "per_layer": mask.per_layer(),
    }
    text = (
        f"{args.checkpoint}: {args.split} accuracy {metrics['accuracy']:.2f}%, loss "
        f"{metrics['loss']:.4f}; sparsity {mask.sparsity:.4f} ({mask.nnz}/{mask.total} kept, "
        f"{mask.compression_ratio:.1f}x)\n\n" + text_table(mask.per_layer())
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
    finetune = train_config(args, args.finetune_epochs) if args.finetune_epochs else None
    meta = jobs.prune_checkpoint(
        args.checkpoint,
        args.criterion,
        args.sparsity,
        args.out,
        scope=args.scope,
        hparams=_criterion_hparams(args),
        steps=args.steps,
        at_init=args.at_init,
        bn_recalibrate=args.bn_recalibrate,
        rounds=args.rounds,
        finetune=finetune,
        loss_change=args.loss_change,
        data_dir=args.data_dir,
        score_samples=args.samples,
        force=args.force,
    )
    rec = meta["record"]
    stages = ("dense", "after_prune", "after_finetune")
    rows = [
        {"stage": k, "accuracy": rec[k]["accuracy"], "loss": rec[k]["loss"]}
        for k in stages
        if rec.get(k)
    ]
    text = (
        f"pruned {args.checkpoint} with {args.criterion} ({rec['procedure']}, {rec['steps']} "
        f"step(s)) to sparsity {meta['sparsity']:.4f} ({meta['nnz']}/{meta['total']} weights "
        f"kept, {meta['total'] / max(meta['nnz'], 1):.1f}x) -> {args.out}\n\n" + text_table(rows)
    )
    for warning in rec["warnings"] + [f"layer collapse in {n}" for n in rec["collapsed"]]:
        text += f"\nwarning: {warning}"
    emit(args, meta, text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from prunelab.experiments.demo import DemoConfig, run_demo

    result = run_demo(args.out, DemoConfig(seed=args.seed, epochs=args.epochs))
    dense = ", ".join(f"{k} {v['accuracy']:.2f}%" for k, v in result.dense.items())
    limit_cols = ["model", "method", "prediction", "spread", "lower", "actual", "delta_pp"]
    ft = [r for r in result.criteria if r["stage"] == "after fine-tune"]
    text = (
        f"fc5 on digits, dense test accuracy: {dense}\n\n"
        "How far can it be pruned? (sparsity = fraction removed; delta in points)\n"
        + text_table(result.limits, limit_cols)
        + "\n\nWhich weights matter? accuracy after pruning + a short fine-tune\n"
        + text_table(ft, ["criterion", "sparsity", "accuracy", "accuracy_sd", "loss"])
        + f"\n\nHessian: top eigenvalue {result.spectrum.top_eigenvalue:.4g}, trace "
        f"{result.spectrum.trace.value:.4g} ± {result.spectrum.trace.stderr:.2g}"
        + f"\n\nreport: {result.report}  ({result.seconds['total']:.0f} s)"
    )
    payload = {
        "dense": result.dense,
        "criteria": result.criteria,
        "limits": result.limits,
        "spectrum": result.spectrum.to_dict(),
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
    p.add_argument("--weights", default=None, help="state_dict file to start from (user models)")
    p.add_argument("--epochs", type=nonneg_int, default=30, help="training epochs")
    add_train_args(p)
    add_prunable_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and data order")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace a different run in --out")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint", formatter_class=Formatter)
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--data-dir", default=None, help="override the stored dataset directory")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "prune", help="prune a checkpoint with any criterion", formatter_class=Formatter
    )
    p.add_argument("checkpoint", help="checkpoint directory to prune")
    p.add_argument(
        "--criterion", default="magnitude", help=f"one of: {', '.join(CRITERIA.names())}"
    )
    p.add_argument("--sparsity", type=sparsity_arg, required=True, help="fraction removed, [0, 1)")
    p.add_argument("--scope", default="global", choices=["global", "layer"], help="ranking scope")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="criterion hparam")
    p.add_argument("--samples", type=nonneg_int, default=1000, help="examples for data criteria")
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
    g = p.add_argument_group("procedure")
    g.add_argument("--steps", type=pos_int, default=1, help="re-scored steps (paper 001)")
    g.add_argument("--at-init", action="store_true", help="prune at initialisation, then train")
    g.add_argument("--bn-recalibrate", action="store_true", help="recompute BN stats first")
    g.add_argument("--rounds", type=pos_int, default=None, help="at-init rounds (SynFlow: 100)")
    g.add_argument(
        "--loss-change",
        default=None,
        choices=["hvp", "diagonal"],
        help="record predicted vs measured loss change",
    )
    p.add_argument("--finetune-epochs", type=nonneg_int, default=0, help="fine-tune after pruning")
    add_train_args(p, lr=0.01)
    p.add_argument("--seed", type=int, default=0, help="seed of fine-tuning data order")
    p.add_argument("--data-dir", default=None, help="override the stored dataset directory")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace a different run in --out")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_prune)

    p = sub.add_parser(
        "demo", help="train fc5 on digits, prune, write a report", formatter_class=Formatter
    )
    p.add_argument("--out", default="reports/demo", help="report directory")
    p.add_argument("--epochs", type=nonneg_int, default=30, help="dense training epochs")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_demo)
