"""prunelab's curvature engine against PyHessian, hessian-eigenthings and curvlinops.

Same model, data and parameter set (all parameters) for every contestant; contestants
interleaved within each repetition; medians of per-repetition ratios; one gradient is
the unit; the 1-minute load average is stored beside every sample. Writes a JSON file
with every sample and a Markdown file with the tables that BENCHMARKS.md pastes.

Usage:
    .venv/bin/python benchmarks/peers/run.py --quick        # small + conv, ~10 min
    .venv/bin/python benchmarks/peers/run.py                # full plan, ~40 min
    .venv/bin/python benchmarks/peers/run.py --large-slq64  # + SLQ 64 x 4 at 1.6M, ~12 min
    .venv/bin/python benchmarks/peers/run.py --scales small --threads 2 --reps 3

The peers must be installed (``make bench`` does it, with ``--no-deps``); PyHessian's
call of the removed ``torch.eig`` is patched inside this process only (``_peers.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]

import torch  # noqa: E402
from _contestants import Contestant, Prunelab  # noqa: E402
from _plan import PLANS, ScalePlan  # noqa: E402

#: Lanczos basis cap of the memory-capped prunelab entry (a quarter of the 100-step
#: float32 basis at the 1.6M scale).
CAP = "192MiB"


def contestants(memory: bool = False) -> list[Contestant]:
    """Every contestant; prunelab's default entry first (the reference of the ratios)."""
    from _peers import Curvlinops, Eigenthings, EigenthingsPower, PyHessian, patch_torch_eig

    patch_torch_eig()
    out: list[Contestant] = [Prunelab(), Prunelab("prunelab cache", cache=True)]
    if memory:
        out.append(Prunelab(f"prunelab max_memory={CAP}", max_memory=CAP))
    out += [PyHessian(), Eigenthings(), Curvlinops()]
    if not memory:
        out.append(EigenthingsPower())
    return out


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run the plan, write JSON + Markdown; returns the result dict."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small + conv, 1 thread, 2 reps")
    ap.add_argument("--scales", nargs="*", help="subset of: large small conv")
    ap.add_argument("--threads", type=int, nargs="*", help="thread counts (default: plan's)")
    ap.add_argument("--reps", type=int, help="override repetitions of every operation")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    ap.add_argument(
        "--large-slq64",
        action="store_true",
        help="also SLQ 64 x 4 at 1.6M weights, 2 threads (+~12 min)",
    )
    ap.add_argument("--out", type=Path, default=Path("reports/bench"), help="output folder")
    ap.add_argument("--memory-child", nargs=2, metavar=("SCALE", "NAME"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        from _memory import child

        print(json.dumps(child(*args.memory_child)))
        return {}
    import _memory
    from _measure import measure
    from _models import build

    plan = PLANS["quick" if args.quick else "full"]
    scales = args.scales or list(plan["scales"])
    threads = tuple(args.threads or plan["threads"])
    result: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
        },
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_start": os.getloadavg(),
        "scales": {},
    }
    t0 = time.perf_counter()
    for scale in scales:
        sp: ScalePlan = plan["scales"].get(scale) or PLANS["full"]["scales"][scale]
        if args.reps:
            sp = ScalePlan(
                args.reps, {k: min(v, args.reps) for k, v in sp.long_reps.items()}, sp.skip
            )
        if scale == "large" and args.large_slq64:
            sp = ScalePlan(sp.reps, sp.long_reps, sp.skip - {("slq64", 2)})
        pb = build(scale)
        entry = {"description": pb.description, "dim": pb.dim, "runs": []}
        for t in threads:
            print(f"[{time.perf_counter() - t0:7.0f} s] {scale}, {t} thread(s)", flush=True)
            entry["runs"].append(measure(pb, contestants(), sp, t))
        if not args.no_memory and scale in plan["memory_scales"]:
            print(f"[{time.perf_counter() - t0:7.0f} s] {scale}: memory", flush=True)
            names = [c.name for c in contestants(memory=True)]
            entry["memory"] = {"steps": _memory.STEPS, "results": _memory.measure(scale, names)}
        result["scales"][scale] = entry
        _write(result, args.out, "peers-quick" if args.quick else "peers", t0)
    md = _write(result, args.out, "peers-quick" if args.quick else "peers", t0)
    print(md)
    return result


def _write(result: dict, out: Path, stem: str, t0: float) -> str:
    """Write the JSON and the Markdown so far (after every scale: a cut run keeps them)."""
    from _report import markdown

    result["load_end"] = os.getloadavg()
    result["elapsed_s"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (out / f"{stem}.md").write_text(md)
    return md


if __name__ == "__main__":
    main()
