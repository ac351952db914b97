"""Curvature-engine speed on the 784-1000-600-300-10 MLP (1.57M weights), CPU, float32.

(a) Batched Hessian-vector products: time per probe / time of one gradient on a
    512-example batch, for k = 1, 4, 10, 16 probes and each product mode.
(b) SLQ over 4,096 examples in 8 batches, 10 Lanczos steps x 4 runs (full-data
    products), prunelab vs the PyHessian peer (``curvature_pyhessian_peer.py``: a
    re-implementation, PyHessian itself is not installable here). Both span all
    parameters (PyHessian's choice), with the same data.
(c) ``--extra``: top eigenvalue (PyHessian power iteration vs prunelab Lanczos, both to a
    relative tolerance of 1e-3) and trace (Hutchinson, same number of probes).

Timings are interleaved (peer, ours, peer, ours, ...) and each ratio is the median of
the per-repetition ratios, which cancels most of the drift of a shared machine. Random
data is fine for timing.

Usage:
    .venv/bin/python benchmarks/curvature_hvp.py [--repeats 5] [--part a|b|all]
        [--extra] [--compile] [--threads N] [--json out.json]
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

from curvature_pyhessian_peer import PyHessianPeer  # noqa: E402

from prunelab.curvature import Hessian, slq, top_eigenvalues, trace  # noqa: E402

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
    peer = PyHessianPeer(model, F.cross_entropy, [batch])
    v_peer = [torch.randn_like(p) for p in params]
    configs["PyHessian peer k=1"] = (1, None, None)
    for _k, op, V in configs.values():  # warm-up (lazy initialisation, cache, compilation)
        if op is not None:
            op.matmat(V)
    gradient()
    peer.hv(v_peer)
    t_grad, times = Times(), {name: Times() for name in configs}
    for _ in range(repeats):
        t_grad.append(clock(gradient)[0])
        for name, (_k, op, V) in configs.items():
            if op is None:
                times[name].append(clock(lambda: peer.hv(v_peer))[0])
            else:
                times[name].append(clock(lambda op=op, V=V: op.matmat(V))[0])
    out = {"gradient_s": statistics.median(t_grad.wall()), "per_probe_over_gradient": {}}
    for name, (k, _op, _V) in configs.items():
        out["per_probe_over_gradient"][name] = median_ratio(times[name], t_grad, k)
    return out


def part_b(model, batches, repeats: int, use_compile: bool) -> dict:
    """SLQ, 10 steps x 4 runs, full data: ours vs the PyHessian peer."""
    names = [n for n, _ in model.named_parameters()]
    peer = PyHessianPeer(model, F.cross_entropy, batches)
    variants = {
        "prunelab rev-rev": {"mode": "rev-rev"},
        "prunelab rev-rev+cache": {"mode": "rev-rev", "cache": True},
    }
    if use_compile:
        variants["prunelab fwd-rev+compile"] = {"mode": "fwd-rev", "compile": True}

    def ours(kw, seed):
        return slq(Hessian(model, F.cross_entropy, batches, names, **kw), 10, 4, seed)

    # Warm-up with tiny runs (lazy initialisation, compilation).
    peer.density(1, 1)
    for kw in variants.values():
        slq(Hessian(model, F.cross_entropy, batches[:1], names, **kw), 2, 1)
    t_peer, times = Times(), {v: Times() for v in variants}
    tops = {"peer": [], **{v: [] for v in variants}}
    for rep in range(repeats):
        t, (eig, _w) = clock(lambda rep=rep: peer.density(10, 4, seed=rep))
        t_peer.append(t)
        tops["peer"].append(max(max(run) for run in eig))
        for name, kw in variants.items():
            t, mu = clock(lambda kw=kw, rep=rep: ours(kw, rep))
            times[name].append(t)
            tops[name].append(mu.extremes()[1])
    return {
        "peer_s": statistics.median(t_peer.wall()),
        "ours_s": {v: statistics.median(ts.wall()) for v, ts in times.items()},
        "ours_over_peer": {v: median_ratio(ts, t_peer) for v, ts in times.items()},
        "largest_ritz_value": {k: statistics.median(v) for k, v in tops.items()},
    }


def part_c(model, batches) -> dict:
    """Top eigenvalue and trace, once each (these are long)."""
    names = [n for n, _ in model.named_parameters()]
    peer = PyHessianPeer(model, F.cross_entropy, batches)
    op = Hessian(model, F.cross_entropy, batches, names)
    (t_pe, _), (pe, p_iters) = clock(lambda: peer.eigenvalues(100, 1e-3))
    (t_oe, _), top = clock(lambda: top_eigenvalues(op, 1, tol=1e-3))
    (t_pt, _), (pt, p_probes) = clock(lambda: peer.trace(100, 1e-3))
    probes = max(p_probes, 2)
    (t_ot, _), ot = clock(lambda: trace(op, probes, seed=0))
    return {
        "top_eigenvalue": {
            "peer": pe,
            "peer_products": p_iters,
            "peer_s": t_pe,
            "ours": float(top.values[0]),
            "ours_products": top.num_iters,
            "ours_s": t_oe,
            "ours_residual": float(top.residuals[0]),
        },
        "trace": {
            "peer": pt,
            "peer_s": t_pt,
            "probes": probes,
            "ours": ot.value,
            "ours_stderr": ot.stderr,
            "ours_s": t_ot,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--part", choices=("a", "b", "all"), default="all")
    ap.add_argument("--extra", action="store_true", help="also top eigenvalue and trace")
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
    if args.part in ("a", "all"):
        result["a"] = part_a(model, batches[0], args.repeats, args.compile)
        print(
            "(a) per-probe HVP time / gradient time, 512 examples "
            f"(gradient {result['a']['gradient_s'] * 1e3:.1f} ms)",
            flush=True,
        )
        for name, r in result["a"]["per_probe_over_gradient"].items():
            print(f"    {name:22s} wall {r['wall']:5.2f}x  cpu {r['cpu']:5.2f}x", flush=True)
    if args.part in ("b", "all"):
        result["b"] = part_b(model, batches, args.repeats, args.compile)
        b = result["b"]
        print(f"(b) SLQ 10 steps x 4 runs, 8 x 512 examples: peer {b['peer_s']:.1f} s", flush=True)
        for name, r in b["ours_over_peer"].items():
            print(
                f"    {name:26s} {b['ours_s'][name]:6.1f} s  ratio wall {r['wall']:.2f} "
                f"cpu {r['cpu']:.2f}",
                flush=True,
            )
        print(f"    largest Ritz values: {b['largest_ritz_value']}", flush=True)
    if args.extra:
        result["c"] = part_c(model, batches)
        print(f"(c) {json.dumps(result['c'], indent=1)}", flush=True)
    result["machine"]["loadavg_end"] = os.getloadavg()
    print(
        f"load average start {result['machine']['loadavg_start']} "
        f"end {result['machine']['loadavg_end']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
