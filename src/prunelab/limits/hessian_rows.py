"""Hessian-row ℓ1 norms at the global magnitude quantiles (paper 004's zero-curvature mass).

Paper 004 (code ``gradient.py``, notes A.3) estimates how much of the Hessian is
exactly flat: for each sparsity ``p = 0, 1, …, 99 %`` it takes the weight that sits at
the global magnitude threshold of ``p`` and computes the ℓ1 norm of that weight's
Hessian row, ``‖H_t·‖₁ = Σ_j |H_tj|``, by double backward of the gradient entry
``g_t``; the fraction of levels whose norm is below a threshold (``1e-7``) is read as
the fraction of weights with a zero Hessian row.

What is computed here:

* **Which weight**: ``|θ|`` is sorted ascending (stable, so ties go by flat position);
  at level ``p`` the weight is the ``k``-th smallest with ``k = max(1, ⌈p·D⌉)``, i.e.
  the largest weight that global magnitude pruning removes at ``p`` (as 004's
  ``get_sparse_threshold``; at ``p = 0`` the smallest weight).
* **Which Hessian**: ``H`` of the mean loss over every example of the training data
  (or its first ``samples``), unshuffled, model in ``eval()``, over the prunable set
  (``j`` runs over the prunable weights; biases are not in the row). The mean-loss
  Hessian is a sum over batches of ``(n_b / N)`` times the batch's Hessian, so the row
  norm is a **per-example mean** that does not depend on the batch size. (004's code
  adds per-batch ``|H|`` sums without the ``n_b`` weight and divides by ``N``, which
  gives about ``1 / batch_size`` of this; its ``1e-7`` therefore meant roughly
  ``128 · 1e-7`` here. We do not copy that quirk; choose ``threshold`` accordingly.)
* **How**: the row ``t`` of the symmetric ``H`` is ``H e_t``, one Hessian-vector
  product with a unit vector; the library's product (``rev-rev``) *is* the double
  backward of ``g_t`` (the vector-Jacobian product of the gradient with ``e_t``).
  Rows are formed ``block`` at a time, sharing one forward/backward pass per batch, in
  float64 by default (a float64 copy of the model; the original is not touched).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunelab.data.base import DataBundle
    >>> x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    >>> data = DataBundle("toy", (x, y), (x, y), 2, (3,))
    >>> res = hessian_row_norms(nn.Sequential(nn.Linear(3, 2)), data, levels=[0.0, 0.5])
    >>> res.row_l1.shape, res.indices.shape
    ((2,), (2,))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunelab._evaluate import loss_function
from prunelab.curvature import Hessian
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters

#: 004's levels: p = 0, 1, …, 99 % (``index = i·10`` of its 1000-point grid)
DEFAULT_LEVELS = tuple(i / 100 for i in range(100))
#: 004's threshold on the row norm (its scale was ~1/128 of ours: module docstring)
DEFAULT_THRESHOLD = 1e-7


@dataclass(frozen=True)
class HessianRows:
    """Hessian-row ℓ1 norms of the weights at the magnitude thresholds.

    Attributes:
        levels: ``(K,)`` sparsities ``p``.
        indices: ``(K,)`` flat index (in the concatenated prunable set) of the weight at
            each level's threshold.
        magnitudes: ``(K,)`` ``|θ_t|`` of those weights (weight units).
        row_l1: ``(K,)`` ``Σ_j |H_tj|`` (loss per weight², mean over examples).
        threshold: The threshold of :attr:`fraction_below`.
        num_examples: ``N`` examples in the Hessian.
        dim: ``D``, prunable weights (the row length).
    """

    levels: np.ndarray
    indices: np.ndarray
    magnitudes: np.ndarray
    row_l1: np.ndarray
    threshold: float
    num_examples: int
    dim: int

    @property
    def fraction_below(self) -> float:
        """Fraction of levels whose row norm is ``< threshold`` (004's ``num`` / 100)."""
        return float(np.mean(self.row_l1 < self.threshold))

    def fraction_below_at(self, threshold: float) -> float:
        """The same fraction at another threshold (the norms do not depend on it)."""
        return float(np.mean(self.row_l1 < float(threshold)))

    def to_dict(self) -> dict:
        """Plain dict (lists), with :attr:`fraction_below`."""
        return {"levels": self.levels.tolist(), "indices": self.indices.tolist(),
                "magnitudes": self.magnitudes.tolist(), "row_l1": self.row_l1.tolist(),
                "threshold": self.threshold, "fraction_below": self.fraction_below,
                "num_examples": self.num_examples, "dim": self.dim}  # fmt: skip


def threshold_indices(weights_flat, levels: Sequence[float]) -> np.ndarray:
    """Flat index of the weight at the global magnitude threshold of each level.

    The ``k``-th smallest ``|θ|`` (stable sort: ties by position), ``k = max(1, ⌈p·D⌉)``.

    Args:
        weights_flat: ``(D,)`` weights (array or tensor).
        levels: Sparsities in ``[0, 1)``.

    Returns:
        ``(K,)`` int64 indices.

    Example:
        >>> threshold_indices(np.array([0.3, -0.1, 0.2, 0.4]), [0.0, 0.5, 0.75]).tolist()
        [1, 2, 0]
    """
    if hasattr(weights_flat, "detach"):
        weights_flat = weights_flat.detach().cpu().double().numpy()
    w = np.abs(np.asarray(weights_flat, dtype=np.float64).reshape(-1))
    order = np.argsort(w, kind="stable")
    ks = [max(1, math.ceil(float(p) * w.size)) for p in levels]
    return order[np.asarray(ks, dtype=np.int64) - 1]


def _check_levels(levels) -> np.ndarray:
    lv = np.asarray(list(levels), dtype=np.float64)
    if lv.ndim != 1 or lv.size == 0 or not np.all((lv >= 0) & (lv < 1)):
        raise PrunelabError(
            f"levels must be a non-empty list of sparsities in [0, 1), got {levels!r}"
        )
    return lv


def hessian_row_norms(
    model: nn.Module,
    data: DataBundle,
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    samples: int | None = None,
    batch_size: int = 256,
    block: int = 16,
    double: bool = True,
    spec: PrunableSpec | None = None,
    loss_fn=None,
) -> HessianRows:
    """ℓ1 norms of the Hessian rows of the weights at the magnitude thresholds (module doc).

    Args:
        model: A trained network (not modified; a copy is measured in ``eval()``).
        data: Its dataset; the training split feeds the Hessian.
        levels: Sparsities ``p`` (default 0, 1, …, 99 %).
        threshold: Row norms below it count as zero rows (per-example mean scale).
        samples: Use the first ``samples`` training examples (``None``: all of them).
        batch_size: Examples per product batch (memory only: the result is a mean over
            examples whatever the batching).
        block: Rows formed per pass over the data (memory ``block × D`` floats).
        double: Measure a float64 copy (default) instead of the model's own dtype.
        spec: Prunable set (the row's index set).
        loss_fn: Mean-reduced ``(output, y) -> loss``; default: the task loss.

    Returns:
        :class:`HessianRows`.

    Raises:
        PrunelabError: Bad levels, threshold, counts, or an empty prunable set.
    """
    lv = _check_levels(levels)
    if not (math.isfinite(threshold) and threshold >= 0):
        raise PrunelabError(f"threshold must be a finite number >= 0, got {threshold!r}")
    for name, v in (("batch_size", batch_size), ("block", block)) + (
        (("samples", samples),) if samples is not None else ()
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PrunelabError(f"{name} must be an integer >= 1, got {v!r}")
    work = copy.deepcopy(model).eval()
    if double:
        work = work.double()
    params = prunable_parameters(work, spec)
    if not params:
        raise PrunelabError("the prunable set is empty: no Hessian rows to measure")
    dtype = next(iter(params.values())).dtype
    batches = [
        (x.to(dtype), y.to(dtype) if y.is_floating_point() else y)
        for x, y in data.batches("train", batch_size, shuffle=False, limit=samples)
    ]
    op = Hessian(work, loss_fn or loss_function(data), batches, params=list(params))
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    idx = threshold_indices(flat, lv)
    norms = np.empty(idx.size)
    for start in range(0, idx.size, block):
        chunk = idx[start : start + block]
        units = torch.zeros(op.dim, chunk.size, dtype=op.dtype, device=op.device)
        units[torch.as_tensor(chunk), torch.arange(chunk.size)] = 1.0
        rows = op.matmat(units)  # column c = H e_t = row t of the symmetric H
        norms[start : start + chunk.size] = rows.abs().sum(0).double().cpu().numpy()
    return HessianRows(
        levels=lv,
        indices=idx,
        magnitudes=flat.abs().double().cpu().numpy()[idx],
        row_l1=norms,
        threshold=float(threshold),
        num_examples=op.num_examples,
        dim=op.dim,
    )
