"""Peak memory of 100 Lanczos steps, one fresh process per contestant.

``tracemalloc`` does not see torch's allocations and PyTorch 2.13 keeps no CPU
allocator statistics, so memory is measured as the growth of the process's peak
resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) from the
end of a warm-up (model, data, one HVP) to the end of the Lanczos run. It is printed
beside the *accounting* of what the algorithm stores (basis vectors × D × 4 bytes).
The run uses the problem's first batch only: memory depends on D, not on N.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

STEPS = 100


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    base = _rss_mib()
    if c.lanczos_steps(pb, steps) is NotImplemented:
        return {}
    return {"baseline_mib": base, "peak_mib": _rss_mib(), "growth_mib": _rss_mib() - base}


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
