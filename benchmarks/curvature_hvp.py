"""Blocked Hessian-vector products against the arithmetic floor (784-1000-600-300-10 MLP).

Time per probe / time of one gradient on a 512-example batch, for k = 1, 4, 10, 16
probes and each product mode (``rev-rev``, ``fwd-rev``, ``cache=True``, optionally
``torch.compile``). The floor computed in BENCHMARKS.md is 1.60 gradients per probe;
the target is the blocked product (k = 10) within 10 % of it. The comparison with the
real peers (PyHessian, curvlinops, hessian-eigenthings) lives in ``benchmarks/peers/``.

Timings are interleaved and each ratio is the median of the per-repetition ratios.

Usage:
    .venv/bin/python benchmarks/curvature_hvp.py [--repeats 5] [--compile] [--threads N]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]

from prunelab.curvature import Hessian  # noqa: E402

WIDTHS = (784, 1000, 600, 300, 10)


def build_mlp() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(WIDTHS) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def make_batches(n: int = 4096, batch: int = 512, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, WIDTHS[0], generator=gen)
    y = torch.randint(0, WIDTHS[-1], (n,), generator=gen)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


class Times(list):
    """(wall, cpu) seconds per repetition."""

    def wall(self) -> list[float]:
        """Wall-clock seconds."""
        return [w for w, _ in self]

    def cpu(self) -> list[float]:
        """Process CPU seconds."""
        return [c for _, c in self]


def clock(fn):
    """Run ``fn`` once; return ((wall s, process CPU s), result).

    Process CPU time is far less sensitive to other jobs on a shared machine than wall
    time; with one thread it is the cleanest measure of the work done.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - w0, time.process_time() - c0), out


def median_ratio(num: Times, den: Times, scale: float = 1.0) -> dict:
    """Median over repetitions of num/den, by wall and by CPU time."""
    return {
        kind: statistics.median(
            a / scale / b for a, b in zip(getattr(num, kind)(), getattr(den, kind)(), strict=True)
        )
        for kind in ("wall", "cpu")
    }


def part_a(model, batch, repeats: int, use_compile: bool) -> dict:
    """HVP per probe / gradient on one 512-example batch."""
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    x, y = batch

    def gradient():
        return torch.autograd.grad(F.cross_entropy(model(x), y), params)

    configs = {}
    variants = [("rev-rev", False, False), ("fwd-rev", False, False), ("rev-rev", True, False)]
    for k in (1, 4, 10, 16):
        # Compiled kernels only at k=10: every (shape, mode) is one more dynamo graph of
        # the same function, and past torch._dynamo's recompile limit (8) it runs eagerly.
        extra = [("rev-rev", False, True), ("fwd-rev", False, True)] if k == 10 else []
        for mode, cache, comp in variants + (extra if use_compile else []):
            op = Hessian(
                model, F.cross_entropy, [batch], names, mode=mode, cache=cache, compile=comp
            )
            V = torch.randn(op.dim, k, generator=torch.Generator().manual_seed(k))
            tag = "+cache" if cache else "+compile" if comp else ""
            configs[f"{mode}{tag} k={k}"] = (k, op, V)
    for _k, op, V in configs.values():  # warm-up (lazy initialisation, cache, compilation)
        op.matmat(V)
    gradient()
    t_grad, times = Times(), {name: Times() for name in configs}
    for _ in range(repeats):
        t_grad.append(clock(gradient)[0])
        for name, (_k, op, V) in configs.items():
            times[name].append(clock(lambda op=op, V=V: op.matmat(V))[0])
    out = {"gradient_s": statistics.median(t_grad.wall()), "per_probe_over_gradient": {}}
    for name, (k, _op, _V) in configs.items():
        out["per_probe_over_gradient"][name] = median_ratio(times[name], t_grad, k)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile variants")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_mlp()
    batches = make_batches()
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "loadavg_start": os.getloadavg(),
        },
        "model": "784-1000-600-300-10 MLP, ReLU, float32, all parameters "
        f"(D={sum(p.numel() for p in model.parameters())})",
        "repeats": args.repeats,
    }
    result["a"] = part_a(model, batches[0], args.repeats, args.compile)
    print(
        "per-probe HVP time / gradient time, 512 examples "
        f"(gradient {result['a']['gradient_s'] * 1e3:.1f} ms; floor 1.60)",
        flush=True,
    )
    for name, r in result["a"]["per_probe_over_gradient"].items():
        print(f"    {name:22s} wall {r['wall']:5.2f}x  cpu {r['cpu']:5.2f}x", flush=True)
    result["machine"]["loadavg_end"] = os.getloadavg()
    print(
        f"load average start {result['machine']['loadavg_start']} "
        f"end {result['machine']['loadavg_end']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
