"""Time and peak memory of ``wanda`` and ``sparsegpt`` scoring on the pretrained MiniLM.

all-MiniLM-L6-v2 (the ``transformers`` extra), 10,616,832 prunable weights, on the
``sentences`` data with ``calibration`` sentences (default 128, ``max_tokens`` 32) from the
Debian package ``fortunes``. Each criterion runs in its own fresh process, so its peak
resident memory is its own: **memory = ru_maxrss after scoring − resident size just
before** (``resource.getrusage``; torch's allocator is invisible to ``tracemalloc``, so
tracemalloc would miss the tensors). Time is wall and CPU (user + system) of the
``prunelab.score`` call alone (model and data loaded before). The machine is shared, so
``uptime``'s load average is printed beside every number.

Usage:
    .venv/bin/python benchmarks/llm_scores.py [--calibration 128] [--threads 2]
        [--criteria wanda sparsegpt] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src")]


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def resident_kib() -> int:
    """Current resident set size in KiB (``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def one(criterion: str, calibration: int, threads: int) -> dict:
    """Score MiniLM with ``criterion`` in this process; time and memory of the call."""
    import torch

    from prunelab import data as datasets
    from prunelab import models, score
    from prunelab.train import loss_function

    torch.set_num_threads(threads)
    data = datasets.load("sentences", calibration=calibration, evaluation=1)
    model = models.build("minilm", data)
    batches = list(data.batches("train", 32))
    before = resident_kib()
    load_before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    scores = score(model, criterion, batches=batches, loss_fn=loss_function(data))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "criterion": criterion,
        "calibration": calibration,
        "tokens": int(data.train[0].numel()),
        "T": int(data.train[0].shape[1]),
        "weights": sum(v.numel() for v in scores.values()),
        "threads": threads,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_delta_mib": round(max(peak - before, 0) / 1024, 1),
        "rss_before_mib": round(before / 1024, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--criteria", nargs="+", default=["wanda", "sparsegpt"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one criterion
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.calibration, args.threads)))
        return
    rows = []
    for criterion in args.criteria:
        cmd = [sys.executable, __file__, "--one", criterion,
               "--calibration", str(args.calibration), "--threads", str(args.threads)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{criterion:10s} {r['calibration']} sentences ({r['tokens']} token slots, T={r['T']}):"
            f" wall {r['wall_s']} s, CPU {r['cpu_s']} s, peak +{r['peak_delta_mib']} MiB"
            f" (RSS before {r['rss_before_mib']} MiB); load {r['load_before']} -> "
            f"{r['load_after']}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
