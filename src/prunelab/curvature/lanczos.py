"""Lanczos tridiagonalisation with full re-orthogonalisation, several chains as one block.

Each chain builds an orthonormal Krylov basis ``q_0 .. q_{m-1}`` of the operator from
its start vector and the symmetric tridiagonal ``T`` (diagonal ``α``, off-diagonal
``β``). ``r`` independent chains advance together: step ``j`` applies the operator to
all ``r`` current vectors in **one** ``matmat`` (one pass over the data).

Memory: full re-orthogonalisation keeps every basis vector, ``r × m`` vectors of ``D``
entries (``r·m·D·itemsize`` bytes; 4 runs × 128 steps × 1.6M float32 ≈ 3.3 GB). The
basis is refused above ``max_basis_bytes`` (4 GiB by default) rather than swapping,
unless ``max_memory`` is given: then the storage is chosen to fit it (full, half
precision, or the latest vectors only; :mod:`prunelab.curvature._basis`).

Breakdown: when ``β_j ≤ tol · max(|α|, β)`` the chain has found an invariant subspace
(it has seen every distinct eigenvalue its start vector touches). That chain stops
early: its quadrature is then exact, and drawing a fresh random vector instead (as
PyHessian does) would bias the SLQ weights. The result records each chain's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from prunelab.curvature._basis import KrylovBasis, parse_bytes
from prunelab.curvature._checks import check_int, check_operator
from prunelab.curvature.estimate import probe_rows
from prunelab.curvature.operator import CurvatureOperator
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

#: Default cap on the memory of the stored Krylov basis (bytes).
MAX_BASIS_BYTES = 4 * 2**30


@dataclass
class LanczosResult:
    """Tridiagonal coefficients of ``r`` Lanczos chains.

    Attributes:
        alphas: ``(r, m)`` float64 diagonals ``α_j``; zero after a chain's length.
        betas: ``(r, m)`` float64; ``betas[i, j]`` is the norm of the residual after step
            ``j`` (the off-diagonal ``β_{j+1}`` for ``j < length-1``, and the final
            residual norm at ``j = length-1``, ≈0 after a breakdown).
        lengths: ``(r,)`` number of steps each chain took (``<= num_iters``).
        breakdown: ``(r,)`` True where a chain stopped early at an invariant subspace.
        num_iters: Steps requested after clamping to ``D``.
        requested_iters: Steps the caller asked for.
        dim: ``D``.
        basis: ``(r, m, D)`` Krylov bases when ``keep_basis=True``, else None.
        basis_mode: How the basis was kept: ``"full"``, ``"half"`` or ``"window"``.
        basis_bytes: Bytes it took (stored vectors + the two recurrence vectors).
    """

    alphas: Tensor
    betas: Tensor
    lengths: Tensor
    breakdown: Tensor
    num_iters: int
    requested_iters: int
    dim: int
    basis: Tensor | None = None
    basis_mode: str = "full"
    basis_bytes: int = 0

    @property
    def clamped(self) -> bool:
        """True when ``requested_iters`` exceeded ``D`` and was reduced to ``D``."""
        return self.num_iters < self.requested_iters

    def tridiagonal(self, run: int = 0) -> Tensor:
        """The ``(L, L)`` float64 tridiagonal ``T`` of chain ``run`` (``L`` its length)."""
        n = int(self.lengths[run])
        off = self.betas[run, : n - 1]
        return torch.diag(self.alphas[run, :n]) + torch.diag(off, 1) + torch.diag(off, -1)

    def ritz(self, run: int = 0) -> tuple[Tensor, Tensor]:
        """Ritz values ``(L,)`` ascending and eigenvectors ``(L, L)`` of chain ``run``'s ``T``."""
        return torch.linalg.eigh(self.tridiagonal(run))


def clamp_iters(num_iters: int, dim: int, what: str = "num_iters") -> int:
    """Clamp a Krylov dimension to ``D`` with a logged warning."""
    check_int(num_iters, what, 1)
    if num_iters > dim:
        log.warning("%s=%d exceeds the dimension D=%d; clamped to %d", what, num_iters, dim, dim)
        return dim
    return num_iters


