"""Trace estimators: Hutchinson and Hutch++.

- Hutchinson: ``tr A ≈ mean_s z_sᵀ A z_s`` with Rademacher ``z``; variance per probe
  ``2 Σ_{i≠j} A_ij²``.
- Hutch++ (Meyer, Musco, Musco & Woodruff, 2021): spend a third of the products on a
  sketch ``Q = orth(A S)`` of the dominant subspace, take its trace exactly, and apply
  Hutchinson only to the deflated rest ``(I − QQᵀ) A (I − QQᵀ)``. Much smaller error
  when a few eigenvalues dominate, as they do for network Hessians.

In both cases ``num_probes`` counts operator-vector products, so equal budgets compare
fairly; probes go through the operator in blocks (one pass over the data per block).
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunelab.curvature._checks import check_int, check_operator
from prunelab.curvature.estimate import Estimate, RunningMean, probe_rows
from prunelab.curvature.operator import CurvatureOperator
from prunelab.errors import PrunelabError

_METHODS = ("hutchinson", "hutch++")


def _quadratic_forms(op: CurvatureOperator, z: Tensor, block_size: int) -> Tensor:
    """``z_sᵀ A z_s`` for each row of ``z``, in blocks."""
    out = []
    for s in range(0, z.shape[0], block_size):
        blk = z[s : s + block_size]
        out.append((blk * op._matmat_rows(blk)).sum(1))
    return torch.cat(out)


def trace(
    op: CurvatureOperator,
    num_probes: int,
    seed: int = 0,
    method: str = "hutchinson",
    *,
    block_size: int = 10,
) -> Estimate:
    """Estimate ``tr A`` with a standard error.

    Args:
        op: A curvature operator.
        num_probes: Operator-vector products to spend (>= 2; >= 6 for Hutch++).
        seed: Probe seed (Hutchinson probe ``s`` is the same vector as the start of SLQ
            run ``s`` with the same seed).
        method: ``"hutchinson"`` or ``"hutch++"``.
        block_size: Probes per pass over the data.

    Returns:
        :class:`Estimate` of floats. For Hutch++ the stderr is that of the deflated
        Hutchinson part, conditional on the sketch (whose trace is exact).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import GGN
        >>> net = nn.Sequential(nn.Linear(5, 3)).double()
        >>> x, y = torch.randn(4, 5, dtype=torch.float64), torch.randint(0, 3, (4,))
        >>> G = GGN(net, nn.functional.cross_entropy, [(x, y)])
        >>> est = trace(G, num_probes=15, method="hutch++")
        >>> exact = float(G.to_dense().trace())
        >>> abs(est.value - exact) < 4 * est.stderr + 1e-9
        True
    """
    op = check_operator(op)
    check_int(block_size, "block_size", 1)
    if method not in _METHODS:
        raise PrunelabError(
            f"unknown trace method {method!r}; valid choices: {', '.join(_METHODS)}"
        )
    if method == "hutchinson":
        check_int(num_probes, "num_probes", 2)
        stats = RunningMean()
        for start in range(0, num_probes, block_size):
            count = min(block_size, num_probes - start)
            z = probe_rows(seed, start, count, op.dim, op.dtype, op.device)
            stats.add((z * op._matmat_rows(z)).sum(1))
        return stats.estimate()

    check_int(num_probes, "num_probes", 6)
    k = min(num_probes // 3, op.dim)
    rest = num_probes - 2 * k
    sketch = probe_rows(seed, 0, k, op.dim, op.dtype, op.device)
    Y = torch.cat([op._matmat_rows(sketch[s : s + block_size]) for s in range(0, k, block_size)])
    Q = torch.linalg.qr(Y.T).Q.T  # (k, D) orthonormal rows spanning A S
    AQ = torch.cat([op._matmat_rows(Q[s : s + block_size]) for s in range(0, k, block_size)])
    head = float((Q * AQ).sum())
    G = probe_rows(seed, k, rest, op.dim, op.dtype, op.device)
    G = G - (G @ Q.T) @ Q
    stats = RunningMean()
    stats.add(_quadratic_forms(op, G, block_size))
    tail = stats.estimate()
    return Estimate(head + tail.value, tail.stderr, tail.num_samples)
