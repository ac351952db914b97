"""What every contestant must do, and prunelab's entries.

A contestant offers the benchmark operations on a :class:`~_models.Problem`. Every
operation builds its operator afresh, so what is timed is what a user who calls it once
pays (operator set-up included); iterative methods amortise that set-up themselves.
An operation a package does not offer returns ``NotImplemented`` and is reported as
"–". Vectors are flat ``(D,)`` float32 tensors in ``named_parameters`` order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunelab import curvature as cv

#: Relative tolerance of every top-eigenvalue method.
EIG_TOL = 1e-3


class Contestant:
    """Base: every operation unsupported.

    Each ``op_*`` returns a small dict of results shown beside the timing (for example
    ``{"top": 0.388}``); ``hvp`` and ``hvp_block`` return the product itself.
    """

    name = "?"

    def hvp(self, pb, v: Tensor) -> Tensor:
        """``H v`` for one vector ``v`` of shape ``(D,)``."""
        return NotImplemented

    def hvp_block(self, pb, V: Tensor) -> Tensor:
        """``H V`` for ``V`` of shape ``(D, k)``, however the package does it best."""
        return NotImplemented

    def slq(self, pb, steps: int, runs: int, seed: int) -> dict:
        """Stochastic Lanczos quadrature, ``runs`` chains of ``steps`` products each."""
        return NotImplemented

    def trace(self, pb, probes: int, seed: int) -> dict:
        """Hutchinson trace with exactly ``probes`` products."""
        return NotImplemented

    def diag(self, pb, probes: int, seed: int) -> dict:
        """Hutchinson diagonal with exactly ``probes`` products."""
        return NotImplemented

    def top_eig(self, pb, seed: int) -> dict:
        """Largest eigenvalue to a relative tolerance of :data:`EIG_TOL`."""
        return NotImplemented

    def lanczos_steps(self, pb, steps: int) -> None:
        """``steps`` Lanczos steps of one chain as the package's SLQ does them (memory)."""
        return NotImplemented


class Prunelab(Contestant):
    """prunelab's :class:`~prunelab.curvature.Hessian`, default settings or with options.

    Args:
        name: Label in the report.
        **options: Keyword arguments of ``Hessian`` (``cache=True``) and, under the key
            ``max_memory``, the Lanczos basis cap.
    """

    def __init__(self, name: str = "prunelab", **options):
        self.name = name
        self.max_memory = options.pop("max_memory", None)
        self.options = options

    def _op(self, pb) -> cv.Hessian:
        return cv.Hessian(pb.model, pb.loss_fn, pb.batches, pb.names, **self.options)

    def _mem(self) -> dict:
        return {} if self.max_memory is None else {"max_memory": self.max_memory}

    def hvp(self, pb, v):
        return self._op(pb) @ v

    def hvp_block(self, pb, V):
        return self._op(pb).matmat(V)

    def slq(self, pb, steps, runs, seed):
        mu = cv.slq(self._op(pb), steps, runs, seed, **self._mem())
        return {"top_ritz": mu.extremes()[1], "trace": mu.trace_estimate().value}

    def trace(self, pb, probes, seed):
        return {"trace": cv.trace(self._op(pb), probes, seed).value}

    def diag(self, pb, probes, seed):
        est = cv.hutchinson_diag(self._op(pb), probes, seed)
        return {"diag_sum": float(est.value.sum())}

    def top_eig(self, pb, seed):
        top = cv.top_eigenvalues(self._op(pb), 1, tol=EIG_TOL, seed=seed)
        return {
            "top": float(top.values[0]),
            "products": top.num_iters,
            "residual": float(top.residuals[0]),
        }

    def lanczos_steps(self, pb, steps):
        cv.lanczos(self._op(pb), steps, **self._mem())


def flat(tensors) -> Tensor:
    """Concatenate per-parameter tensors into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(v: Tensor, like) -> list[Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (a list of parameters)."""
    out, start = [], 0
    for p in like:
        out.append(v[start : start + p.numel()].view_as(p))
        start += p.numel()
    return out
