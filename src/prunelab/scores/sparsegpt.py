"""``sparsegpt``: layer-wise OBS with reconstruction of the kept weights (Frantar & Alistarh 2023).

For a layer with weight matrix ``W`` (``out × C``; a Conv2d's ``im2col`` columns; a
prunable bias as a last column of constant input) and calibration input rows ``X``
(``n × C``), the layer-wise problem is ``min ‖X Ŵᵀ − X Wᵀ‖²`` over ``Ŵ`` with the mask's
zeros. Its Hessian is ``H = (2/n) XᵀX + λ·mean(diag H)·I`` (``λ = damp``, default 0.01;
columns no input ever reaches have ``H_jj = 0``: they are set to 1 and their weights
to 0, as in the paper's code).

**Score** (what the mask is chosen from): the OBS saliency of each weight in SparseGPT's
column order, ``w_ij² / U_jj²`` with ``U`` the upper Cholesky factor of ``H⁻¹``
(``U_jj² = [(H_FF)⁻¹]_jj``, ``F = {j, j+1, ...}``, the columns not yet processed when
column ``j`` is). Higher = keep, so ``Mask.from_scores`` picks the mask with any scope
(``row`` compares within each output row, as the paper does for its per-row variant;
``nm="2:4"`` is its semi-structured setting).

**Reconstruction** (:func:`reconstruct_layer`, run by the procedures after the mask is
chosen, before it is applied): the columns are processed left to right in blocks of
``blocksize`` (default 128); a pruned weight ``w_ij`` is set to 0 and its error
``w_ij / U_jj`` is compensated on the not-yet-processed columns of its row,
``w_i,F -= (w_ij / U_jj) · U_j,F`` (one exact OBS step for ``H_FF``), with the updates to
later blocks applied lazily once per block. As in the paper, *which* weights are pruned
is re-chosen adaptively as the columns are reached (``adaptive=True``): every row keeps,
in each block (``N:M``: each group of ``M``), as many weights as the mask from the scores
does there, the ones with the highest ``w²/U_jj²`` of the partially updated weights. So
the mask's counts per row, per layer, in total and per ``N:M`` group are kept, and
earlier masks' zeros stay pruned; the mask that comes back is the one applied.
``adaptive=False`` refits exactly the mask from the scores. Both are checked against a
column-by-column float64 OBS solve with explicit inverses in the tests.

**Calibration one block at a time**: the inputs of each transformer block (an element of
an ``nn.ModuleList``; other layers are their own block) are gathered from the model as
already reconstructed up to that block, by streaming the calibration batches and
stopping each forward pass after the block; memory is one batch's activations plus the
``C × C`` Gram matrices of the block's layers.

Deviation from the paper, stated: the paper's unstructured mask is a threshold over
all rows of each 128-column block; here each row's count per block comes from the
mask the scores gave with the chosen scope (``row``: the same count in every row).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from prunelab.errors import PrunelabError
from prunelab.scores._calibration import (
    blocks,
    input_statistics,
    layers_of,
    split_matrix,
    weight_matrix,
)
from prunelab.scores._common import check_int, check_nonneg, require_params
from prunelab.scores.base import CRITERIA, Criterion


@dataclass(frozen=True)
class SparseGPTHparams:
    """Hyper-parameters of ``sparsegpt``.

    Attributes:
        damp: Dampening ``λ``: ``λ·mean(diag H)`` is added to the diagonal (paper: 0.01).
        blocksize: Columns per lazy-update block (paper: 128). With ``adaptive`` it is
            also the width over which each row's kept count is fixed and its weights
            re-chosen; without, results do not depend on it beyond float rounding.
        adaptive: Re-choose which weights each row keeps, block by block (N:M: group by
            group), from the partially updated weights, as the paper does; ``False`` refits
            exactly the mask chosen from the scores.
    """

    damp: float = 0.01
    blocksize: int = 128
    adaptive: bool = True

    def __post_init__(self) -> None:
        check_nonneg(self.damp, "damp")
        check_int(self.blocksize, "blocksize", 1)


def hessian(gram: Tensor, rows: int, damp: float) -> tuple[Tensor, Tensor]:
    """``(H, dead)``: the damped layer Hessian from ``XᵀX`` and the never-reached columns."""
    h = gram * (2.0 / rows)
    dead = torch.diagonal(h) == 0
    h = h.clone()
    h[dead, dead] = 1.0
    diag = torch.diagonal(h)
    diag += damp * float(diag.mean())
    return h, dead


def inverse_cholesky(h: Tensor) -> Tensor:
    """Upper ``U`` with ``UᵀU = H⁻¹`` (float64)."""
    lower, info = torch.linalg.cholesky_ex(h)
    if int(info) != 0:
        raise PrunelabError(
            "sparsegpt: the layer Hessian is not positive definite; raise damp (e.g. damp=0.1)"
        )
    hinv = torch.cholesky_inverse(lower)
    upper, info = torch.linalg.cholesky_ex(hinv, upper=True)
    if int(info) != 0:
        raise PrunelabError("sparsegpt: H⁻¹ is not positive definite; raise damp (e.g. damp=0.1)")
    return upper


def saliency(w: Tensor, h: Tensor, dead: Tensor) -> Tensor:
    """``w_ij² / U_jj²`` (0 on dead columns, whose weights have no effect)."""
    u = inverse_cholesky(h)
    s = w.pow(2) / torch.diagonal(u).pow(2)[None, :]
    s[:, dead] = 0.0
    return s


def _choose(sal: Tensor, avail: Tensor, counts: Tensor) -> Tensor:
    """Per row, the ``counts[r]`` highest ``sal`` among ``avail`` (ties: earlier first)."""
    sal = torch.where(avail, sal, -torch.inf)
    order = torch.sort(sal, dim=1, descending=True, stable=True).indices
    late = (~avail.gather(1, order)).to(torch.int8)
    order = order.gather(1, torch.sort(late, dim=1, stable=True).indices)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(sal.shape[1], device=sal.device).expand_as(order))
    return ranks < counts[:, None]


def reconstruct_layer(
    w: Tensor,
    keep: Tensor,
    h: Tensor,
    dead: Tensor,
    blocksize: int,
    segment: int | None = None,
    fixed_last: int = 0,
) -> tuple[Tensor, Tensor]:
    """SparseGPT's blocked OBS update of ``W`` (``out × C``), with adaptive mask selection.

    Args:
        w: Weights (float64), with earlier masks applied (their zeros are unavailable).
        keep: Bool, same shape: the mask to refit for. With ``segment``, only its counts
            are used: every row keeps as many weights in each ``segment`` of columns as
            ``keep`` does, and *which* ones is re-chosen when the segment is reached, by
            ``w²/U_jj²`` of the partially updated weights (the paper's adaptive
            selection; ``segment = M`` for ``N:M`` masks, else the block width).
            ``segment=None``: ``keep`` is used as it is.
        h: Damped Hessian ``C × C``.
        dead: Columns no input reaches (their weights are zeroed).
        blocksize: Lazy-update block width (a multiple of ``segment`` is used).
        segment: See ``keep``.
        fixed_last: The last this many columns keep ``keep`` as it is (a bias column: a
            bias is ranked on its own, not against its row's weights).

    Returns:
        ``(new weights, mask used)``: pruned entries exactly 0, kept ones compensated.
    """
    avail = keep | (w != 0)
    keep = keep.clone()
    w = w.clone()
    w[:, dead] = 0.0
    u = inverse_cholesky(h)
    cols = w.shape[1]
    if segment is not None:
        blocksize = max(segment, blocksize - blocksize % segment)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        d1 = torch.diagonal(u1).pow(2)
        for i in range(i2 - i1):
            j = i1 + i
            if segment is not None and i % segment == 0 and j < cols - fixed_last:
                e = min(i + segment, i2 - i1, cols - fixed_last - i1)
                sal = w1[:, i:e].pow(2) / d1[i:e][None, :]
                counts = keep[:, j : i1 + e].sum(1)
                keep[:, j : i1 + e] = _choose(sal, avail[:, j : i1 + e], counts)
            err = torch.where(keep[:, j], 0.0, w1[:, i]) / u1[i, i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            w1[:, i] = torch.where(keep[:, j], w1[:, i], 0.0)
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return torch.where(keep, w, 0.0), keep


def _sparsegpt(model, params, batches, loss_fn, hp: SparseGPTHparams):
    """OBS saliencies of every prunable layer from the dense model's calibration inputs."""
    require_params(params)
    layers = layers_of(model, params)
    grams, rows = input_statistics(model, layers, batches, "gram")
    out = {}
    for layer in layers:
        h, dead = hessian(grams[layer.name], rows, hp.damp)
        out.update(split_matrix(layer, saliency(weight_matrix(layer), h, dead)))
    return {n: out[n].contiguous() for n in params}


def _layer_mask(mask, layer) -> Tensor:
    """The mask of a layer as its ``[W | b]`` matrix."""
    parts = []
    for n in (layer.weight, layer.bias):
        if n is not None:
            m = mask.masks[n]
            parts.append(m.reshape(m.shape[0], -1) if m.dim() > 1 else m[:, None])
    return torch.cat(parts, dim=1)


def _reconstruct(model, params, batches, mask, hp: SparseGPTHparams):
    """Refit block by block, each block calibrated on the refitted ones; the mask used."""
    nm = getattr(mask, "nm", None)
    if nm is not None and any(layer.bias is not None for layer in layers_of(model, params)):
        raise PrunelabError("sparsegpt with nm: leave biases out of the prunable set")
    layers = layers_of(model, params)
    chosen = {}
    for block in blocks(model, layers):
        grams, rows = input_statistics(model, block.layers, batches, "gram", block.module)
        for layer in block.layers:
            h, dead = hessian(grams[layer.name], rows, hp.damp)
            keep = _layer_mask(mask, layer).to(h.device)
            segment = (nm[1] if nm is not None else hp.blocksize) if hp.adaptive else None
            w = weight_matrix(layer)
            bias = int(layer.bias is not None)
            new, used = reconstruct_layer(w, keep, h, dead, hp.blocksize, segment, bias)
            with torch.no_grad():
                for name, value in split_matrix(layer, new).items():
                    params[name].copy_(value.to(params[name].dtype))
            for name, value in split_matrix(layer, used).items():
                chosen[name] = value.to(mask.masks[name].device)
    return {n: chosen[n] for n in mask.masks}


CRITERIA.add(
    "sparsegpt",
    Criterion(
        "sparsegpt",
        _sparsegpt,
        SparseGPTHparams,
        True,
        "layer-wise OBS saliency w²/[chol(H⁻¹)]_jj², kept weights reconstructed (SparseGPT)",
        reconstruct=_reconstruct,
    ),
)
