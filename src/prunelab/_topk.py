"""Top-k selection behind :meth:`prunelab.masks.Mask.from_scores`.

Works on flat score vectors: a stable descending sort (ties: earlier position first),
previously pruned entries forced to the end, exactly ``k`` kept, and the
``min_per_layer`` repair that moves keeps between layers without changing the total.

Two structured rules sit on top: ``scope="row"`` ranks each output row of a weight
(dimension 0; the other dimensions flattened) on its own, as Wanda compares weights;
and an ``N:M`` pattern (:func:`nm_available`) first marks, in every group of ``M``
consecutive weights along the (flattened) input dimension, the ``N`` best still-available
ones, and the scope then chooses only among those.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunelab.errors import PrunelabError


def parse_nm(nm: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"2:4"`` or ``(2, 4)`` -> ``(2, 4)``; ``None`` stays ``None``.

    Raises:
        PrunelabError: Not ``N:M`` with integers ``1 <= N < M``.

    Example:
        >>> parse_nm("2:4"), parse_nm(None)
        ((2, 4), None)
    """
    if nm is None:
        return None
    try:
        n, m = (int(v) for v in (nm.split(":") if isinstance(nm, str) else nm))
    except (TypeError, ValueError):
        raise PrunelabError(f"nm must look like 2:4 (N:M, integers), got {nm!r}") from None
    if not 1 <= n < m:
        raise PrunelabError(f"nm {n}:{m}: need 1 <= N < M (keep N of every M weights)")
    return n, m


