"""Extreme eigenvalues of a curvature operator by Lanczos with a convergence test.

A single Lanczos chain converges to the extreme eigenvalues far faster than power
iteration (PyHessian's method). After each step the Ritz pairs of ``T`` give a
residual bound ``‖A y − θ y‖ = β_j |u_last|``; the chain stops once the wanted ``k``
residuals fall below ``tol · |θ|``. A single chain sees each distinct eigenvalue once,
so a repeated eigenvalue is reported once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from prunelab.curvature._checks import check_int, check_operator
from prunelab.curvature.estimate import probe_rows
from prunelab.curvature.lanczos import MAX_BASIS_BYTES, clamp_iters, run_chains
from prunelab.curvature.operator import CurvatureOperator
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

_WHICH = ("largest", "smallest", "magnitude")


@dataclass
class TopEigen:
    """Extreme eigenvalues with their residual bounds.

    Attributes:
        values: ``(k,)`` float64 eigenvalue estimates, most extreme first.
        residuals: ``(k,)`` residual norms ``‖A y − θ y‖`` of the Ritz pairs.
        num_iters: Lanczos steps taken (operator passes over the data).
        converged: Whether every residual is below ``tol · max(|θ|)``.
        vectors: ``(D, k)`` Ritz vectors when asked for, else None.
    """

    values: Tensor
    residuals: Tensor
    num_iters: int
    converged: bool
    vectors: Tensor | None = None


def _pick(theta: Tensor, k: int, which: str) -> Tensor:
    if which == "largest":
        return torch.argsort(theta, descending=True)[:k]
    if which == "smallest":
        return torch.argsort(theta)[:k]
    return torch.argsort(theta.abs(), descending=True)[:k]


def top_eigenvalues(
    op: CurvatureOperator,
    k: int = 1,
    *,
    which: str = "largest",
    tol: float = 1e-6,
    max_iters: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    max_basis_bytes: int = MAX_BASIS_BYTES,
    max_memory: int | str | None = None,
) -> TopEigen:
    """The ``k`` most extreme eigenvalues of ``op``.

    Args:
        op: A curvature operator.
        k: How many eigenvalues.
        which: ``"largest"`` (algebraic), ``"smallest"`` or ``"magnitude"``.
        tol: Relative residual tolerance for convergence.
        max_iters: Cap on Lanczos steps (default ``min(D, max(100, 10 k))``; clamped to
            ``D``).
        seed: Seed of the Rademacher start vector.
        return_vectors: Also return the ``(D, k)`` Ritz vectors.
        max_basis_bytes: Without ``max_memory``: refuse a larger stored basis.
        max_memory: Memory cap choosing the basis storage (see :func:`lanczos`); Ritz
            vectors need the whole basis, so ``return_vectors`` is refused when only
            the latest vectors fit.

    Returns:
        :class:`TopEigen`; ``converged`` is False (and a warning logged) when
        ``max_iters`` ran out first.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import GGN
        >>> net = nn.Sequential(nn.Linear(4, 3)).double()
        >>> x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
        >>> G = GGN(net, nn.functional.cross_entropy, [(x, y)])
        >>> top = top_eigenvalues(G, k=2)
        >>> exact = torch.linalg.eigvalsh(G.to_dense()).flip(0)[:2]
        >>> bool(torch.allclose(top.values, exact, rtol=1e-8))
        True
    """
    op = check_operator(op)
    check_int(k, "k", 1)
    if which not in _WHICH:
        raise PrunelabError(f"unknown which={which!r}; valid choices: {', '.join(_WHICH)}")
    if k > op.dim:
        raise PrunelabError(f"k={k} exceeds the dimension D={op.dim}")
    if max_iters is None:
        m = min(op.dim, max(100, 10 * k))
    else:
        m = clamp_iters(max_iters, op.dim, "max_iters")

    def converged(alphas: Tensor, betas: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, bool]:
        off = betas[0, : n - 1]
        T = torch.diag(alphas[0, :n]) + torch.diag(off, 1) + torch.diag(off, -1)
        theta, U = torch.linalg.eigh(T)
        idx = _pick(theta, min(k, n), which)
        res = (betas[0, n - 1] * U[-1, idx]).abs()
        ok = n >= k and bool((res <= tol * theta[idx].abs().max().clamp_min(1e-300)).all())
        return theta[idx], res, U[:, idx], ok

    def stop(j: int, alphas: Tensor, betas: Tensor) -> bool:
        return j + 1 >= k and converged(alphas, betas, j + 1)[3]

    starts = probe_rows(seed, 0, 1, op.dim, op.dtype, op.device)
    alphas, betas, lengths, broke, basis = run_chains(
        op, starts, m, max_basis_bytes=max_basis_bytes, max_memory=max_memory, stop=stop
    )
    n = int(lengths[0])
    values, res, U, ok = converged(alphas, betas, n)
    ok = ok or bool(broke[0])
    if len(values) < k:
        log.warning(
            "only %d distinct eigenvalues reachable from the start vector (k=%d)", len(values), k
        )
    if not ok:
        log.warning("top_eigenvalues: not converged after %d steps (residuals %s)", n, res.tolist())
    vectors = None
    if return_vectors:
        Q = basis.tensor()
        vectors = Q[0, :n].T @ U.to(Q)
    return TopEigen(values, res, n, ok, vectors)
