"""Two CPU processes (gloo on loopback, file:// rendezvous: no port to pick) match one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from cases import make_case

from prunelab.curvature import (
    EmpiricalFisher,
    Hessian,
    empirical_fisher_diag,
    hutchinson_diag,
    slq,
    top_eigenvalues,
    trace,
)
from prunelab.errors import PrunelabError

WORLD = 2


def _compute(batches_for_rank=None, shard=None) -> dict:
    """Every distributed-capable quantity, on the conv-ce case."""
    c = make_case("conv-ce")
    batches = c.batches if batches_for_rank is None else batches_for_rank(c.batches)
    H = Hessian(c.model, c.loss_fn, batches, cache=True, shard=shard)
    mu = slq(H, num_iters=8, num_runs=3, seed=5)
    diag = hutchinson_diag(H, 6, seed=1, block_size=4)
    tr = trace(H, 6, seed=2)
    trpp = trace(H, 9, seed=2, method="hutch++")
    top = top_eigenvalues(H, k=2, tol=1e-10)
    Fop = EmpiricalFisher(c.model, c.loss_fn, batches, shard=shard)
    v = torch.linspace(-1, 1, H.dim, dtype=torch.float64)
    return {
        "num_examples": H.num_examples,
        "local": (len(H.problem.batches), H.problem.shard, H.problem.world.active),
        "nodes": mu.nodes,
        "weights": mu.weights,
        "lengths": mu.lengths,
        "diag": diag.value,
        "diag_se": diag.stderr,
        "trace": torch.tensor([tr.value, tr.stderr, trpp.value, trpp.stderr]),
        "top": top.values,
        "fisher_v": Fop @ v,
        "ef_diag": empirical_fisher_diag(c.model, c.loss_fn, batches, shard=shard),
    }


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        # (a) every rank holds all batches and shard=True keeps its share;
        # (b) each rank is handed its own shard and auto-detection keeps it as is.
        full = _compute(shard=True)
        pre = _compute(batches_for_rank=lambda b: b[rank::WORLD])
        # A NaN in batch 1 (rank 1's share) must stop both ranks, none left waiting.
        c = make_case("conv-ce")
        x, y = c.batches[1]
        bad = [c.batches[0], (x * float("nan"), y), c.batches[2]]
        H = Hessian(c.model, c.loss_fn, bad, shard=True)
        try:
            H @ torch.ones(H.dim, dtype=torch.float64)
            message = None
        except PrunelabError as exc:
            message = str(exc)
        torch.save({"full": full, "pre": pre, "error": message}, Path(out_dir) / f"dist{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.dist
def test_two_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, join=True)
    got = torch.load(tmp_path / "dist0.pt")
    assert got["error"] == "non-finite Hessian product on another rank"
    assert (
        torch.load(tmp_path / "dist1.pt")["error"] == "non-finite loss (nan) on batch 1 on rank 1"
    )
    ref = _compute()
    # Rank 0 really worked on its share: batches 0 and 2 of (5, 3, 4) examples.
    assert got["full"]["local"] == (2, True, True)
    assert got["pre"]["local"] == (2, False, True)
    assert ref["local"] == (3, False, False)
    for mode in ("full", "pre"):
        for key, want in ref.items():
            if key == "local":
                continue
            have = got[mode][key]
            if key in ("num_examples", "lengths"):
                assert have == want if key == "num_examples" else torch.equal(have, want)
                continue
            assert torch.allclose(have, want, rtol=1e-9, atol=1e-12 * float(want.abs().max())), (
                mode,
                key,
            )
