"""Which operations run at which scale, how often, at which thread counts.

The full plan is sized to finish in about 45 minutes on a quiet 2-core CPU (estimate in
BENCHMARKS.md); the quick plan (small MLP + conv net, one thread) in about 10. At the
1.6M-weight scale an operation costs 0.4 s (gradient) to ~5 min (SLQ 64 × 4 for one
peer), so the long operations run once there, and at one thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Operation key -> (label in the report, keyword arguments).
OPS: dict[str, tuple[str, dict]] = {
    "hvp": ("one HVP", {}),
    "hvp10": ("block of 10 HVPs", {"k": 10}),
    "slq10": ("SLQ 10 × 4", {"steps": 10, "runs": 4}),
    "slq64": ("SLQ 64 × 4", {"steps": 64, "runs": 4}),
    "trace": ("Hutchinson trace, 40 probes", {"probes": 40}),
    "diag": ("Hessian diagonal, 40 probes", {"probes": 40}),
    "top": ("top eigenvalue to 1e-3", {}),
}


@dataclass
class ScalePlan:
    """Repetitions per operation at one scale.

    Attributes:
        reps: Repetitions of every operation not named in ``long_reps``.
        long_reps: Repetitions of the long operations (overrides ``reps``).
        skip: ``(operation, threads)`` pairs left out (to fit the time budget).
    """

    reps: int
    long_reps: dict[str, int] = field(default_factory=dict)
    skip: set[tuple[str, int]] = field(default_factory=set)

    def reps_of(self, op: str, threads: int) -> int:
        """Repetitions of ``op`` at ``threads`` threads (0 = skipped)."""
        if (op, threads) in self.skip:
            return 0
        return self.long_reps.get(op, self.reps)


_LONG = {"slq10": 1, "slq64": 1, "trace": 1, "diag": 1, "top": 1}
_AT2 = {("slq64", 2), ("top", 2), ("diag", 2), ("trace", 2)}  # long ones: 1 thread only

PLANS: dict[str, dict] = {
    "quick": {
        "threads": (1,),
        "scales": {
            "small": ScalePlan(2, {"slq64": 1}),
            # conv: a convolution's double backward is slow on a CPU and curvlinops'
            # vmapped one slower still (SLQ 64 x 4 alone: minutes per contestant).
            "conv": ScalePlan(2, dict(_LONG), {("slq64", 1)}),
        },
        "memory_scales": ("small",),
    },
    "full": {
        "threads": (1, 2),
        "scales": {
            "small": ScalePlan(3, {"slq64": 1}),
            "conv": ScalePlan(3, dict(_LONG), set(_AT2)),
            # 1.6M weights: one repetition of every long operation at one thread, the
            # products and SLQ 10 x 4 also at two. SLQ 64 x 4 (~20 min at one thread for
            # all contestants) only with --large-slq64 (see run.py).
            "large": ScalePlan(3, dict(_LONG), set(_AT2) | {("slq64", 1)}),
        },
        "memory_scales": ("small", "large"),
    },
}
