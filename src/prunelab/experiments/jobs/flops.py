"""Theoretical multiply-adds of the prunable layers, dense vs masked.

Unstructured masks give no wall-clock speed-up in dense PyTorch (the zeros are still
multiplied), so reports state the *theoretical* reduction instead: a weight that is zero
saves one multiply-add at every position where it is applied.

For a ``Linear`` or ``Conv*`` layer with weight ``W`` (``out`` output channels/features),
every output element uses ``W.numel() / out`` weights, so per example

    MACs(dense)  = P · W.numel()      MACs(masked) = P · nnz(W)

with ``P = output.numel() / out`` the number of positions the layer is applied at (1 for
a ``Linear`` on a vector; ``H_out · W_out`` for a 2-d convolution; grouped and strided
convolutions included). Biases, activations and normalisation are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunelab._evaluate import placement, restore_modes, save_modes
from prunelab.masks import Mask
from prunelab.prunable import PrunableSpec, prunable_parameters


@dataclass(frozen=True)
class FlopCount:
    """Multiply-adds per example of the prunable layers.

    Attributes:
        dense: MACs with every weight kept.
        masked: MACs with the mask's zeros skipped.
        per_layer: ``{"name", "positions", "dense", "masked"}`` per prunable weight.
    """

    dense: int
    masked: int
    per_layer: list[dict] = field(default_factory=list)

    @property
    def reduction(self) -> float:
        """``dense / masked`` (``inf`` if nothing is kept)."""
        return self.dense / self.masked if self.masked else float("inf")

    def to_dict(self) -> dict:
        """Plain dict (reduction ``None`` when infinite)."""
        r = self.reduction
        return {
            "dense": self.dense,
            "masked": self.masked,
            "reduction": r if r != float("inf") else None,
            "per_layer": self.per_layer,
        }


def multiply_adds(
    model: nn.Module,
    input_shape: tuple[int, ...] | list[int],
    mask: Mask | None = None,
    spec: PrunableSpec | None = None,
) -> FlopCount:
    """Count the prunable layers' multiply-adds for one example of ``input_shape``.

    Args:
        model: The network (run once on zeros in ``eval()`` mode; modes are restored).
        input_shape: Shape of one example without the batch dimension, e.g. ``(1, 28, 28)``.
        mask: The pruning mask (``None``: count the model's non-zero weights).
        spec: Prunable set (default ``mask.spec`` or :class:`PrunableSpec()`).

    Returns:
        The :class:`FlopCount`.

    Example:
        >>> conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
        >>> m = Mask({"0.weight": torch.arange(18).reshape(2, 1, 3, 3) < 7})
        >>> c = multiply_adds(conv, (1, 5, 5), m)
        >>> c.dense, c.masked  # 25 positions x 18 weights, 25 positions x 7 kept
        (450, 175)
    """
    spec = spec or (mask.spec if mask is not None else PrunableSpec())
    params = prunable_parameters(model, spec)
    weights = {n: p for n, p in params.items() if n.endswith("weight")}
    owner = {}
    for mod_name, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{pname}" if mod_name else pname
            if full in weights:
                owner[module] = full
    positions: dict[str, int] = {}

    def hook(module, _inputs, output) -> None:
        name = owner[module]
        positions[name] = positions.get(name, 0) + output.numel() // module.weight.shape[0]

    device, dtype = placement(model)
    handles = [m.register_forward_hook(hook) for m in owner]
    modes = save_modes(model)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        restore_modes(modes)
    rows = []
    for name, w in weights.items():
        keep = mask.masks[name] if mask is not None else (w.detach() != 0)
        pos = positions.get(name, 0)
        rows.append(
            {
                "name": name,
                "positions": pos,
                "dense": pos * w.numel(),
                "masked": pos * int(keep.sum()),
            }
        )
    return FlopCount(sum(r["dense"] for r in rows), sum(r["masked"] for r in rows), rows)
