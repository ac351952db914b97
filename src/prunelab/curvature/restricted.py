"""A curvature operator restricted to single flat coordinates: the block ``A[idx][:, idx]``.

:meth:`CurvatureOperator.restrict` keeps whole parameters. The spectral pruning limit
needs single weights left out (already pruned ones, null-space ones), so
:class:`RestrictedOperator` scatters probe rows into the full space, multiplies by the
wrapped operator and gathers the kept coordinates back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunelab.curvature.operator import CurvatureOperator


class RestrictedOperator(CurvatureOperator):
    """A curvature operator restricted to a subset of flat coordinates: ``A[idx][:, idx]``.

    Only the products, ``dim``, ``dtype`` and ``device`` are provided (what Lanczos / SLQ
    use); the parameter-level descriptions of the base class do not apply.

    Args:
        op: The full :class:`~prunelab.curvature.CurvatureOperator`.
        index: Long tensor of the kept flat coordinates, shape ``(n,)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from prunelab.curvature import Hessian
        >>> net = nn.Sequential(nn.Linear(3, 2)).double()
        >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        >>> H = Hessian(net, nn.functional.cross_entropy, [(x, y)])
        >>> idx = torch.tensor([0, 2, 5])
        >>> sub = RestrictedOperator(H, idx)
        >>> torch.allclose(sub.to_dense(), H.to_dense()[idx][:, idx])
        True
    """

    kind = "restricted curvature"

    def __init__(self, op: CurvatureOperator, index: Tensor) -> None:
        # No super().__init__: the data and model live in the wrapped operator.
        self.op = op
        self.index = index.to(op.device)
        self.compile, self._compiled = False, None

    @property
    def dim(self) -> int:
        """Number of kept coordinates."""
        return int(self.index.numel())

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the wrapped operator."""
        return self.op.dtype

    @property
    def device(self) -> torch.device:
        """Device of the wrapped operator."""
        return self.op.device

    def _matmat_rows(self, rows: Tensor) -> Tensor:
        """``(k, n)`` probe rows → ``(k, n)`` products of the restricted block."""
        full = rows.new_zeros((rows.shape[0], self.op.dim))
        full[:, self.index] = rows
        return self.op._matmat_rows(full)[:, self.index]

    def __repr__(self) -> str:
        return f"RestrictedOperator(dim={self.dim} of {self.op!r})"


def restrict_to_mask(op: CurvatureOperator, keep: Tensor) -> CurvatureOperator:
    """``op`` restricted to the flat coordinates where ``keep`` is True (``op`` itself if all).

    Args:
        op: A curvature operator of dimension ``D``.
        keep: Bool tensor of shape ``(D,)``.

    Returns:
        ``op`` when every coordinate is kept, else a :class:`RestrictedOperator`.
    """
    if bool(keep.all()):
        return op
    return RestrictedOperator(op, torch.nonzero(keep).reshape(-1))
