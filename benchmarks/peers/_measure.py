"""Interleaved timing of every contestant on one problem at one thread count.

Within a repetition the full-data gradient (the unit) is timed first, then each
operation for every contestant in turn; the contestants' order rotates from one
repetition to the next so that none is always first after the gradient. The load
average is recorded beside every sample.
"""

from __future__ import annotations

import math

import torch
from _contestants import Contestant
from _models import Problem, gradient
from _plan import OPS, ScalePlan
from _timing import calls_for, clock, load, median, median_ratio


def _call(c: Contestant, op: str, pb: Problem, seed: int, inputs: dict):
    kw = OPS[op][1]
    if op == "hvp":
        return c.hvp(pb, inputs["v"])
    if op == "hvp10":
        return c.hvp_block(pb, inputs["V"])
    if op.startswith("slq"):
        return c.slq(pb, kw["steps"], kw["runs"], seed)
    if op == "trace":
        return c.trace(pb, kw["probes"], seed)
    if op == "diag":
        return c.diag(pb, kw["probes"], seed)
    if op == "top":
        return c.top_eig(pb, seed)
    raise ValueError(op)


def _sample(c: Contestant, op: str, pb: Problem, rep: int, inputs: dict, calls: int):
    """One timed sample: ``calls`` calls of ``op`` (seed = repetition index)."""
    return clock(lambda: _call(c, op, pb, rep, inputs), calls)


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref.double()).norm() / ref.double().norm())


def measure(pb: Problem, contestants: list[Contestant], plan: ScalePlan, threads: int) -> dict:
    """Time every operation of ``plan`` for every contestant.

    Returns:
        ``{"gradient": {...}, "ops": {op: {contestant: {...}}}, "checks": {...}}`` with,
        per contestant and operation: wall seconds per call of every repetition,
        process-CPU seconds, the 1-minute load beside each, the median time, the
        median of time / gradient ("gradients") and of prunelab's time / this time,
        and the median of each returned number (top eigenvalue, trace, ...).
    """
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1)
    inputs = {"v": torch.randn(pb.dim, generator=gen), "V": torch.randn(pb.dim, 10, generator=gen)}
    ref_name = contestants[0].name  # prunelab's default entry is the reference
    calls: dict = {}
    supported: dict = {op: [] for op in OPS}
    checks: dict = {"hvp_rel_err_vs_prunelab": {}, "hvp10_rel_err_vs_prunelab": {}}
    g_wall, g_loads = [], []
    wt = clock(lambda: gradient(pb))[0]  # warm-up and calibration of the unit
    g_calls = calls_for(wt)
    for c in contestants:  # warm-up: imports and lazy one-off initialisation
        c.hvp(pb, inputs["v"])
    raw = {
        op: {c.name: {"wall": [], "cpu": [], "load": [], "info": []} for c in contestants}
        for op in OPS
    }
    n_reps = max(plan.reps_of(op, threads) for op in OPS)
    for rep in range(n_reps):
        g_loads.append(load())
        g_wall.append(clock(lambda: gradient(pb), g_calls)[0])
        order = contestants[rep % len(contestants) :] + contestants[: rep % len(contestants)]
        for op in OPS:
            if rep >= plan.reps_of(op, threads):
                continue
            for c in order:
                if rep > 0 and c.name not in supported[op]:
                    continue
                cell = raw[op][c.name]
                key = (op, c.name)
                if key not in calls:
                    # First call: calibration (kept as this repetition's sample if long).
                    lo = load()
                    w, cpu, out = _sample(c, op, pb, rep, inputs, 1)
                    if out is NotImplemented:
                        continue
                    supported[op].append(c.name)
                    calls[key] = calls_for(w)
                    if op in ("hvp", "hvp10"):
                        checks[f"{op}_rel_err_vs_prunelab"][c.name] = out
                    if calls[key] == 1:
                        cell["wall"].append(w), cell["cpu"].append(cpu), cell["load"].append(lo)
                        cell["info"].append(out if isinstance(out, dict) else {})
                        continue
                lo = load()
                w, cpu, out = _sample(c, op, pb, rep, inputs, calls[key])
                cell["wall"].append(w), cell["cpu"].append(cpu), cell["load"].append(lo)
                cell["info"].append(out if isinstance(out, dict) else {})
            done = {n: raw[op][n]["wall"][-1] for n in supported[op] if raw[op][n]["wall"]}
            print(
                f"  rep {rep} {op}: " + ", ".join(f"{n} {t:.3g}s" for n, t in done.items()),
                flush=True,
            )
    for op in ("hvp", "hvp10"):
        outs = checks[f"{op}_rel_err_vs_prunelab"]
        ref = outs.get(ref_name)
        checks[f"{op}_rel_err_vs_prunelab"] = {
            n: _rel_err(o, ref) for n, o in outs.items() if ref is not None
        }
    ops: dict = {}
    for op in OPS:
        ours = raw[op].get(ref_name, {}).get("wall", [])
        for name in supported[op]:
            cell = raw[op][name]
            k = len(cell["wall"])
            grads = g_wall[:k]
            info = {}
            for field in {f for d in cell["info"] for f in d}:
                vals = [d[field] for d in cell["info"] if field in d]
                info[field] = median(vals)
            cell.update(
                calls=calls[(op, name)],
                median_s=median(cell["wall"]),
                gradients=median_ratio(cell["wall"], grads),
                prunelab_over_this=median_ratio(ours[:k], cell["wall"]) if ours else math.nan,
                median_info=info,
            )
            del cell["info"]
            ops.setdefault(op, {})[name] = cell
    return {
        "threads": threads,
        "gradient": {"wall": g_wall, "load": g_loads, "calls": g_calls, "median_s": median(g_wall)},
        "ops": ops,
        "checks": checks,
    }
