"""Per-layer allocation study (limits issue, item 6): curvature vs uniform vs ERK vs global.

fc5 and lenet5 on digits (training seed 0, 30 epochs, the library defaults), pruned to
90 % and 95 % overall with each allocation of :func:`prunelab.limits.allocation.allocate`
(magnitude inside each layer; the curvature allocation from the per-layer quadratic cost
curves on 512 training examples, 1 % grid), then a 2-epoch masked fine-tune with 3
fine-tuning seeds; test accuracy mean ± s.e. over the seeds. The sweep cannot express a
per-layer allocation, hence this script. One thread, about 5 minutes on one core.

    .venv/bin/python experiments/per_layer_allocation.py [--out runs/per_layer_allocation]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import torch

import prunelab
from prunelab.limits._layer_costs import quadratic_layer_costs
from prunelab.limits.allocation import ALLOCATIONS, allocate, curvature_allocation
from prunelab.masks import Mask
from prunelab.scores import score
from prunelab.train import TrainConfig, evaluate, train_model

MODELS = ("fc5", "lenet5")
SPARSITIES = (0.9, 0.95)
SEEDS = (0, 1, 2)
#: training examples of the curvature (fc5 has 875k weights: 16 blocks of 32 products)
SAMPLES = 512


def _mean_se(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def main() -> None:
    """Run the grid, print a Markdown table, write ``results.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/per_layer_allocation")
    args = ap.parse_args()
    torch.set_num_threads(1)
    start, load = time.time(), os.getloadavg()
    data = prunelab.data.load("digits", seed=0)
    rows = []
    for name in MODELS:
        torch.manual_seed(0)
        net = prunelab.models.build(name, data)
        train_model(net, data, TrainConfig(epochs=30, progress=False))
        net.eval()
        dense = evaluate(net, data)["accuracy"]
        mags = score(net, "magnitude")
        grid = [i / 100 for i in range(100)]  # the cost curves do not depend on p: once
        costs = quadratic_layer_costs(net, data, grid, samples=SAMPLES)
        sizes = {n: t.numel() for n, t in mags.items()}
        for p in SPARSITIES:
            found = allocate(net, data, p, [a for a in ALLOCATIONS if a != "curvature"])
            found["curvature"] = curvature_allocation(costs, sizes, p, eps=0.05)
            for method, alloc in found.items():
                mask = Mask.from_layer_counts(mags, alloc.kept)
                assert mask.nnz == round((1 - p) * mask.total)
                pruned = mask.apply(copy.deepcopy(net))
                right_after = evaluate(pruned, data)["accuracy"]
                accs = []
                for seed in SEEDS:
                    work = copy.deepcopy(pruned)
                    train_model(work, data, TrainConfig(epochs=2, seed=seed, progress=False),
                                mask=mask)  # fmt: skip
                    accs.append(evaluate(work, data)["accuracy"])
                m, se = _mean_se(accs)
                rows.append({"model": name, "dense": dense, "sparsity": p, "allocation": method,
                             "right_after": right_after, "finetuned": accs, "mean": m, "se": se,
                             "layer_sparsity": alloc.sparsities()})  # fmt: skip
                print(f"{name} p={p} {method}: {right_after:.1f} -> {m:.1f} ± {se:.1f}", flush=True)
    elapsed = time.time() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"seconds": elapsed, "loadavg_start": load, "loadavg_end": os.getloadavg()}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\n{elapsed:.0f} s, load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| model (dense) | sparsity | " + " | ".join(ALLOCATIONS) + " |")
    print("|---|---|" + "---|" * len(ALLOCATIONS))
    for name in MODELS:
        for p in SPARSITIES:
            cells = {r["allocation"]: r for r in rows if r["model"] == name and r["sparsity"] == p}
            dense = next(iter(cells.values()))["dense"]
            print(f"| {name} ({dense:.1f} %) | {p:.0%} | " + " | ".join(
                f"{cells[a]['mean']:.1f} ± {cells[a]['se']:.1f} ({cells[a]['right_after']:.1f})"
                for a in ALLOCATIONS) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
