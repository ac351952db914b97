"""One-shot pruning: score once at the current weights, keep the top ``(1-p)·D``.

The same loop as :func:`~prunelab.procedures.iterative.iterative` with one step, so
one-shot and iterative runs are recorded identically and compare directly.
"""

from __future__ import annotations

from torch import nn

from prunelab.masks import Mask
from prunelab.procedures.iterative import iterative
from prunelab.procedures.record import PruneRecord


def one_shot(
    model: nn.Module,
    criterion: str,
    sparsity: float,
    batches: list | None = None,
    loss_fn=None,
    **options,
) -> tuple[Mask, PruneRecord]:
    """Prune ``model`` in place to ``sparsity`` with one scoring pass.

    Args:
        model: The network (pruned weights are zeroed in place).
        criterion: A name in :data:`prunelab.scores.CRITERIA`.
        sparsity: Fraction removed, in ``[0, 1)``.
        batches: Scoring ``(x, y)`` batches for data-dependent criteria.
        loss_fn: Mean-reduced loss for data-dependent criteria.
        **options: Keyword options of :func:`~prunelab.procedures.iterative.iterative`
            (``data``, ``scope``, ``spec``, ``previous``, ``finetune``, ``loss_change``,
            ...) and the criterion's hyper-parameters.

    Returns:
        ``(mask, PruneRecord)``.

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> mask, rec = one_shot(net, "magnitude", 0.5)
        >>> mask.nnz, rec.procedure, int((net[0].weight == 0).sum() + (net[2].weight == 0).sum())
        (9, 'one-shot', 9)
    """
    options.setdefault("procedure", "one-shot")
    return iterative(model, criterion, sparsity, 1, batches, loss_fn, **options)
