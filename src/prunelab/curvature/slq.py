"""Stochastic Lanczos quadrature: the spectral measure of a curvature operator.

Run ``r`` of ``m`` Lanczos steps from the normalised Rademacher vector ``v_r`` gives the
Gauss quadrature ``v_rᵀ f(A) v_r ≈ Σ_j τ_j f(θ_j)`` with Ritz values ``θ_j`` and weights
``τ_j = (e_1ᵀ u_j)²``. Since ``‖z‖² = D`` for a Rademacher ``z``,
``tr f(A) ≈ D · mean_r Σ_j τ_rj f(θ_rj)``, with a standard error over runs.

The result is kept as the discrete measure ``{(θ, τ)}``. A smoothed density is offered
for plots only: integrating against a binned density loses most of the weight
information once the spectrum spans more than ~100 (methods.md §1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from prunelab.curvature.estimate import Estimate
from prunelab.curvature.lanczos import MAX_BASIS_BYTES, LanczosResult, lanczos
from prunelab.curvature.operator import CurvatureOperator


@dataclass
class SpectralMeasure:
    """The SLQ measure: per run, Ritz values (nodes) and quadrature weights.

    Built by :func:`slq` (plain Gauss rule, Ritz values) or by
    :func:`~prunelab.curvature.quadrature_measure` (any quadrature rule).

    Attributes:
        nodes: ``(runs, m)`` float64 Ritz values, ascending within a run (for the Gauss
            rule); entries past a run's length are padding (0) with zero weight.
        weights: ``(runs, m)`` float64 weights ``τ``; each run's weights sum to 1.
        lengths: ``(runs,)`` real nodes of each run: the Lanczos steps it took (< m after a
            breakdown) for the Gauss rule.
        dim: ``D``, the operator dimension.
        num_iters: ``m`` after clamping to ``D``.
        requested_iters: ``m`` as requested.
        seed: Seed of the start vectors.
        residuals: ``(runs, m)`` residual bounds ``β |u_last|`` of each Ritz pair (NaN
            for rules whose nodes are not Ritz values).
    """

    nodes: Tensor
    weights: Tensor
    lengths: Tensor
    dim: int
    num_iters: int
    requested_iters: int
    seed: int
    residuals: Tensor

    @classmethod
    def from_lanczos(cls, res: LanczosResult, seed: int) -> SpectralMeasure:
        """Eigen-solve each run's tridiagonal (``torch.linalg.eigh``) into nodes and weights."""
        r, m = res.alphas.shape
        nodes = torch.zeros(r, m, dtype=torch.float64)
        weights = torch.zeros(r, m, dtype=torch.float64)
        resid = torch.zeros(r, m, dtype=torch.float64)
        for i in range(r):
            n = int(res.lengths[i])
            theta, U = res.ritz(i)
            nodes[i, :n], weights[i, :n] = theta, U[0] ** 2
            resid[i, :n] = (res.betas[i, n - 1] * U[-1]).abs()
        return cls(
            nodes,
            weights,
            res.lengths.clone(),
            res.dim,
            res.num_iters,
            res.requested_iters,
            seed,
            resid,
        )

    @property
    def num_runs(self) -> int:
        """Number of independent runs ``r``."""
        return self.nodes.shape[0]

    @property
    def clamped(self) -> bool:
        """True when the requested number of steps exceeded ``D`` and was clamped."""
        return self.num_iters < self.requested_iters

    @property
    def mask(self) -> Tensor:
        """``(runs, m)`` True for real (non-padding) nodes."""
        return torch.arange(self.nodes.shape[1])[None, :] < self.lengths[:, None]

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(nodes, weights)`` as float64 NumPy arrays ``(runs, m)`` (padding: weight 0)."""
        return self.nodes.detach().cpu().numpy(), self.weights.detach().cpu().numpy()

    def expect(self, f: Callable[[Tensor], Tensor] | None = None) -> Estimate:
        """``mean_r Σ_j τ_rj f(θ_rj) ≈ E_v[vᵀ f(A) v] = tr f(A) / D``.

        Args:
            f: Elementwise function of a float64 tensor of nodes (identity if None).

        Returns:
            :class:`Estimate` over runs (stderr ``nan`` with a single run).
        """
        vals = self.nodes if f is None else f(self.nodes)
        per_run = torch.where(self.mask, self.weights * vals, 0.0).sum(1)
        stderr = float(per_run.std() / math.sqrt(self.num_runs)) if self.num_runs > 1 else math.nan
        return Estimate(float(per_run.mean()), stderr, self.num_runs)

    def trace_of(self, f: Callable[[Tensor], Tensor] | None = None) -> Estimate:
        """Estimate of ``tr f(A) = D · expect(f)`` (``tr A`` when ``f`` is None)."""
        e = self.expect(f)
        return Estimate(self.dim * e.value, self.dim * e.stderr, e.num_samples)

    def trace_estimate(self) -> Estimate:
        """Estimate of ``tr A = D · E[θ]``."""
        return self.trace_of(None)

    def extremes(self) -> tuple[float, float]:
        """Smallest and largest Ritz value over all runs."""
        real = self.nodes[self.mask]
        return float(real.min()), float(real.max())

    def density(self, grid: Tensor, sigma: float) -> Tensor:
        """Gaussian-smoothed density ``mean_r Σ_j τ_rj N(x; θ_rj, σ²)`` at ``grid`` (plots only).

        Args:
            grid: Points ``x`` (any shape).
            sigma: Kernel standard deviation (> 0), in eigenvalue units.

        Returns:
            Density values, same shape as ``grid``, float64.
        """
        x = torch.as_tensor(grid, dtype=torch.float64)
        z = (x.reshape(-1, 1, 1) - self.nodes[None]) / sigma
        k = torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
        dens = torch.where(self.mask[None], self.weights[None] * k, 0.0).sum(2).mean(1)
        return dens.reshape(x.shape)

    def to_dict(self) -> dict:
        """JSON-ready form (lists trimmed to each run's length)."""
        runs = []
        for i in range(self.num_runs):
            n = int(self.lengths[i])
            runs.append(
                {
                    "nodes": self.nodes[i, :n].tolist(),
                    "weights": self.weights[i, :n].tolist(),
                    "residuals": self.residuals[i, :n].tolist(),
                }
            )
        return {
            "dim": self.dim,
            "num_iters": self.num_iters,
            "requested_iters": self.requested_iters,
            "seed": self.seed,
            "runs": runs,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpectralMeasure:
        """Inverse of :meth:`to_dict`."""
        r = len(d["runs"])  # a rule other than Gauss can have more nodes than steps
        m = max([int(d["num_iters"])] + [len(run["nodes"]) for run in d["runs"]])
        nodes, weights, resid = (torch.zeros(r, m, dtype=torch.float64) for _ in range(3))
        lengths = torch.zeros(r, dtype=torch.int64)
        for i, run in enumerate(d["runs"]):
            n = lengths[i] = len(run["nodes"])
            nodes[i, :n] = torch.tensor(run["nodes"], dtype=torch.float64)
            weights[i, :n] = torch.tensor(run["weights"], dtype=torch.float64)
            resid[i, :n] = torch.tensor(run["residuals"], dtype=torch.float64)
        return cls(
            nodes,
            weights,
            lengths,
            int(d["dim"]),
            int(d["num_iters"]),
            int(d["requested_iters"]),
            int(d["seed"]),
            resid,
        )


def slq(
    op: CurvatureOperator,
    num_iters: int,
    num_runs: int,
    seed: int = 0,
    *,
    tol: float | None = None,
    max_basis_bytes: int = MAX_BASIS_BYTES,
    max_memory: int | str | None = None,
    on_step: Callable[[], None] | None = None,
) -> SpectralMeasure:
    """Stochastic Lanczos quadrature with ``num_runs`` chains advanced as one block.

    Each Lanczos step is one ``matmat`` of all runs, i.e. one pass over the data.

    Args:
        op: A curvature operator.
        num_iters: Lanczos steps ``m`` per run (clamped to ``D``, recorded in the result).
        num_runs: Independent Rademacher start vectors (>= 2 for standard errors).
        seed: Run ``i`` starts from Rademacher probe ``i`` of ``seed``.
        tol: Relative breakdown threshold (see :func:`lanczos`).
        max_basis_bytes: Without ``max_memory``: refuse a larger basis
            (``num_runs · m · D`` entries).
        max_memory: Memory cap choosing the basis storage (see :func:`lanczos`).
        on_step: Optional ``on_step()`` after every Lanczos step (progress).

    Returns:
        :class:`SpectralMeasure`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import Hessian
        >>> net = nn.Sequential(nn.Linear(3, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> mu = slq(Hessian(net, nn.functional.cross_entropy, [(x, y)]), 6, 4)
        >>> [round(float(s), 12) for s in mu.weights.sum(1)]
        [1.0, 1.0, 1.0, 1.0]
    """
    res = lanczos(
        op,
        num_iters,
        seed,
        num_runs=num_runs,
        tol=tol,
        max_basis_bytes=max_basis_bytes,
        max_memory=max_memory,
        on_step=on_step,
    )
    return SpectralMeasure.from_lanczos(res, seed)