def nm_available(name: str, score: Tensor, avail: Tensor, n: int, m: int) -> Tensor:
    """The ``N`` best available weights of every group of ``M`` along the input dimension.

    Args:
        name: Parameter name, for messages.
        score: Scores shaped like the parameter, at least 2-D (``(out, in, ...)``).
        avail: Bool, same shape: weights not pruned before.
        n: Weights kept per group.
        m: Group size; must divide the flattened input size ``prod(shape[1:])``.

    Returns:
        Bool tensor of ``score``'s shape: at most ``n`` per group (exactly ``n`` where
        ``n`` were available), always a subset of ``avail``. Ties: earlier position first.
    """
    if score.dim() < 2:
        raise PrunelabError(
            f"nm {n}:{m}: {name!r} is {score.dim()}-D; N:M groups need a weight with an "
            "input dimension (leave biases out of the prunable set)"
        )
    rows = score.shape[0]
    cols = score.numel() // max(rows, 1)
    if cols % m:
        raise PrunelabError(
            f"nm {n}:{m}: M={m} does not divide the input dimension {cols} of {name!r}"
        )
    s = score.detach().reshape(rows, cols // m, m)
    a = avail.reshape(rows, cols // m, m)
    order = torch.sort(s, dim=-1, descending=True, stable=True).indices
    # available first, keeping the score order among each kind (a stable sort on ~avail)
    late = (~a.gather(-1, order)).to(torch.int8)
    order = order.gather(-1, torch.sort(late, dim=-1, stable=True).indices)
    keep = torch.zeros_like(a)
    keep.scatter_(-1, order[..., :n], True)
    return (keep & a).reshape(score.shape)


def keep_rows(name: str, score: Tensor, avail: Tensor, p: float) -> Tensor:
    """``scope="row"``: each output row keeps ``round((1-p)·cols)`` of its weights.

    A 1-D parameter (a bias) is one row. Returns a flat bool keep vector.
    """
    rows = score.shape[0] if score.dim() > 1 else 1
    s = score.reshape(rows, -1)
    a = avail.reshape(rows, -1)
    k = round((1.0 - p) * s.shape[1])
    short = int((a.sum(dim=1) < k).sum())
    if short:
        raise PrunelabError(
            f"layer {name!r}: sparsity {p} keeps {k} weights per row but the previous mask "
            f"left fewer in {short} row(s); masks can only shrink"
        )
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    late = (~a.gather(1, order)).to(torch.int8)
    order = order.gather(1, torch.sort(late, dim=1, stable=True).indices)
    keep = torch.zeros_like(a)
    keep.scatter_(1, order[:, :k], True)
    return keep.reshape(-1)


def flat_scores(scores: dict[str, Tensor]) -> tuple[list[str], list[Tensor]]:
    """Names and flat score vectors in one common dtype and device; refuses NaN."""
    names = list(scores)
    for n in names:
        if torch.isnan(scores[n]).any():
            raise PrunelabError(f"scores of layer {n!r} contain NaN")
    device, dtype = scores[names[0]].device, scores[names[0]].dtype
    for n in names[1:]:
        dtype = torch.promote_types(dtype, scores[n].dtype)
    return names, [scores[n].detach().reshape(-1).to(device=device, dtype=dtype) for n in names]


def select(
    scores: dict[str, Tensor],
    p: float,
    scope: str,
    previous: dict[str, Tensor] | None,
    min_per_layer: int,
    nm: tuple[int, int] | None = None,
) -> dict[str, Tensor]:
    """Keep flags ``name -> bool tensor`` for already validated ``p``, scope and minimum.

    Checks the scores (no NaN; names and shapes as in ``previous``), flattens them in
    the order of ``scores`` with one common dtype, and runs the global, per-layer or
    per-row selection, among the ``N:M`` survivors when ``nm`` is given. See
    :meth:`prunelab.masks.Mask.from_scores` for the rules.
    """
    names, flat = flat_scores(scores)
    if previous is not None:
        if set(previous) != set(names):
            raise PrunelabError(
                f"previous mask layers {sorted(previous)} do not match score layers {sorted(names)}"
            )
        for n in names:
            if previous[n].shape != scores[n].shape:
                raise PrunelabError(
                    f"layer {n!r}: score shape {tuple(scores[n].shape)} does not match "
                    f"previous mask shape {tuple(previous[n].shape)}"
                )
    device = flat[0].device
    if previous is not None:
        avail = [previous[n].reshape(-1).to(device) for n in names]
    else:
        avail = [torch.ones(f.numel(), dtype=torch.bool, device=device) for f in flat]
    shapes = [scores[n].shape for n in names]
    if nm is not None:
        avail = [
            nm_available(n, f.reshape(s), a.reshape(s), *nm).reshape(-1)
            for n, f, a, s in zip(names, flat, avail, shapes, strict=True)
        ]
        most = sum(f.numel() // nm[1] * nm[0] for f in flat)
        if round((1.0 - p) * sum(f.numel() for f in flat)) > most:
            raise PrunelabError(
                f"nm {nm[0]}:{nm[1]} keeps at most {nm[0]}/{nm[1]} of the weights; "
                f"sparsity must be >= {1 - nm[0] / nm[1]:.4g}, got {p}"
            )

    if scope == "row":
        kept = [
            keep_rows(n, f.reshape(s), a.reshape(s), p)
            for n, f, a, s in zip(names, flat, avail, shapes, strict=True)
        ]
    elif scope == "layer":
        kept = [
            keep_layer(n, f, a, p, min_per_layer)
            for n, f, a in zip(names, flat, avail, strict=True)
        ]
    else:
        kept = keep_global(names, flat, avail, p, min_per_layer)
    masks = {n: k.reshape(s) for n, k, s in zip(names, kept, shapes, strict=True)}
    return masks


def rank(scores: Tensor, available: Tensor) -> Tensor:
    """Indices of a flat score vector from best to worst, unavailable entries last.

    Ties keep their original order (stable sort), so the earlier index ranks higher.
    Unavailable entries go last whatever their score, which is stricter than giving
    them ``-inf``: a user score of ``-inf`` must still beat a previously pruned weight.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    ok = available[order]
    return torch.cat([order[ok], order[~ok]])


def keep_layer(name: str, flat: Tensor, avail: Tensor, p: float, min_per_layer: int) -> Tensor:
    """Per-layer top-k for ``scope="layer"``: flat bool keep vector of one layer."""
    n_avail = int(avail.sum())
    k = max(round((1.0 - p) * flat.numel()), min(min_per_layer, n_avail))
    if k > n_avail:
        raise PrunelabError(
            f"layer {name!r}: sparsity {p} keeps {k} weights but the previous mask kept only "
            f"{n_avail}; masks can only shrink"
        )
    keep = torch.zeros_like(avail)
    keep[rank(flat, avail)[:k]] = True
    return keep


def keep_global(
    names: list[str], flat: list[Tensor], avail: list[Tensor], p: float, min_per_layer: int
) -> list[Tensor]:
    """Global top-k with the ``min_per_layer`` repair; returns one flat keep vector per layer."""
    sizes = [f.numel() for f in flat]
    total = sum(sizes)
    k = round((1.0 - p) * total)
    all_avail = torch.cat(avail)
    n_avail = int(all_avail.sum())
    if k > n_avail:
        raise PrunelabError(
            f"sparsity {p} keeps {k} weights but the previous mask kept only {n_avail}; "
            "masks can only shrink"
        )
    order = rank(torch.cat(flat), all_avail)
    keep = torch.zeros(total, dtype=torch.bool, device=all_avail.device)
    keep[order[:k]] = True
    parts = list(torch.split(keep, sizes))

    mins = [min(min_per_layer, int(a.sum())) for a in avail]
    if sum(mins) > k:
        raise PrunelabError(
            f"sparsity {p} keeps {k} weights, fewer than the {sum(mins)} needed for "
            f"min_per_layer={min_per_layer} in each of {len(names)} layers; lower the sparsity "
            "or pass min_per_layer=0"
        )
    kept = [int(t.sum()) for t in parts]
    short = [i for i, (c, m) in enumerate(zip(kept, mins, strict=True)) if c < m]
    if not short:
        return parts

    extra = 0
    for i in short:
        # The layer's own ranking: its global top-k share is a prefix of it (same tie rule).
        parts[i][rank(flat[i], avail[i])[: mins[i]]] = True
        extra += mins[i] - kept[i]
    # Drop `extra` kept weights, lowest global rank first, from layers above their minimum.
    kept_ascending = order[:k].flip(0)
    layer_id = torch.repeat_interleave(
        torch.arange(len(sizes), device=keep.device), torch.tensor(sizes, device=keep.device)
    )[kept_ascending]
    eligible = torch.zeros_like(kept_ascending, dtype=torch.bool)
    for i in range(len(sizes)):
        if i in short:
            continue
        in_layer = layer_id == i
        rank_in_layer = torch.cumsum(in_layer, 0) - 1
        eligible |= in_layer & (rank_in_layer < kept[i] - mins[i])
    drop = kept_ascending[eligible][:extra]
    keep = torch.cat(parts)
    keep[drop] = False
    return list(torch.split(keep, sizes))
