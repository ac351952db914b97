"""Step 1 of the spectral limit: what it measures on a model besides the spectrum.

* :func:`measure_limit_inputs` — everything :func:`~prunelab.limits.predict_limit` needs
  before SLQ, as a :class:`LimitInputs`: the prunable weights, ``ε``, the curvature
  batches, the null-space point mass and the curvature operator of the remaining weights
  (restricted with :func:`~prunelab.curvature.restrict_to_mask`).
* :func:`resolve_eps` — ``ε`` by rule: 004's default :func:`batch_loss_std` (spread of
  mini-batch training losses) or :func:`train_loss_mean`, or a given number.
* :func:`jacobian_null_mask` — weights along which the loss is locally flat on the
  curvature data, whose Hessian rows and columns are zero (dead ReLU units, always-zero
  inputs, units whose outgoing weights are all pruned). They form the exact point mass at
  ``λ = 0``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from prunelab._evaluate import loss_function, placement, restore_modes, save_modes, to_model
from prunelab.curvature import GGN, CurvatureOperator, Hessian, restrict_to_mask
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters

log = logging.getLogger(__name__)

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


@dataclass
class LimitInputs:
    """What :func:`measure_limit_inputs` measured on a model (step 1 of the limit).

    Attributes:
        weights: The flat prunable weights ``(D,)``, detached, in prunable order.
        live: ``(D,)`` bool, True where a weight is not already exactly zero.
        eps: The loss tolerance ``ε > 0``.
        eps_source: Where ``ε`` came from (``"given"`` or the rule with its details).
        operator: Curvature of the *active* weights (live and not null): the prunable
            set's operator, restricted to them where some are left out.
        zero_mass: Point mass ``z`` at ``λ = 0`` as a fraction of the live weights
            (``"jacobian"``: the null fraction; a given fraction; else 0).
        zero_mass_method: ``"jacobian"``, ``"ritz"``, ``"none"`` or the given fraction.
        num_samples: Examples in the curvature batches.
    """

    weights: Tensor
    live: Tensor
    eps: float
    eps_source: str
    operator: CurvatureOperator
    zero_mass: float
    zero_mass_method: str | float
    num_samples: int

    @property
    def already_pruned(self) -> bool:
        """True when some prunable weights were already zero."""
        return not bool(self.live.all())


def _prunable_weights(model: nn.Module, spec: PrunableSpec | None):
    """``(params, flat weights, live mask)`` of the prunable set; refuses an empty one."""
    params = prunable_parameters(model, spec)
    if not params:
        raise PrunelabError("the prunable set is empty: nothing to predict a limit for")
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    live = flat != 0
    if not bool(live.any()):
        raise PrunelabError("every prunable weight is already zero: nothing left to predict for")
    if not bool(live.all()):
        log.warning(
            "model already pruned: %.4g of the prunable weights are zero; predicting for the "
            "remaining %d weights, reported as sparsity of all %d",
            1 - float(live.double().mean()),
            int(live.sum()),
            flat.numel(),
        )
    return params, flat, live


def measure_limit_inputs(
    model: nn.Module,
    data: DataBundle,
    *,
    eps: float | str | None = None,
    samples: int = 1024,
    batch_size: int = 256,
    seed: int = 0,
    zero_mass: str | float = "auto",
    spec: PrunableSpec | None = None,
    loss_fn=None,
    curvature: str = "hessian",
) -> LimitInputs:
    """Step 1 of :func:`~prunelab.limits.predict_limit`: weights, ``ε``, null mass, operator.

    ``model`` must already be in ``eval()`` mode, and stay so while the returned operator
    is used (``predict_limit`` restores its flags after the spectrum). Arguments as in
    :func:`~prunelab.limits.predict_limit`, which checks them.

    Returns:
        :class:`LimitInputs`.

    Raises:
        PrunelabError: An empty or all-zero prunable set, a bad ``ε``, or every
            remaining weight in the null space.
    """
    if loss_fn is None:
        loss_fn = loss_function(data)
    params, flat, live = _prunable_weights(model, spec)
    eps_value, eps_source = resolve_eps(model, data, loss_fn, eps)
    batches = list(data.batches("train", batch_size, shuffle=False, limit=samples))
    mode = "jacobian" if zero_mass == "auto" else zero_mass
    null = torch.zeros_like(live)
    if mode == "jacobian":
        null = jacobian_null_mask(model, params, batches, seed=seed)
    active = live & ~null
    z = float(null.sum()) / float(live.sum()) if mode == "jacobian" else 0.0
    if isinstance(mode, int | float):
        z = float(mode)
    if not bool(active.any()):
        raise PrunelabError("every remaining weight is in the null space: limit is 100%")
    operator = Hessian if curvature == "hessian" else GGN
    op = operator(model, loss_fn, batches, params=list(params))
    return LimitInputs(
        weights=flat,
        live=live,
        eps=eps_value,
        eps_source=eps_source,
        operator=restrict_to_mask(op, active),
        zero_mass=z,
        zero_mass_method=mode,
        num_samples=sum(int(y.shape[0]) for _, y in batches),
    )
