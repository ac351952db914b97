"""Diagonals of a curvature operator: exact (small models) and Hutchinson's estimate.

These diagonals feed the second-order importance scores (OBD, Taylor-2, Hutchinson):
entry ``i`` of the flat vector belongs to the parameter whose ``op.slices[name]``
contains ``i``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunelab.curvature._checks import check_int, check_operator
from prunelab.curvature.estimate import Estimate, RunningMean, probe_rows
from prunelab.curvature.operator import MAX_DENSE_DIM, CurvatureOperator
from prunelab.errors import PrunelabError


def exact_diagonal(
    op: CurvatureOperator, max_dim: int = MAX_DENSE_DIM, block_size: int = 64
) -> Tensor:
    """The exact diagonal ``A_ii`` by applying ``op`` to every unit vector.

    Costs ``D / block_size`` passes over the data, so it is meant for small models and
    as the reference in tests.

    Args:
        op: A curvature operator.
        max_dim: Refuse when ``D`` exceeds this (default 20,000).
        block_size: Unit vectors per pass.

    Returns:
        ``(D,)`` tensor in the operator's dtype.

    Raises:
        PrunelabError: If ``D > max_dim``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import Hessian
        >>> net = nn.Sequential(nn.Linear(3, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> H = Hessian(net, nn.functional.cross_entropy, [(x, y)])
        >>> bool(torch.allclose(exact_diagonal(H), H.to_dense().diagonal()))
        True
    """
    op = check_operator(op)
    check_int(block_size, "block_size", 1)
    if op.dim > max_dim:
        raise PrunelabError(
            f"exact_diagonal needs D <= max_dim={max_dim}, got D={op.dim}; "
            "use hutchinson_diag for large models"
        )
    diag = torch.empty(op.dim, dtype=op.dtype, device=op.device)
    for start in range(0, op.dim, block_size):
        stop = min(start + block_size, op.dim)
        idx = torch.arange(start, stop, device=op.device)
        eye = torch.zeros(stop - start, op.dim, dtype=op.dtype, device=op.device)
        eye[idx - start, idx] = 1.0
        diag[start:stop] = op._matmat_rows(eye)[idx - start, idx]
    return diag


def hutchinson_diag(
    op: CurvatureOperator, num_probes: int, seed: int = 0, block_size: int = 10
) -> Estimate:
    """Hutchinson's diagonal estimate ``diag(A) ≈ mean_s z_s ⊙ (A z_s)``, Rademacher ``z``.

    Unbiased; the variance of entry ``i`` is ``Σ_{j≠i} A_ij²`` per probe, so the error
    shrinks like ``1/sqrt(num_probes)``. Probes go through ``op`` in blocks of
    ``block_size`` (one pass over the data per block). Same seed → same numbers,
    whatever the block size or number of processes.

    Args:
        op: A curvature operator.
        num_probes: Number of probes ``S`` (at least 2, for the standard error).
        seed: Probe seed.
        block_size: Probes per pass over the data (memory grows with it).

    Returns:
        :class:`Estimate` with ``value`` and per-entry ``stderr`` (sample standard
        deviation over probes / ``sqrt(S)``), both ``(D,)``.
    """
    op = check_operator(op)
    check_int(num_probes, "num_probes", 2)
    check_int(block_size, "block_size", 1)
    stats = RunningMean()
    for start in range(0, num_probes, block_size):
        count = min(block_size, num_probes - start)
        z = probe_rows(seed, start, count, op.dim, op.dtype, op.device)
        stats.add(z * op._matmat_rows(z))
    return stats.estimate()
