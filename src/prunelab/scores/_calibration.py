"""Calibration inputs of prunable layers, for the LLM-pruning criteria (private).

``wanda`` needs, per layer, the column norms ``‖X_j‖₂`` of its input matrix ``X`` (rows =
every example and position the layer sees, columns = its input features); ``sparsegpt``
needs the Gram matrix ``XᵀX``. Both are sums over rows, gathered with forward pre-hooks
that are removed afterwards, while the calibration batches stream through the model under
``no_grad``: no activation outlives its batch, so memory is one batch's activations plus
the statistics. The rows of a layer:

* ``nn.Linear``: the input reshaped to ``(-1, in_features)`` (a transformer's ``(B, T, d)``
  input gives ``B·T`` rows);
* ``nn.Conv2d`` (``groups=1``): the ``im2col`` patches (``F.unfold``), one row per output
  position, columns ordered like ``weight.reshape(out, -1)``;
* a prunable bias is one more input column, constant 1 (appended last).

Layers are grouped into **blocks** (:func:`blocks`): a layer inside an element of an
``nn.ModuleList`` (a transformer's ``blocks.3``, a BERT ``encoder.layer.3``) belongs to
that element; any other layer is its own block. :func:`input_statistics` can stop the
forward pass right after a block, so calibrating block ``b`` costs only the forward
through blocks ``0..b``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunelab.curvature._problem import check_deterministic
from prunelab.errors import PrunelabError
from prunelab.scores._common import device_batches


@dataclass
class Layer:
    """A prunable layer: its module and the prunable parameter names it owns."""

    name: str
    module: nn.Module
    weight: str | None
    bias: str | None

    @property
    def columns(self) -> int:
        """Input columns of the layer's matrix, the bias column included when prunable."""
        w = self.module.weight
        return w[0].numel() + (1 if self.bias is not None else 0)


@dataclass
class Block:
    """Layers calibrated together, and the module after whose forward the pass may stop."""

    name: str
    module: nn.Module
    layers: list[Layer]


class _Stop(Exception):
    """Raised by a forward hook to end a calibration pass early."""


def layers_of(model: nn.Module, params: dict[str, nn.Parameter]) -> list[Layer]:
    """The prunable layers in model order, each with its prunable weight / bias names.

    Raises:
        PrunelabError: A prunable parameter that is not the weight or bias of a
            ``Linear`` or groups-1 ``Conv2d`` with zero padding.
    """
    found: dict[str, Layer] = {}
    for pname in params:
        mod_name, _, attr = pname.rpartition(".")
        module = model.get_submodule(mod_name) if mod_name else model
        ok = isinstance(module, nn.Linear) or (
            isinstance(module, nn.Conv2d)
            and module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
        if not ok or attr not in ("weight", "bias"):
            raise PrunelabError(
                f"{pname!r}: calibration criteria handle the weights and biases of Linear and "
                f"Conv2d layers (groups=1, zero padding), not {type(module).__name__}"
            )
        layer = found.setdefault(mod_name, Layer(mod_name, module, None, None))
        setattr(layer, attr, pname)
    return list(found.values())


def blocks(model: nn.Module, layers: Sequence[Layer]) -> list[Block]:
    """Group layers by the ``nn.ModuleList`` element that contains them (see module doc)."""
    elements = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList):
            for i, child in enumerate(module):
                elements[f"{name}.{i}" if name else str(i)] = child
    out: list[Block] = []
    for layer in layers:
        parts = layer.name.split(".")
        owner = next(
            (".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in elements),
            None,
        )
        if owner is not None and out and out[-1].name == owner:
            out[-1].layers.append(layer)
        elif owner is not None:
            out.append(Block(owner, elements[owner], [layer]))
        else:
            out.append(Block(layer.name, layer.module, [layer]))
    return out


def input_rows(layer: Layer, x: Tensor) -> Tensor:
    """The layer's input as a float64 ``(rows, columns)`` matrix (bias column last)."""
    module = layer.module
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(
            x, module.kernel_size, dilation=module.dilation, padding=module.padding,
            stride=module.stride,
        )  # fmt: skip
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:
        rows = x.reshape(-1, module.in_features)
    rows = rows.to(torch.float64)
    if layer.bias is not None:
        rows = torch.cat([rows, torch.ones_like(rows[:, :1])], dim=1)
    return rows


def weight_matrix(layer: Layer) -> Tensor:
    """``[W | b]`` as a float64 ``(out, columns)`` matrix, in :func:`input_rows` order."""
    w = layer.module.weight.detach()
    mat = w.reshape(w.shape[0], -1).to(torch.float64)
    if layer.bias is not None:
        mat = torch.cat([mat, layer.module.bias.detach().to(torch.float64)[:, None]], dim=1)
    return mat


def split_matrix(layer: Layer, mat: Tensor) -> dict[str, Tensor]:
    """Inverse of :func:`weight_matrix`: ``{param name: tensor}`` of the prunable parts."""
    w = layer.module.weight
    out = {}
    cols = w[0].numel()
    if layer.weight is not None:
        out[layer.weight] = mat[:, :cols].reshape(w.shape)
    if layer.bias is not None:
        out[layer.bias] = mat[:, cols]
    return out


def input_statistics(
    model: nn.Module,
    layers: Sequence[Layer],
    batches: list,
    kind: str,
    stop_after: nn.Module | None = None,
) -> tuple[dict[str, Tensor], int]:
    """Sum over calibration rows of ``x²`` (``kind="sumsq"``) or ``xxᵀ`` (``"gram"``).

    Args:
        model: The network, deterministic (eval mode); not changed.
        layers: The layers to measure.
        batches: ``(x, y)`` calibration batches (labels unused).
        kind: ``"sumsq"`` (``(columns,)``) or ``"gram"`` (``(columns, columns)``).
        stop_after: End each forward pass after this module has run.

    Returns:
        ``({layer name: statistic (float64)}, rows per layer)``; rows are counted on the
        first layer (every layer of a block sees the same number for Linear layers).
    """
    check_deterministic(model)
    stats: dict[str, Tensor] = {}
    rows: dict[str, int] = {}

    def hook_for(layer: Layer):
        def hook(module, args):
            x = input_rows(layer, args[0].detach())
            s = (x * x).sum(0) if kind == "sumsq" else x.T @ x
            stats[layer.name] = stats[layer.name] + s if layer.name in stats else s
            rows[layer.name] = rows.get(layer.name, 0) + x.shape[0]

        return hook

    def stop(module, args, output):
        raise _Stop

    handles = [layer.module.register_forward_pre_hook(hook_for(layer)) for layer in layers]
    if stop_after is not None:
        handles.append(stop_after.register_forward_hook(stop))
    try:
        with torch.no_grad():
            for x, _ in device_batches(model, batches):
                with contextlib.suppress(_Stop):
                    model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [layer.name for layer in layers if layer.name not in stats]
    if missing:
        raise PrunelabError(f"calibration batches never reached layer {missing[0]!r}")
    count = rows[layers[0].name] if layers else 0
    if count == 0:
        raise PrunelabError("calibration batches hold no examples")
    return stats, count
