"""Sub-commands ``sweep`` and ``report``: resumable experiment grids and their HTML report."""

from __future__ import annotations

import argparse
import sys

from prunelab.cli._common import Formatter, add_device, emit, nonneg_int


def _sweep(args: argparse.Namespace) -> int:
    from prunelab.experiments.sweep.runner import run_sweep

    s = run_sweep(
        args.config, out=args.out, workers=max(args.workers, 1), force=args.force,
        progress=sys.stderr.isatty() and not args.json, executor=args.executor,
        address=args.address, device=args.device,
    )  # fmt: skip
    text = (
        f"sweep {s.name} ({s.config_hash}) in {s.out}: {s.runs_total} runs, "
        f"{s.runs_executed} executed now, {s.runs_skipped} already done; "
        f"ok {s.ok}, failed {s.failed}, diverged {s.diverged}; dense models trained "
        f"{s.dense_trained}, reused {s.dense_reused}; {s.seconds:.0f} s"
    )
    for f in s.failures:
        text += f"\n  {f['status']}: {f['label']}: {f['error']}"
    text += f"\nnext: prunelab report {s.out}"
    emit(args, s.to_dict(), text)
    return 0


def _report(args: argparse.Namespace) -> int:
    from prunelab.experiments.report.page import build_report

    path = build_report(args.directory)
    emit(args, {"report": str(path)}, f"report: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and ``report``."""
    p = sub.add_parser("sweep", help="run (or resume) a TOML experiment grid",
                       formatter_class=Formatter)  # fmt: skip
    p.add_argument("config", help="TOML config (see experiments/*.toml)")
    p.add_argument("--out", default=None, help="sweep directory (default runs/<config name>)")
    p.add_argument("--workers", type=nonneg_int, default=1, help="worker processes")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local processes, or Ray tasks (extra: prunelab[ray])")  # fmt: skip
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: start a local one)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="start over in a dir of another config")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_device(p)
    p.set_defaults(func=_sweep)

    p = sub.add_parser("report", help="HTML report (plots + CSV) of a sweep directory",
                       formatter_class=Formatter)  # fmt: skip
    p.add_argument("directory", help="sweep directory")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_report)
