"""Stochastic estimates with standard errors, and the probe vectors they are built from.

Probe ``s`` of seed ``seed`` is a Rademacher (±1) vector drawn from its own CPU
generator seeded from ``(seed, s)``. It therefore does not depend on how probes are
grouped into blocks, on the device, or on the number of processes: every rank of a
distributed run draws the same probes, and Hutchinson with seed ``s`` uses the same
vectors as the start vectors of SLQ with seed ``s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate and its standard error.

    Attributes:
        value: The estimate (a float, or a tensor for per-entry estimates such as a
            diagonal).
        stderr: Standard error of ``value``, same type and shape (``nan`` when it cannot
            be estimated, e.g. from a single sample).
        num_samples: Number of independent samples (probes, runs) averaged.
    """

    value: Tensor | float
    stderr: Tensor | float
    num_samples: int

    def to_dict(self) -> dict:
        """JSON-ready form (tensors become lists)."""

        def plain(v):
            return v.tolist() if isinstance(v, Tensor) else float(v)

        return {"value": plain(self.value), "stderr": plain(self.stderr), "n": self.num_samples}

    def __str__(self) -> str:
        if isinstance(self.value, Tensor) and self.value.numel() > 1:
            return f"Estimate(shape={tuple(self.value.shape)}, n={self.num_samples})"
        return f"{float(self.value):.6g} ± {float(self.stderr):.2g} (n={self.num_samples})"


def probe_rows(
    seed: int, start: int, count: int, dim: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Rademacher probes ``start .. start+count-1`` of ``seed`` as rows ``(count, dim)``.

    Example:
        >>> a = probe_rows(0, 0, 3, 5, torch.float64, torch.device("cpu"))
        >>> b = probe_rows(0, 1, 1, 5, torch.float64, torch.device("cpu"))
        >>> bool(torch.equal(a[1:2], b)), sorted(set(a.flatten().tolist()))
        (True, [-1.0, 1.0])
    """
    out = torch.empty(count, dim, dtype=torch.int8)
    gen = torch.Generator(device="cpu")
    for i in range(count):
        state = np.random.SeedSequence([int(seed) % 2**64, start + i]).generate_state(2)
        gen.manual_seed(int(state[0]) << 32 | int(state[1]))
        out[i] = torch.randint(0, 2, (dim,), generator=gen, dtype=torch.int8)
    return out.to(device=device, dtype=dtype).mul_(2).sub_(1)


class RunningMean:
    """Per-entry mean and variance of samples arriving in blocks (Chan et al. merge).

    Numerically stable when the mean is much larger than the spread, unlike
    ``E[x²] - E[x]²``.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, samples: Tensor) -> None:
        """Add a block of samples stacked along dimension 0."""
        k = samples.shape[0]
        b_mean = samples.mean(0)
        b_m2 = ((samples - b_mean) ** 2).sum(0)
        if self.mean is None:
            self.n, self.mean, self.m2 = k, b_mean, b_m2
            return
        n = self.n + k
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (k / n)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.n * k / n)
        self.n = n

    def estimate(self) -> Estimate:
        """Mean with standard error ``sqrt(sample variance / n)`` (``nan`` if ``n < 2``)."""
        if self.n < 2:
            stderr = torch.full_like(self.mean, math.nan)
        else:
            stderr = (self.m2 / (self.n - 1) / self.n).sqrt()
        if self.mean.ndim == 0:
            return Estimate(float(self.mean), float(stderr), self.n)
        return Estimate(self.mean, stderr, self.n)
