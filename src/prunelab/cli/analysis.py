"""Sub-commands ``spectrum``, ``limit`` and ``score``: measure a checkpoint."""

from __future__ import annotations

import argparse
import math
import sys

from prunelab.cli._common import (
    Formatter,
    add_data_option_arg,
    add_device,
    add_settings,
    emit,
    estimate_text,
    parse_data_options,
    parse_hparams,
    pos_int,
)
from prunelab.cli._launch import add_nproc
from prunelab.cli._table import text_table
from prunelab.curvature.settings import SpectrumSettings
from prunelab.experiments import jobs
from prunelab.limits.settings import ActualSettings, AllocationSettings, LimitSettings
from prunelab.procedures import PruneSettings
from prunelab.schema.cli import from_arguments
from prunelab.scores import CRITERIA


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal and never under ``--json``."""
    return sys.stderr.isatty() and not getattr(args, "json", False)


def _layer_rows(res: dict) -> list[dict]:
    """One row per layer: block size, top / bottom Ritz value, SLQ and Hutchinson traces."""
    spectra, traces = res.get("layer_spectra") or {}, res.get("layer_traces") or {}
    rows = []
    for layer in spectra or traces:
        row: dict = {"layer": layer}
        if layer in spectra:
            ls = spectra[layer]
            row["D"] = ls["dim"]
            row["top eigenvalue"] = ls["top_eigenvalue"]
            row["residual"] = ls["top_residual"]
            row["min Ritz"] = ls["min_ritz_value"]
            row["trace (SLQ)"] = ls["trace"]["value"]
            row["SLQ s.e."] = ls["trace"]["stderr"]
        if layer in traces:
            row["trace (Hutchinson)"] = traces[layer]["value"]
            row["Hutchinson s.e."] = traces[layer]["stderr"]
        rows.append(row)
    return rows


def _spectrum(args: argparse.Namespace) -> int:
    settings = from_arguments(SpectrumSettings, args)
    res = jobs.spectrum_job(
        args.checkpoint, settings, args.seed, args.data_dir, progress=_progress(args),
        data_options=parse_data_options(args.data_option), device=args.device,
    )  # fmt: skip
    tr = res["trace"]
    text = (
        f"{args.checkpoint}: Hessian over {res['dim']:,} prunable weights, "
        f"{res['num_examples']} examples\n"
        f"top eigenvalue {res['top_eigenvalue']:.6g} (residual {res['top_residual']:.2g})\n"
        f"trace {estimate_text(tr['value'], tr['stderr'], tr.get('n'))}"
    )
    if res.get("layer_spectra") or res.get("layer_traces"):
        text += "\n\nper layer (diagonal blocks):\n" + text_table(_layer_rows(res))
    text += "\n\nwrote " + ", ".join(res["files"].values())
    emit(args, res, text)
    return 0


def _tolerance_text(res: dict) -> str:
    """The measured rule and the predictors' ε in words; a loss task's perplexity/cosine."""
    tol = res.get("tolerance") or {}
    lines = []
    if tol.get("metric") == "loss":
        lines.append(f"task {tol['task']}: limits on the test loss, {tol['stated']}")
        if tol.get("predictor_eps") is not None:
            lines.append(f"loss-based predictors use eps = {tol['predictor_eps']:.6g}")
    measured = res.get("actual")
    if measured:
        lines.append(f"measured: {measured['rule']}")
        dense = measured.get("dense_metrics") or {}
        at = {p: (a, lo) for p, a, lo in measured["curve"]}.get(measured["p_actual"])
        if tol.get("task") == "language-model" and at is not None:
            lines.append(
                f"dense loss {measured['dense_loss']:.4f} (perplexity "
                f"{math.exp(min(measured['dense_loss'], 700)):.4g}); at p = "
                f"{measured['p_actual']:.4g}: loss {at[1]:.4f} (perplexity "
                f"{math.exp(min(at[1], 700)):.4g})"
            )
        elif tol.get("task") == "embedding" and at is not None:
            cos0 = dense.get("cosine", 1.0 - measured["dense_loss"])
            lines.append(
                f"dense cosine {cos0:.6g}; at p = {measured['p_actual']:.4g}: "
                f"1 - loss = {1.0 - at[1]:.6g}"
            )
    return "\n".join(lines) + ("\n\n" if lines else "")


def _limit(args: argparse.Namespace) -> int:
    tolerances = from_arguments(ActualSettings, args)  # a loss task's ε, also unverified
    actual = tolerances if args.verify else None
    res = jobs.limit_job(
        args.checkpoint, from_arguments(LimitSettings, args), args.method, actual, args.seed,
        args.data_dir, data_options=parse_data_options(args.data_option),
        progress=_progress(args), device=args.device, tolerances=tolerances,
        allocation=from_arguments(AllocationSettings, args),
    )  # fmt: skip
    text = (
        f"{args.checkpoint}: predicted pruning limit (sparsity = fraction removed)\n\n"
        + _tolerance_text(res)
        + text_table(res["rows"])
    )
    if "per_layer" in res:
        pl = res["per_layer"]
        text += (
            f"\n\nper layer: predicted limit ({pl['predictor']}, eps {pl['eps']:.4g}, that "
            f"layer alone) and the sparsity each allocation gives it at "
            f"{pl['sparsity']:g} overall\n" + text_table(pl["rows"])
        )
    text += "\n\nwrote " + ", ".join(res["files"])
    emit(args, res, text)
    return 0


def _score(args: argparse.Namespace) -> int:
    res = jobs.score_job(
        args.checkpoint, args.criterion, parse_hparams(args.hparam), samples=args.samples,
        data_dir=args.data_dir, data_options=parse_data_options(args.data_option),
        device=args.device,
    )  # fmt: skip
    text = f"{args.criterion} scores of {args.checkpoint}\n\n" + text_table(res["layers"])
    emit(args, res, text + "\n\nwrote " + ", ".join(res["files"]))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    add_nproc(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic estimators")
    p.add_argument("--data-dir", default=None, help="override the stored dataset directory")
    add_data_option_arg(p)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_device(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the measuring sub-commands."""
    p = sub.add_parser("spectrum", help="Hessian spectrum (SLQ), top eigenvalue, trace",
                       formatter_class=Formatter)  # fmt: skip
    _common(p)
    add_settings(p, SpectrumSettings, "spectrum (SpectrumSettings)")
    p.set_defaults(func=_spectrum)

    p = sub.add_parser("limit", help="predict how far a checkpoint can be pruned",
                       formatter_class=Formatter)  # fmt: skip
    _common(p)
    p.add_argument("--method", default="all", choices=list(jobs.LIMIT_METHODS))
    add_settings(p, LimitSettings, "prediction (LimitSettings)")
    p.add_argument("--verify", action="store_true", help="also measure the actual limit")
    add_settings(p, ActualSettings, "measured limit and tolerances (ActualSettings)")
    add_settings(p, AllocationSettings, "per-layer allocation (AllocationSettings)")
    p.set_defaults(func=_limit)

    p = sub.add_parser("score", help="importance scores of every prunable weight",
                       formatter_class=Formatter)  # fmt: skip
    _common(p)
    p.add_argument("--samples", type=pos_int, default=PruneSettings.samples,
                   help="training examples for data criteria")  # fmt: skip
    p.add_argument("--criterion", required=True, help=f"one of: {', '.join(CRITERIA.names())}")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="criterion hparam")
    p.set_defaults(func=_score)
