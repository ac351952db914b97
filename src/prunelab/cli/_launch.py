"""Several processes for one command: ``--nproc N`` relaunches it under ``torchrun``.

Curvature quantities are means over examples, so each rank evaluates its share of the
batches and the partial sums are all-reduced (:mod:`prunelab.curvature._dist`); every
rank computes the same numbers and rank 0 alone prints and writes files. Launched by
hand (``torchrun --nproc_per_node N -m prunelab spectrum ...``) or by ``--nproc N``,
which runs exactly that on this machine (``--standalone``); several hosts are started
with ``torchrun``'s own ``--nnodes`` / ``--rdzv-endpoint`` flags.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch.distributed as dist

from prunelab.errors import PrunelabError


def add_nproc(p: argparse.ArgumentParser) -> None:
    """The ``--nproc`` flag of the commands whose curvature work is sharded."""
    p.add_argument("--nproc", type=int, default=1,
                   help="processes (torchrun here), each with a share of the data")  # fmt: skip


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its environment says so)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch(argv: list[str], nproc: int) -> int:
    """Run this command again under ``torchrun`` with ``nproc`` processes; its exit code.

    Raises:
        PrunelabError: ``nproc < 1``.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise PrunelabError(f"nproc must be an integer >= 1, got {nproc!r}")
    rest, skip = [], False
    for i, a in enumerate(argv):  # drop --nproc N / --nproc=N
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = i + 1 < len(argv)
            continue
        if not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "prunelab", *rest]  # fmt: skip
    return subprocess.run(cmd, check=False).returncode


def init_from_env(device: str = "cpu") -> int:
    """Join the process group ``torchrun`` described in the environment; this rank.

    Returns:
        The rank (0 when not launched by ``torchrun`` or with a single process).
    """
    if not launched() or int(os.environ["WORLD_SIZE"]) < 2:
        return 0
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank()
