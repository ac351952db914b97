"""``wanda``: ``|W_ij| · ‖X_j‖₂`` over calibration inputs (Sun et al. 2023, "Wanda").

``X`` is the layer's input matrix over the calibration data (rows = every example and
position, see :mod:`prunelab.scores._calibration`), so ``‖X_j‖₂ = sqrt(Σ_rows x_j²)`` is
the norm of input feature ``j``; a prunable bias sees the constant input 1, so it scores
``|b_i| · sqrt(rows)``. Inputs come from one forward pass of the model as it is (for a
masked model, through the masked weights), in ``eval()`` mode; nothing is changed.

The paper compares weights **within each output row**: prune with ``scope="row"``
(``Mask.from_scores(..., scope="row")``, ``--scope row``); ``global`` and ``layer`` are the
options it ablates, and ``nm="2:4"`` its semi-structured setting.

    >>> import torch
    >>> from torch import nn
    >>> from prunelab.scores import score
    >>> net = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, -1.0]]))
    >>> x = torch.tensor([[3.0, 0.0], [4.0, 1.0]])
    >>> score(net, "wanda", [(x, torch.zeros(2))], lambda o, y: o.sum())["weight"].tolist()
    [[5.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelab.scores._calibration import input_statistics, layers_of, split_matrix, weight_matrix
from prunelab.scores._common import require_params
from prunelab.scores.base import CRITERIA, Criterion


@dataclass(frozen=True)
class WandaHparams:
    """Wanda has no hyper-parameters (the comparison group is the mask's ``scope``)."""


def _wanda(model, params, batches, loss_fn, hp):
    """``|W| · ‖X_col‖₂`` per prunable layer, float64, on the parameters' device."""
    require_params(params)
    layers = layers_of(model, params)
    sumsq, _ = input_statistics(model, layers, batches, "sumsq")
    out = {}
    for layer in layers:
        scores = weight_matrix(layer).abs() * sumsq[layer.name].sqrt()[None, :]
        out.update(split_matrix(layer, scores))
    return {n: out[n].contiguous() for n in params}


CRITERIA.add(
    "wanda",
    Criterion("wanda", _wanda, WandaHparams, True, "|W|·‖X‖₂ of the layer inputs (Wanda)"),
)

__all__ = ["WandaHparams"]
