"""Speed of the limit predictions: closed forms against the measurements they replace.

(a) Cosine curve (paper 003): :func:`prunelab.limits.cosine_curve` on a 25M-weight
    vector (one sort, one cumulative sum) against 101 prune-and-compare passes (per
    sparsity: choose the pruned weights, mask, cosine to the dense vector). Two ways to
    choose: ``torch.nn.utils.prune``'s (``topk`` of ``|θ|`` with ``k`` = the pruned
    count, what 003's notebook calls; timed on 11 of the 101 sparsities and scaled by
    101/11, since 101 passes take minutes) and the fastest selection torch offers
    (``kthvalue`` threshold, all 101 passes). Goal: >= 50x faster. The curves are
    compared (max absolute difference) beside the times.
(b) Predict vs measure on one small model: an MLP trained on the bundled digits data;
    the predicted limits (``predict_limit``: gaussian-width and cosine, the calls behind
    ``prunelab limit``) against the measured one-shot limit
    (:func:`prunelab.limits.find_actual_limit`, a grid of prune-and-evaluate passes then
    bisection). Reads limits/ only.

Interleaved repetitions, medians of per-repetition ratios, load average recorded.

Usage:
    .venv/bin/python benchmarks/limits_speed.py [--reps 3] [--threads 1] [--json out.json]
        [--dim 25000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src")]

from prunelab import data as pdata  # noqa: E402
from prunelab import limits, models, train  # noqa: E402


def clock(fn):
    """``(wall seconds, result)`` of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def prune_and_compare(
    w: torch.Tensor, sparsities: torch.Tensor, method: str = "kthvalue"
) -> torch.Tensor:
    """The loop the closed form replaces: prune at each sparsity, compare to dense.

    ``method``: ``"kthvalue"`` (threshold at the k-th smallest |w|) or ``"topk"`` (keep
    the indices of the largest |w|, as ``torch.nn.utils.prune.l1_unstructured`` does).
    """
    a = w.abs()
    d, norm = w.numel(), float(w.double().norm())
    out = []
    for p in sparsities.tolist():
        pruned = d - round((1 - p) * d)  # Mask.from_scores' count
        if pruned == 0:
            out.append(1.0)
            continue
        if pruned >= d:
            out.append(0.0)
            continue
        if method == "topk":
            idx = torch.topk(a, d - pruned).indices
            kept = torch.zeros_like(w)
            kept[idx] = w[idx]
        else:
            thr = torch.kthvalue(a, pruned).values
            kept = torch.where(a > thr, w, 0.0)  # ties at the threshold: pruned (rare, floats)
        out.append(
            float(torch.dot(w.double(), kept.double())) / (norm * float(kept.double().norm()))
        )
    return torch.tensor(out, dtype=torch.float64)


def part_a(dim: int, reps: int) -> dict:
    w = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    ps = torch.linspace(0, 1, 101, dtype=torch.float64)
    sub = ps[::10]  # 11 of the 101 sparsities for the slow topk loop
    t_closed, t_kth, t_topk, r_kth, r_topk, loads = [], [], [], [], [], []
    diff = {}
    for _ in range(reps):
        loads.append(os.getloadavg()[0])
        tc, closed = clock(lambda: limits.cosine_curve(w, ps))
        tk, kth = clock(lambda: prune_and_compare(w, ps))
        tt, top = clock(lambda: prune_and_compare(w, sub, "topk"))
        tt *= len(ps) / len(sub)
        t_closed.append(tc), t_kth.append(tk), t_topk.append(tt)
        r_kth.append(tk / tc), r_topk.append(tt / tc)
        diff = {
            "kthvalue": float((closed - kth).abs().max()),
            "topk": float((closed[::10] - top).abs().max()),
        }
    return {
        "dim": dim,
        "closed_form_s": statistics.median(t_closed),
        "kthvalue_101_passes_s": statistics.median(t_kth),
        "topk_101_passes_s (scaled from 11)": statistics.median(t_topk),
        "speedup_vs_kthvalue": statistics.median(r_kth),
        "speedup_vs_topk": statistics.median(r_topk),
        "max_abs_diff": diff,
        "load": loads,
    }


def part_b(reps: int) -> dict:
    torch.manual_seed(0)
    data = pdata.load("digits", seed=0)
    model = models.build("fc5", data)
    cfg = train.TrainConfig(epochs=5)
    t_train, _ = clock(lambda: train.train_model(model, data, cfg))
    model.eval()
    calls = {
        "predict gaussian-width": lambda: limits.predict_limit(model, data, "gaussian-width"),
        "predict cosine": lambda: limits.predict_limit(model, data, "cosine"),
        "measure (find_actual_limit)": lambda: limits.find_actual_limit(model, data),
    }
    times = {k: [] for k in calls}
    values, loads = {}, []
    for _ in range(reps):
        loads.append(os.getloadavg()[0])
        for k, fn in calls.items():
            t, out = clock(fn)
            times[k].append(t)
            values[k] = _value(out)
    meas = times["measure (find_actual_limit)"]
    return {
        "model": f"fc5 on digits, trained {cfg.epochs} epochs ({t_train:.1f} s)",
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "measure_over_predict": {
            k: statistics.median(m / t for m, t in zip(meas, v, strict=True))
            for k, v in times.items()
            if not k.startswith("measure")
        },
        "limits": values,
        "load": loads,
    }


def _value(out) -> float | None:
    for attr in ("value", "p_hat", "limit", "p_actual", "sparsity"):
        v = getattr(out, attr, None)
        if isinstance(v, int | float):
            return float(v)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dim", type=int, default=25_000_000)
    ap.add_argument("--part", choices=("a", "b", "all"), default="all")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict = {"threads": args.threads, "load_start": os.getloadavg()}
    if args.part in ("a", "all"):
        res["cosine_curve"] = part_a(args.dim, args.reps)
        a = res["cosine_curve"]
        print(f"(a) cosine curve, 101 sparsities: {json.dumps(a, indent=1)}", flush=True)
    if args.part in ("b", "all"):
        res["predict_vs_measure"] = part_b(args.reps)
        print(f"(b) {json.dumps(res['predict_vs_measure'], indent=1)}", flush=True)
    res["load_end"] = os.getloadavg()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
