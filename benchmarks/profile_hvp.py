"""Where the time of one blocked Hessian-vector product goes (784-1000-600-300-10 MLP).

A ``torch.profiler`` trace (CPU, ``record_shapes=True``) of one ``k``-probe product on a
512-example batch and of one gradient, split into GEMMs (with their shapes, multiply-adds
and rate), copies (``cat``, ``copy_``, ``clone``, ``fill_``, ...), other ATen kernels
(elementwise: ReLU masks, adds, reductions) and what no ATen kernel accounts for (Python,
dispatch, autograd and ``torch.func`` bookkeeping: wall time minus the kernels' self
time). The arithmetic floor of BENCHMARKS.md counts 6.27 M multiply-adds per probe and
example against 3.92 M for a gradient.

Usage:
    .venv/bin/python benchmarks/profile_hvp.py [--k 10] [--cache] [--threads 1]
        [--rows 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]

from curvature_hvp import build_mlp, make_batches  # noqa: E402

from prunelab.curvature import Hessian  # noqa: E402

GEMM = {"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm"}
COPY = {
    "aten::cat",
    "aten::copy_",
    "aten::clone",
    "aten::stack",
    "aten::_to_copy",
    "aten::fill_",
    "aten::zero_",
    "aten::index_put_",
    "aten::slice_scatter",
}


def gemm_macs(name: str, shapes: list) -> int:
    """Multiply-adds of one GEMM call from its recorded input shapes."""
    if name == "aten::mm":
        (a, b), (_, c) = shapes[0], shapes[1]
        return a * b * c
    if name == "aten::addmm":
        (a, b), (_, c) = shapes[1], shapes[2]
        return a * b * c
    if name in ("aten::bmm", "aten::baddbmm"):
        i = 0 if name == "aten::bmm" else 1
        (k, a, b), (_, _, c) = shapes[i], shapes[i + 1]
        return k * a * b * c
    return 0


def split(prof, wall: float) -> dict:
    """Self CPU time by kind; GEMM rows with shapes, calls, seconds, multiply-adds."""
    out = {"gemm_s": 0.0, "copy_s": 0.0, "other_kernels_s": 0.0, "gemm_macs": 0, "gemms": []}
    copies, others = {}, {}
    for e in prof.key_averages(group_by_input_shape=True):
        t = e.self_cpu_time_total / 1e6
        if t == 0 or e.key.startswith(("autograd::", "torch::autograd")):
            continue  # engine frames: their self time is bookkeeping, counted below
        if e.key in GEMM:
            m = gemm_macs(e.key, e.input_shapes) * e.count
            out["gemm_s"] += t
            out["gemm_macs"] += m
            out["gemms"].append((e.key, e.input_shapes, e.count, t, m))
        elif e.key in COPY:
            out["copy_s"] += t
            copies[f"{e.key} {e.input_shapes}"] = copies.get(f"{e.key} {e.input_shapes}", 0) + t
        else:
            out["other_kernels_s"] += t
            others[f"{e.key} {e.input_shapes}"] = others.get(f"{e.key} {e.input_shapes}", 0) + t
    out["wall_s"] = wall
    out["unaccounted_s"] = wall - out["gemm_s"] - out["copy_s"] - out["other_kernels_s"]
    out["gemms"].sort(key=lambda r: -r[3])
    out["copies"] = sorted(copies.items(), key=lambda r: -r[1])
    out["others"] = sorted(others.items(), key=lambda r: -r[1])
    return out


def traced(fn) -> tuple[float, object]:
    """Wall seconds and profile of one call of ``fn``."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
    return wall, prof


def show(name: str, s: dict, rows: int) -> None:
    """Print one split."""
    w = s["wall_s"]
    rate = s["gemm_macs"] / s["gemm_s"] / 1e9 if s["gemm_s"] else 0.0
    print(f"\n{name}: wall {w * 1e3:.1f} ms")
    for key in ("gemm_s", "copy_s", "other_kernels_s", "unaccounted_s"):
        print(f"    {key:16s} {s[key] * 1e3:8.1f} ms  {s[key] / w:6.1%}")
    print(f"    GEMM multiply-adds {s['gemm_macs'] / 1e9:.3f} G at {rate:.2f} GMAC/s")
    for key, shapes, count, t, m in s["gemms"][:rows]:
        r = m / t / 1e9 if t else 0.0
        print(f"      {key:12s} x{count:<2d} {t * 1e3:7.1f} ms {r:6.2f} GMAC/s  {shapes}")
    for title, items in (("copies", s["copies"]), ("other kernels", s["others"])):
        print(f"    top {title}:")
        for key, t in items[: max(3, rows // 3)]:
            print(f"      {t * 1e3:7.1f} ms  {key[:110]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--cache", action="store_true", help="keep the gradient graph")
    ap.add_argument("--mode", default="rev-rev", choices=("rev-rev", "fwd-rev"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_mlp()
    batch = make_batches()[0]
    x, y = batch
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    op = Hessian(model, F.cross_entropy, [batch], names, mode=args.mode, cache=args.cache)
    V = torch.randn(op.dim, args.k, generator=torch.Generator().manual_seed(0))

    def gradient():
        return torch.autograd.grad(F.cross_entropy(model(x), y), params)

    for _ in range(2):  # warm-up: allocator, lazy initialisation, the cache
        op.matmat(V)
        gradient()
    load0 = os.getloadavg()
    g_wall, g_prof = traced(gradient)
    h_wall, h_prof = traced(lambda: op.matmat(V))
    load1 = os.getloadavg()
    g, h = split(g_prof, g_wall), split(h_prof, h_wall)
    print(
        f"threads {torch.get_num_threads()}, k = {args.k}, mode {args.mode}, cache {args.cache}; "
        f"load average {load0[0]:.2f} -> {load1[0]:.2f}"
    )
    print(f"per probe / gradient (profiled wall): {h_wall / args.k / g_wall:.2f} (floor 1.60)")
    g_rate = g["gemm_macs"] / g["gemm_s"]
    h_rate = h["gemm_macs"] / h["gemm_s"]
    print(
        f"GEMM rate product / gradient: {h_rate / g_rate:.2f}; product GEMM macs per probe / "
        f"gradient GEMM macs: {h['gemm_macs'] / args.k / g['gemm_macs']:.2f}"
    )
    show("gradient", g, args.rows)
    show(f"product, k = {args.k}", h, args.rows)
    if args.json:
        payload = {"load": [load0, load1], "k": args.k, "cache": args.cache, "gradient": g}
        payload["product"] = h
        args.json.write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
