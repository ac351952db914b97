"""Pieces shared by the data-dependent criteria (private).

Hyper-parameter checks, the logit temperature, the mean gradient over a list of
batches, flat-vector ↔ dict conversion and the locality term. Kept here so that each
criterion file holds only its own formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from prunelab._evaluate import placement, to_model
from prunelab.curvature._problem import check_deterministic
from prunelab.errors import PrunelabError

LossFn = Callable[[Tensor, Tensor], Tensor]

#: Sign of the first-order term inside ``|±gθ + ½cθ²|``: ``minus`` is the true Taylor change.
FIRST_ORDER_SIGNS = ("minus", "plus")


def check_choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else a one-line PrunelabError."""
    if value not in allowed:
        raise PrunelabError(f"unknown {name} {value!r}; valid choices: {', '.join(allowed)}")
    return value  # type: ignore[return-value]


def check_nonneg(value: object, name: str) -> float:
    """A finite number ``>= 0`` (the locality ``λ``), else a PrunelabError."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise PrunelabError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_positive(value: object, name: str) -> float:
    """A finite number ``> 0`` (the temperature), else a PrunelabError."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise PrunelabError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_int(value: object, name: str, minimum: int) -> int:
    """An integer ``>= minimum`` (probes, seeds, rounds), else a PrunelabError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PrunelabError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def require_params(params: dict) -> None:
    """Refuse a model without prunable parameters (nothing to score)."""
    if not params:
        raise PrunelabError(
            "model has no prunable parameters (no Linear/Conv weights); nothing to score"
        )


class Tempered(nn.Module):
    """``model(x) / temperature``: the logits seen by a tempered loss.

    Wrapping the model (rather than the loss) lets the curvature routines that check
    for plain cross-entropy (the true Fisher) accept a tempered score. Parameter names
    gain the prefix ``"inner."``.

    Args:
        inner: The wrapped model.
        temperature: ``T > 0``; outputs are divided by it.

    Example:
        >>> net = nn.Linear(2, 3)
        >>> x = torch.randn(4, 2)
        >>> bool(torch.allclose(Tempered(net, 2.0)(x), net(x) / 2))
        True
    """

    def __init__(self, inner: nn.Module, temperature: float) -> None:
        super().__init__()
        self.inner = inner
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        """Tempered outputs ``inner(x) / T``, same shape as ``inner(x)``."""
        return self.inner(x) / self.temperature


def tempered(model: nn.Module, names: Sequence[str], temperature: float):
    """The model and parameter names to hand to a curvature routine at ``temperature``.

    Returns:
        ``(module, names)``: ``model`` and ``names`` unchanged when ``T == 1``; otherwise
        a :class:`Tempered` wrapper (which shares the parameters and train/eval flags)
        and the names prefixed with ``"inner."``.
    """
    if temperature == 1.0:
        return model, list(names)
    wrapper = Tempered(model, temperature)
    wrapper.training = model.training
    return wrapper, [f"inner.{n}" for n in names]


def device_batches(model: nn.Module, batches: list) -> list[tuple[Tensor, Tensor]]:
    """Move every ``(x, y)`` batch to the model's device (floating tensors: its dtype)."""
    device, dtype = placement(model)
    return [to_model(x, y, device, dtype) for x, y in batches]


def mean_gradient(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    batches: list,
    loss_fn: LossFn,
    temperature: float = 1.0,
) -> dict[str, Tensor]:
    """``g = ∇_θ L`` of the mean loss over every example of ``batches``.

    Batch gradients are weighted by batch size, so the result does not depend on how the
    examples are split into batches. ``.grad`` fields of the model are left untouched.

    Args:
        model: The network, used in its current train/eval mode.
        params: Prunable ``{name: Parameter}`` to differentiate.
        batches: ``(x, y)`` pairs.
        loss_fn: Mean-reduced ``(output, y) -> scalar``.
        temperature: Outputs are divided by it before the loss.

    Returns:
        ``{name: gradient}`` shaped like the parameters (detached).

    Raises:
        PrunelabError: If the model is not deterministic (an active Dropout, a BatchNorm
            in training mode), or the batches hold no examples.
    """
    # Refuse, as the curvature routines do, before any forward pass. A train-mode
    # BatchNorm forward would update the running statistics (scoring must leave the
    # model as it was; grasp used to do so and then refuse in its Hessian step), and it
    # makes g depend on how examples are batched; an active Dropout makes g depend on
    # the global RNG, so the same call gave different scores (taylor1, snip).
    check_deterministic(model)
    names = list(params)
    tensors = [params[n] for n in names]
    total = [torch.zeros_like(p) for p in tensors]
    count = 0
    for x, y in device_batches(model, batches):
        n = int(x.shape[0])
        if n == 0:
            continue
        loss = loss_fn(model(x) / temperature, y)
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        for acc, g in zip(total, grads, strict=True):
            if g is not None:
                acc.add_(g.detach(), alpha=float(n))
        count += n
    if count == 0:
        raise PrunelabError("batches hold no examples; cannot compute a gradient")
    return {n: acc / count for n, acc in zip(names, total, strict=True)}


def unflatten(flat: Tensor, params: dict[str, nn.Parameter]) -> dict[str, Tensor]:
    """Split a flat ``(D,)`` vector in prunable-parameter order into ``{name: tensor}``.

    Example:
        >>> ps = {"a": torch.zeros(2, 2), "b": torch.zeros(3)}
        >>> {k: tuple(v.shape) for k, v in unflatten(torch.arange(7.0), ps).items()}
        {'a': (2, 2), 'b': (3,)}
    """
    total = sum(p.numel() for p in params.values())
    if flat.shape != (total,):
        raise PrunelabError(f"flat vector has shape {tuple(flat.shape)}, expected ({total},)")
    out, start = {}, 0
    for n, p in params.items():
        out[n] = flat[start : start + p.numel()].reshape(p.shape)
        start += p.numel()
    return out


def flatten(tensors: dict[str, Tensor]) -> Tensor:
    """Concatenate ``{name: tensor}`` into one flat vector (dict order)."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def add_locality(
    scores: dict[str, Tensor], params: dict[str, nn.Parameter], locality: float
) -> dict[str, Tensor]:
    """Add paper 001's locality term ``½ λ θ²`` to every score (no-op for ``λ = 0``)."""
    if locality == 0.0:
        return scores
    return {n: s + 0.5 * locality * params[n].detach() ** 2 for n, s in scores.items()}
