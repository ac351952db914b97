"""What the spectral limit measures on a model besides the spectrum: ``ε`` and null weights.

* :func:`resolve_eps` — ``ε`` by rule: 004's default :func:`batch_loss_std` (spread of
  mini-batch training losses) or :func:`train_loss_mean`, or a given number.
* :func:`jacobian_null_mask` — weights along which the loss is locally flat on the
  curvature data, whose Hessian rows and columns are zero (dead ReLU units, always-zero
  inputs, units whose outgoing weights are all pruned). They form the exact point mass at
  ``λ = 0``.
* :class:`RestrictedOperator` — the Hessian block of the remaining weights, for SLQ.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from prunelab._evaluate import placement, restore_modes, save_modes, to_model
from prunelab.curvature import CurvatureOperator
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError

#: Named ε rules; the first is the default. ``"batch-std"``: 004's spread of mini-batch
#: training losses; ``"train-loss"``: the mean training loss (the sublevel set then allows
#: the training loss to double).
EPS_RULES = ("batch-std", "train-loss")
#: Mini-batch size of the ``"batch-std"`` ε (004's code uses 128).
EPS_BATCH_SIZE = 128
#: Relative threshold on the squared output-Jacobian column norm for a null weight.
JACOBIAN_TOL = 1e-8
#: Gaussian output probes per batch for the Jacobian column norms.
JACOBIAN_PROBES = 2


def _batch_losses(model: nn.Module, data: DataBundle, loss_fn, batch_size: int):
    """Mean loss and size of each unshuffled training batch, model in ``eval()``."""
    device, dtype = placement(model)
    out = []
    modes = save_modes(model)
    model.eval()
    try:
        with torch.no_grad():
            for x, y in data.batches("train", batch_size):
                x, y = to_model(x, y, device, dtype)
                out.append((float(loss_fn(model(x), y)), int(y.shape[0])))
    finally:
        restore_modes(modes)
    return out


def batch_loss_std(model: nn.Module, data: DataBundle, loss_fn, batch_size: int = EPS_BATCH_SIZE):
    """004's ε: std (``ddof=0``) of the mean loss over full training mini-batches.

    The incomplete last batch is dropped: its smaller size would inflate the spread.

    Returns:
        ``(std, number of batches)``; the model's train/eval flags are restored.
    """
    losses = [v for v, n in _batch_losses(model, data, loss_fn, batch_size) if n == batch_size]
    if len(losses) < 2:
        raise PrunelabError(
            f"eps 'batch-std' needs at least 2 full training batches of {batch_size}; pass eps"
        )
    return float(np.std(losses)), len(losses)


def train_loss_mean(model: nn.Module, data: DataBundle, loss_fn) -> float:
    """Mean loss over every training example (the ``"train-loss"`` ε rule)."""
    parts = _batch_losses(model, data, loss_fn, 1024)
    n = sum(k for _, k in parts)
    if n == 0:
        raise PrunelabError(f"dataset {data.name!r} has no training data for eps; pass eps")
    return sum(v * k for v, k in parts) / n


def resolve_eps(model: nn.Module, data: DataBundle, loss_fn, eps) -> tuple[float, str]:
    """Turn ``eps`` (a number, a rule name from :data:`EPS_RULES`, or ``None``) into a value.

    Returns:
        ``(ε, description of its source)``.

    Raises:
        PrunelabError: Unknown rule, or a rule that gives ``ε ≤ 0`` (a zero training loss).
    """
    rule = EPS_RULES[0] if eps is None else eps
    if not isinstance(rule, str):
        return float(rule), "given"
    if rule == "batch-std":
        value, n_b = batch_loss_std(model, data, loss_fn)
        source = f"batch-std: std of {n_b} training batch losses of {EPS_BATCH_SIZE}"
    elif rule == "train-loss":
        value, source = train_loss_mean(model, data, loss_fn), "train-loss: mean training loss"
    else:
        raise PrunelabError(
            f"unknown eps rule {rule!r}; valid: {', '.join(EPS_RULES)} or a number > 0"
        )
    if not value > 0:
        raise PrunelabError(
            f"eps rule {rule!r} gives {value:g} (zero training loss?); pass eps > 0"
        )
    return float(value), source


def jacobian_null_mask(
    model: nn.Module, params: dict[str, Tensor], batches, seed: int = 0, tol: float = JACOBIAN_TOL
) -> Tensor:
    """Flat bool mask (prunable order) of weights whose output-Jacobian column is ~0.

    ``c_i = Σ_n ‖∂f(x_n)/∂θ_i‖²`` is estimated with :data:`JACOBIAN_PROBES` Gaussian output
    probes per batch (``E[(uᵀJ_i)²] = ‖J_i‖²``; an exactly zero column gives exactly 0);
    weight ``i`` is null when ``c_i ≤ tol · mean(c)`` over the non-zero weights. Exact
    zeros (already pruned) are never called null. ``model`` must be in ``eval()`` mode.

    Args:
        model: The network.
        params: ``name -> Parameter`` of the prunable set (flattening order).
        batches: ``(x, y)`` batches (the curvature data).
        seed: Seed of the output probes.
        tol: Relative threshold on ``c_i``.

    Returns:
        Bool tensor of shape ``(D,)``.
    """
    device, dtype = placement(model)
    gen = torch.Generator().manual_seed(int(seed))
    plist = list(params.values())
    acc = torch.zeros(sum(p.numel() for p in plist), dtype=torch.float64, device=device)
    for x, y in batches:
        x, _ = to_model(x, y, device, dtype)
        out = model(x)
        for k in range(JACOBIAN_PROBES):
            u = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(device, out.dtype)
            grads = torch.autograd.grad(
                out, plist, u, retain_graph=k + 1 < JACOBIAN_PROBES, allow_unused=True
            )
            flat = torch.cat(
                [
                    (torch.zeros_like(p) if g is None else g).reshape(-1)
                    for g, p in zip(grads, plist, strict=True)
                ]
            )
            acc += flat.double() ** 2
    live = torch.cat([p.detach().reshape(-1) != 0 for p in plist])
    ref = acc[live].mean() if bool(live.any()) else acc.mean()
    return (acc <= tol * ref) & live


class RestrictedOperator(CurvatureOperator):
    """A curvature operator restricted to a subset of flat coordinates: ``H[idx][:, idx]``.

    :meth:`CurvatureOperator.restrict` keeps whole parameters; the limit needs single
    weights (already pruned ones, null-space ones) left out, so probe rows are scattered
    into the full space, multiplied by the wrapped operator, and gathered back. Only the
    products, ``dim``, ``dtype`` and ``device`` are provided (what Lanczos / SLQ use);
    the parameter-level descriptions of the base class do not apply.

    Args:
        op: The full :class:`~prunelab.curvature.CurvatureOperator`.
        index: Long tensor of the kept flat coordinates, shape ``(n,)``.
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
