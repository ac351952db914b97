"""Optional data parallelism with ``torch.distributed`` (private).

Every curvature quantity is a mean over examples, so with several processes each rank
evaluates its share of the batches and the size-weighted partial sums are all-reduced.
Probes are drawn from CPU generators seeded identically on every rank, and the
all-reduced products are bitwise identical on all ranks, so iterative algorithms
(Lanczos, Hutch++) take the same path everywhere without further communication.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from prunelab.errors import PrunelabError


@dataclass(frozen=True)
class World:
    """Where this process stands.

    Attributes:
        active: True when products must be all-reduced (initialised, world size > 1).
        rank: This process's rank (0 when not active).
        size: Number of processes (1 when not active).
    """

    active: bool
    rank: int = 0
    size: int = 1


def resolve_world(distributed: bool | None) -> World:
    """Decide whether to all-reduce.

    Args:
        distributed: ``None`` = use ``torch.distributed`` when it is initialised with more
            than one process; ``False`` = never; ``True`` = require it.

    Returns:
        The :class:`World` this process works in.

    Raises:
        PrunelabError: If ``distributed=True`` but no process group is initialised.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is True and not initialised:
        raise PrunelabError(
            "distributed=True but torch.distributed is not initialised; "
            "call torch.distributed.init_process_group first (or pass distributed=None)"
        )
    if distributed is False or not initialised or dist.get_world_size() == 1:
        return World(active=False)
    return World(active=True, rank=dist.get_rank(), size=dist.get_world_size())


def all_reduce_sum(t: Tensor, world: World) -> Tensor:
    """Sum ``t`` over all ranks in place (a no-op when not distributed)."""
    if world.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True when ``flag`` is True on at least one rank."""
    if not world.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def same_on_all_ranks(fingerprint: Tensor, world: World) -> bool:
    """True when the float64 vector ``fingerprint`` is identical on every rank."""
    if not world.active:
        return True
    hi = fingerprint.clone()
    lo = fingerprint.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return bool(torch.equal(hi, lo))
