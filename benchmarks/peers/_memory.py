"""Peak memory of 100 Lanczos steps, one fresh process per contestant.

``tracemalloc`` does not see torch's allocations and PyTorch 2.13 keeps no CPU
allocator statistics, so memory is measured from the resident set: a thread samples
``/proc/self/statm`` every 5 ms during the Lanczos run, and the growth of its peak over
the resident set at the end of a warm-up (model, data, one HVP) is reported (the
process's ``ru_maxrss`` high-water mark is printed too; it misses a basis smaller than
an earlier transient such as the imports). It is printed
beside the *accounting* of what the algorithm stores (basis vectors × D × 4 bytes).
The run uses the problem's first batch only: memory depends on D, not on N.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

STEPS = 100


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Sampler(threading.Thread):
    """Peak of the current resident set, sampled every 5 ms until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = _current_mib(), threading.Event()

    def run(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, _current_mib())


def child(scale: str, name: str, steps: int = STEPS) -> dict:
    """Run in the fresh process: warm up, then ``steps`` Lanczos steps; report MiB."""
    import torch
    from _models import build
    from run import contestants

    torch.set_num_threads(1)
    pb = build(scale)
    pb.batches = pb.batches[:1]
    c = next(c for c in contestants(memory=True) if c.name == name)
    c.hvp(pb, torch.randn(pb.dim))
    base, high = _current_mib(), _rss_mib()
    sampler = _Sampler()
    sampler.start()
    out = c.lanczos_steps(pb, steps)
    sampler.done.set()
    sampler.join()
    if out is NotImplemented:
        return {}
    peak = max(sampler.peak, _current_mib())
    return {
        "baseline_mib": base,
        "peak_mib": peak,
        "growth_mib": peak - base,
        "maxrss_growth_mib": _rss_mib() - high,
    }


def measure(scale: str, names: list[str]) -> dict:
    """One subprocess per contestant; ``{name: {baseline_mib, peak_mib, growth_mib}}``."""
    out = {}
    here = Path(__file__).resolve().parent
    for name in names:
        proc = subprocess.run(
            [sys.executable, str(here / "run.py"), "--memory-child", scale, name],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            out[name] = {"error": proc.stderr.strip().splitlines()[-1:]}
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        if res:
            out[name] = res
    return out
