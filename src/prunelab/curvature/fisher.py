"""The empirical Fisher ``F = mean_n g_n g_nᵀ`` (per-example gradients ``g_n``) as an operator.

``F v = mean_n g_n (g_nᵀ v)`` is formed without storing any per-example gradient: the
``n`` inner products ``g_nᵀ v`` are one forward-mode pass over the vector of
per-example losses, and ``Σ_n c_n g_n`` is one reverse-mode pass with cotangent ``c``.
Never the outer product of the mean gradient (methods.md §1).
"""

from __future__ import annotations

from torch.func import jvp, vjp, vmap

from prunelab.curvature._problem import check_mean_reduced, per_example_losses
from prunelab.curvature.operator import CurvatureOperator


class EmpiricalFisher(CurvatureOperator):
    """Empirical Fisher ``F = (1/N) Σ_n ∇ℓ_n ∇ℓ_nᵀ`` over all examples of ``batches``.

    ``ℓ_n`` is ``loss_fn`` applied to example ``n`` alone; ``loss_fn`` must be a mean of
    per-example terms (checked on the first batch). Other arguments are those of
    :class:`~prunelab.curvature.operator.CurvatureOperator`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 2)).double()
        >>> x, y = torch.randn(4, 3, dtype=torch.float64), torch.randint(0, 2, (4,))
        >>> F = EmpiricalFisher(net, nn.functional.cross_entropy, [(x, y)])
        >>> dense = F.to_dense()
        >>> bool(torch.allclose(dense, dense.T)), bool(torch.linalg.eigvalsh(dense).min() > -1e-12)
        (True, True)
    """

    kind = "empirical Fisher"

    def __init__(self, model, loss_fn, batches, params=None, **kwargs):
        super().__init__(model, loss_fn, batches, params, **kwargs)
        check_mean_reduced(self.problem)

    def _kernel(self, theta, x, y, vs):
        p = self.problem

        def losses(th):
            return per_example_losses(p, th, x, y)

        values, pullback = vjp(losses, theta)
        gv = vmap(lambda v: jvp(losses, (theta,), (v,))[1])(vs)  # (k, n): g_nᵀ v
        return vmap(pullback)(gv / x.shape[0])[0], values.mean()
