"""2:4 semi-structured sparsity on a GPU: a prunelab 2:4 mask through ``torch.sparse``.

Builds a 2:4 mask with :meth:`prunelab.Mask.from_scores` (``nm="2:4"``) on a
``(out, in)`` float16 weight, converts the masked weight with
``torch.sparse.to_sparse_semi_structured`` and times ``W @ X`` sparse against dense
(CUDA events, medians of repetitions), printing the largest difference beside the times.
On a machine without an NVIDIA GPU of compute capability >= 8.0 there is no kernel for
the format, so the script says it is skipped and why, and exits 0.

    .venv/bin/python benchmarks/semi_structured.py [--sizes 4096 8192] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from prunelab.masks import Mask


def _time(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` CUDA-event-timed calls."""
    for _ in range(5):  # warm-up: kernel selection, caches
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    """Print one row per size: dense ms, 2:4 ms, speed-up, max |difference|."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--batch", type=int, default=4096, help="columns of X")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0):
        print(
            "skipped: 2:4 semi-structured kernels (CUTLASS / cuSPARSELt) need an NVIDIA GPU "
            "of compute capability >= 8.0; this machine has none"
        )
        return
    from torch.sparse import to_sparse_semi_structured

    print(f"device: {torch.cuda.get_device_name()}")
    print("size (out = in) | dense ms | 2:4 ms | speed-up | max |diff|")
    gen = torch.Generator().manual_seed(0)
    for n in args.sizes:
        w = torch.randn(n, n, generator=gen)
        mask = Mask.from_scores({"w": w.abs()}, 0.5, nm="2:4").masks["w"]
        dense = (w * mask).half().cuda()
        sparse = to_sparse_semi_structured(dense)
        x = torch.randn(n, args.batch, generator=gen).half().cuda()
        diff = float((sparse @ x - dense @ x).abs().max())
        t_dense = _time(lambda d=dense, x=x: d @ x, args.repeats)
        t_sparse = _time(lambda s=sparse, x=x: s @ x, args.repeats)
        print(f"{n} | {t_dense:.3f} | {t_sparse:.3f} | {t_dense / t_sparse:.2f}x | {diff:.2e}")


if __name__ == "__main__":
    main()
