"""Global top-k masks at many sparsities from one sort: a pruning *path*.

The ground truths and predictors of :mod:`prunelab.limits` evaluate one score ranking
(usually magnitude) at hundreds of sparsities: the one-shot limit's 0.25 % grid is 400
masks. :meth:`prunelab.masks.Mask.from_scores` sorts all ``D`` scores for each one,
which on an 800k-weight MLP was 87 % of the one-shot limit's time (400 float32 sorts,
0.13 s each). A :class:`MaskPath` ranks once and thresholds the rank at every ``p``:
``O(D)`` per mask instead of ``O(D log D)``.

The masks are *identical* to ``Mask.from_scores(scores, p, min_per_layer=...)`` with
the global scope: the same dtype promotion, the same stable sort (ties: earlier position
first), exactly ``round((1 − p)·D)`` kept. Where a layer would fall below
``min_per_layer`` the path hands that sparsity to :meth:`~prunelab.masks.Mask.from_scores`
itself, so the repair rule is not written twice.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunelab._topk import flat_scores, rank
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec


class MaskPath:
    """The global masks of one score ranking, at any sparsity, from one sort.

    Args:
        scores: ``name -> tensor`` shaped like the parameters; higher = keep.
        spec: The prunable-set rule each mask records.
        min_per_layer: As in :meth:`~prunelab.masks.Mask.from_scores`.

    Example:
        >>> s = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([[1.0, 5.0]])}
        >>> path = MaskPath(s)
        >>> path.at(0.6).masks["b"].tolist(), path.at(0.6).masks["a"].tolist()
        ([[False, True]], [True, False, False])
    """

    def __init__(
        self,
        scores: dict[str, Tensor],
        spec: PrunableSpec | None = None,
        min_per_layer: int = 1,
    ) -> None:
        if not scores:
            raise PrunelabError("scores is empty: the prunable set has no parameters")
        names, parts = flat_scores(scores)
        flat = torch.cat(parts)
        device = flat.device
        order = rank(flat, torch.ones(flat.numel(), dtype=torch.bool, device=device))
        # position of each weight in the ranking: weight i is kept at k iff position < k
        self._position = torch.empty_like(order)
        self._position[order] = torch.arange(order.numel(), device=device)
        self._scores = scores
        self._names = names
        self._shapes = [scores[n].shape for n in names]
        self._sizes = [scores[n].numel() for n in names]
        self._floor = [min(min_per_layer, size) for size in self._sizes]
        self.spec = spec or PrunableSpec()
        self.min_per_layer = min_per_layer

    @property
    def size(self) -> int:
        """``D``, the number of ranked weights."""
        return int(self._position.numel())

    def at(self, sparsity: float) -> Mask:
        """The mask ``Mask.from_scores(scores, sparsity)`` would give (global scope).

        Args:
            sparsity: Fraction removed, in ``[0, 1)``.

        Returns:
            A new :class:`~prunelab.masks.Mask` keeping ``round((1 − p)·D)`` weights.
        """
        p = check_sparsity(sparsity)
        keep = self._position < round((1.0 - p) * self.size)
        parts = torch.split(keep, self._sizes)
        if any(int(t.sum()) < m for t, m in zip(parts, self._floor, strict=True)):
            return Mask.from_scores(
                self._scores, p, min_per_layer=self.min_per_layer, spec=self.spec
            )  # fmt: skip
        masks = {
            n: t.reshape(s) for n, t, s in zip(self._names, parts, self._shapes, strict=True)
        }  # fmt: skip
        return Mask(masks, self.spec)