def run_chains(
    op: CurvatureOperator,
    starts: Tensor,
    num_iters: int,
    *,
    tol: float | None = None,
    max_basis_bytes: int = MAX_BASIS_BYTES,
    max_memory: int | str | None = None,
    stop: Callable[[int, Tensor, Tensor], bool] | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, KrylovBasis]:
    """Advance ``r`` chains from the rows of ``starts`` for up to ``num_iters`` steps.

    Args:
        op: The operator.
        starts: ``(r, D)`` start vectors (normalised here).
        num_iters: ``m``, at most ``D``.
        tol: Relative breakdown threshold (default ``1000 · eps`` of the dtype).
        max_basis_bytes: Without ``max_memory``: refuse a full basis larger than this.
        max_memory: Cap (bytes, or e.g. ``"512MiB"``) that chooses how the basis is
            kept: in full, in half precision, or only its latest vectors
            (see :mod:`prunelab.curvature._basis`). ``None``: always in full.
        stop: Optional ``stop(j, alphas, betas) -> bool`` checked after step ``j``.
        on_step: Optional ``on_step()`` called after every operator product (progress).

    Returns:
        ``(alphas, betas, lengths, breakdown, basis)`` as in :class:`LanczosResult`, with
        ``basis`` the :class:`~prunelab.curvature._basis.KrylovBasis` (its ``mode``,
        ``nbytes`` and ``tensor()``).
    """
    r, dim = starts.shape
    cap = parse_bytes(max_memory)
    need = r * num_iters * dim * starts.element_size()
    if cap is None and need > max_basis_bytes:
        raise PrunelabError(
            f"Lanczos basis needs {need / 2**30:.2f} GiB ({r} runs x {num_iters} steps x D={dim}) "
            f"> max_basis_bytes={max_basis_bytes}; use fewer iterations or runs, or set "
            "max_memory (the basis is then kept in half precision or in part)"
        )
    tol = 1e3 * torch.finfo(op.dtype).eps if tol is None else float(tol)
    basis = KrylovBasis(r, num_iters, dim, op.dtype, op.device, cap)
    if basis.mode != "full":
        log.info(
            "Lanczos basis: %s storage (%d of %d vectors per chain, %.1f MiB <= max_memory)",
            basis.mode,
            basis.window,
            num_iters,
            basis.nbytes / 2**20,
        )
    # The recurrence's two vectors, full precision, all chains (rows of finished chains
    # are left as they are).
    cur = starts.to(op.dtype) / starts.norm(dim=1, keepdim=True)
    prev = torch.zeros_like(cur)
    basis.put(0, cur)
    alphas = torch.zeros(r, num_iters, dtype=torch.float64)
    betas = torch.zeros(r, num_iters, dtype=torch.float64)
    lengths = torch.zeros(r, dtype=torch.int64)
    broke = torch.zeros(r, dtype=torch.bool)
    active = torch.arange(r)
    for j in range(num_iters):
        full = len(active) == r
        q = cur if full else cur[active]
        try:
            w = op._matmat_rows(q)
        except PrunelabError as exc:
            raise PrunelabError(f"Lanczos step {j + 1} of {num_iters}: {exc}") from None
        if on_step is not None:
            on_step()
        a = (w * q).sum(1)
        w -= a[:, None] * q
        if j > 0:
            w -= betas[active, j - 1].to(w)[:, None] * (prev if full else prev[active])
        w = basis.orthogonalise(w, j, active, full)
        b = w.norm(dim=1)
        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
            raise PrunelabError(f"Lanczos step {j + 1} of {num_iters}: non-finite coefficients")
        alphas[active, j] = a.double().cpu()
        betas[active, j] = b.double().cpu()
        lengths[active] = j + 1
        if j == num_iters - 1:
            break
        scale = torch.maximum(alphas[active, : j + 1].abs().amax(1), betas[active, : j + 1].amax(1))
        done = betas[active, j] <= tol * scale
        broke[active[done]] = True
        keep = ~done
        nxt = w[keep.to(w.device)] / b[keep.to(b.device), None]
        prev[active[keep]] = q[keep.to(q.device)]  # copied before cur (q may be cur) changes
        cur[active[keep]] = nxt
        basis.put(j + 1, nxt, None if bool(keep.all()) and full else active[keep])
        active = active[keep]
        if len(active) == 0 or (stop is not None and stop(j, alphas, betas)):
            break
    return alphas, betas, lengths, broke, basis


def lanczos(
    op: CurvatureOperator,
    num_iters: int,
    seed: int = 0,
    *,
    num_runs: int = 1,
    tol: float | None = None,
    max_basis_bytes: int = MAX_BASIS_BYTES,
    max_memory: int | str | None = None,
    keep_basis: bool = False,
    on_step: Callable[[], None] | None = None,
) -> LanczosResult:
    """Run ``num_runs`` Lanczos chains from Rademacher starts, as one block.

    Args:
        op: A curvature operator.
        num_iters: Steps ``m`` per chain; clamped to ``D`` with a logged warning (the
            result records the clamp).
        seed: Start vector of run ``i`` is Rademacher probe ``i`` of ``seed``.
        num_runs: Number of independent chains ``r``.
        tol: Relative breakdown threshold (default ``1000 · eps``).
        max_basis_bytes: Without ``max_memory``: refuse a basis (``r·m·D`` entries)
            larger than this.
        max_memory: Memory cap (bytes or e.g. ``"512MiB"``) that picks the basis storage:
            full re-orthogonalisation if it fits, else a half-precision basis, else
            local re-orthogonalisation against the latest vectors that fit
            (:mod:`prunelab.curvature._basis`). Recorded in the result.
        keep_basis: Return the Krylov bases (for Ritz vectors; refused when only the
            latest vectors were kept).
        on_step: Optional ``on_step()`` after every step (one operator product); the
            caller draws progress from it, the library never prints.

    Returns:
        :class:`LanczosResult`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import Hessian
        >>> net = nn.Sequential(nn.Linear(3, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> H = Hessian(net, nn.functional.cross_entropy, [(x, y)])
        >>> res = lanczos(H, num_iters=6)
        >>> top = float(res.ritz(0)[0].max())
        >>> abs(top - float(torch.linalg.eigvalsh(H.to_dense()).max())) < 1e-10
        True
    """
    op = check_operator(op)
    check_int(num_runs, "num_runs", 1)
    m = clamp_iters(num_iters, op.dim)
    starts = probe_rows(seed, 0, num_runs, op.dim, op.dtype, op.device)
    alphas, betas, lengths, broke, basis = run_chains(
        op,
        starts,
        m,
        tol=tol,
        max_basis_bytes=max_basis_bytes,
        max_memory=max_memory,
        on_step=on_step,
    )
    if bool(broke.any()):
        log.info(
            "Lanczos: %d of %d chains broke down early (lengths %s)",
            int(broke.sum()),
            num_runs,
            lengths.tolist(),
        )
    return LanczosResult(
        alphas,
        betas,
        lengths,
        broke,
        m,
        num_iters,
        op.dim,
        basis.tensor() if keep_basis else None,
        basis.mode,
        basis.nbytes,
    )
