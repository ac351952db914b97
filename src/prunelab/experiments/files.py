"""Every file and folder name that a run folder (a checkpoint or a sweep) contains.

One module so that the writers (jobs, sweeps, the demo) and the readers (reports, the
resume logic) cannot drift apart. A checkpoint's own three files are defined by
:mod:`prunelab.checkpoint` and re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from prunelab.checkpoint import MASK_FILE, META_FILE, MODEL_FILE

__all__ = [
    "CONFIG_FILE",
    "DENSE_DIR",
    "LOCK_FILE",
    "MASK_FILE",
    "META_FILE",
    "MODEL_FILE",
    "REPORT_DIR",
    "REPORT_PAGE",
    "STORE_FILE",
    "SWEEP_FILE",
    "main_process",
    "report_dir",
]

# --- a sweep folder ---------------------------------------------------------------
#: the TOML the sweep was started with (copied, so a report shows what ran)
CONFIG_FILE = "config.toml"
#: the sweep's identity (config hash) and version; decides "resume" vs "different sweep"
SWEEP_FILE = "sweep.json"
#: one SQLite file of results (stdlib sqlite3)
STORE_FILE = "results.sqlite"
#: trained dense checkpoints, one folder per dense hash
DENSE_DIR = "dense"
#: advisory lock so two sweeps never write the same folder
LOCK_FILE = ".lock"

# --- reports (in a sweep folder, a checkpoint, or the demo folder) -----------------
#: the report folder of a sweep or a checkpoint
REPORT_DIR = "report"
#: the page of every report folder
REPORT_PAGE = "index.html"


def main_process() -> bool:
    """Whether this process writes files: always, except ranks > 0 under ``torchrun``."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() > 0)


def report_dir(run: str | Path, part: str | None = None) -> Path:
    """``<run>/report`` (or ``<run>/report/<part>``, e.g. ``spectrum``, ``limit``, ``scores``)."""
    out = Path(run) / REPORT_DIR
    return out / part if part else out
