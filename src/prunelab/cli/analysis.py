"""Sub-commands ``spectrum``, ``limit`` and ``score``: measure a checkpoint."""

from __future__ import annotations

import argparse

from prunelab.cli._common import Formatter, emit, nonneg_float, parse_hparams, pos_int
from prunelab.experiments import analysis
from prunelab.experiments.html import text_table
from prunelab.scores import CRITERIA


def _spectrum(args: argparse.Namespace) -> int:
    res = analysis.spectrum_job(
        args.checkpoint, samples=args.samples, iters=args.iters, runs=args.runs,
        seed=args.seed, per_layer=args.per_layer, data_dir=args.data_dir,
    )  # fmt: skip
    tr = res["trace"]
    text = (
        f"{args.checkpoint}: Hessian over {res['dim']:,} prunable weights, "
        f"{res['num_examples']} examples\n"
        f"top eigenvalue {res['top_eigenvalue']:.6g} (residual {res['top_residual']:.2g})\n"
        f"trace {tr['value']:.6g} ± {tr['stderr']:.2g} (s.e.)"
    )
    if res.get("layer_traces"):
        rows = [{"layer": k, "trace": v["value"], "stderr": v["stderr"]}
                for k, v in res["layer_traces"].items()]  # fmt: skip
        text += "\n\n" + text_table(rows)
    text += "\n\nwrote " + ", ".join(res["files"].values())
    emit(args, res, text)
    return 0


def _limit(args: argparse.Namespace) -> int:
    res = analysis.limit_job(
        args.checkpoint, method=args.method, verify=args.verify, tolerance=args.tolerance,
        samples=args.samples, iters=args.iters, runs=args.runs, seeds=args.seeds,
        seed=args.seed, eps=args.eps, data_dir=args.data_dir,
    )  # fmt: skip
    text = (
        f"{args.checkpoint}: predicted pruning limit (sparsity = fraction removed)\n\n"
        + text_table(res["rows"])
        + "\n\nwrote "
        + ", ".join(res["files"])
    )
    emit(args, res, text)
    return 0


def _score(args: argparse.Namespace) -> int:
    res = analysis.score_job(
        args.checkpoint, args.criterion, parse_hparams(args.hparam), samples=args.samples,
        data_dir=args.data_dir,
    )  # fmt: skip
    text = f"{args.criterion} scores of {args.checkpoint}\n\n" + text_table(res["layers"])
    emit(args, res, text + "\n\nwrote " + ", ".join(res["files"]))
    return 0


def _common(p: argparse.ArgumentParser, samples: int = 1024) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--samples", type=pos_int, default=samples, help="training examples used")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic estimators")
    p.add_argument("--data-dir", default=None, help="override the stored dataset directory")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the measuring sub-commands."""
    p = sub.add_parser("spectrum", help="Hessian spectrum (SLQ), top eigenvalue, trace",
                       formatter_class=Formatter)  # fmt: skip
    _common(p)
    p.add_argument("--iters", type=pos_int, default=64, help="Lanczos steps per run")
    p.add_argument("--runs", type=pos_int, default=4, help="SLQ runs (one block)")
    p.add_argument("--per-layer", action="store_true", help="also per-layer traces")
    p.set_defaults(func=_spectrum)

    p = sub.add_parser("limit", help="predict how far a checkpoint can be pruned",
                       formatter_class=Formatter)  # fmt: skip
    _common(p)
    p.add_argument("--method", default="all", choices=list(analysis.LIMIT_METHODS))
    p.add_argument("--verify", action="store_true", help="also measure the actual limit")
    p.add_argument("--tolerance", type=nonneg_float, default=0.5,
                   help="accuracy drop (points) allowed by the actual limit")  # fmt: skip
    p.add_argument("--iters", type=pos_int, default=64, help="Lanczos steps per run")
    p.add_argument("--runs", type=pos_int, default=4, help="SLQ runs per seed")
    p.add_argument("--seeds", type=pos_int, default=3, help="SLQ seeds (spread of p̂)")
    p.add_argument("--eps", type=float, default=None,
                   help="loss tolerance ε (default: sd of mini-batch training losses)")  # fmt: skip
    p.set_defaults(func=_limit)

    p = sub.add_parser("score", help="importance scores of every prunable weight",
                       formatter_class=Formatter)  # fmt: skip
    _common(p, samples=1000)
    p.add_argument("--criterion", required=True, help=f"one of: {', '.join(CRITERIA.names())}")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="criterion hparam")
    p.set_defaults(func=_score)
