"""``synflow``: data-free synaptic-flow saliency ``|θ ⊙ ∂R/∂θ|`` (Tanaka et al. 2020).

``R = 1ᵀ f(𝟙; |θ|)``: every floating entry of the model's ``state_dict`` (parameters
*and* buffers such as BatchNorm running statistics, as Synaptic-Flow does) is replaced
by its absolute value, an all-ones input of one example's shape (batch 1) is passed
through the network in ``eval()`` mode, and ``R`` is the sum of the outputs. The model
is left exactly as it was: every state entry is copied back bit for bit and the
train/eval flags are restored, also when an error interrupts the pass.

This is a single score at the current weights; Synaptic-Flow's 100 rounds of re-scoring
on a density schedule are a procedure (:func:`prunelab.procedures.at_init`). Pruned
(zero) weights score 0 and, being zero, carry no flow in later rounds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunelab._evaluate import placement, restore_modes, save_modes
from prunelab.errors import PrunelabError
from prunelab.scores._common import require_params
from prunelab.scores.base import CRITERIA, Criterion


@dataclass(frozen=True)
class SynflowHparams:
    """Hyper-parameters of ``synflow``.

    Attributes:
        double: Compute on a float64 copy of the model; ``R`` is a product of many
            layers and can overflow or lose small scores in float32 for deep networks.
        input_shape: Shape of one example, e.g. ``(1, 8, 8)``; ``None`` = the model's
            ``prunelab_spec["input_shape"]``, else the shape of the first batch.
    """

    double: bool = False
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.double, bool):
            raise PrunelabError(f"double must be true or false, got {self.double!r}")
        if self.input_shape is not None:
            shape = self.input_shape
            ok = isinstance(shape, list | tuple) and len(shape) > 0
            ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
            if not ok:
                raise PrunelabError(
                    f"input_shape must be a non-empty list of positive ints, got {shape!r}"
                )
            object.__setattr__(self, "input_shape", tuple(shape))


def _input_shape(model: nn.Module, batches: list | None, given) -> tuple[int, ...]:
    """One example's shape: the hparam, the model's spec, or the first batch."""
    if given is not None:
        return tuple(given)
    spec = getattr(model, "prunelab_spec", None)
    if isinstance(spec, dict) and spec.get("input_shape"):
        return tuple(int(d) for d in spec["input_shape"])
    if batches:
        return tuple(batches[0][0].shape[1:])
    raise PrunelabError(
        "synflow needs the input shape: pass input_shape=(...), batches, or a model built "
        "by prunelab.models.build"
    )


def synflow_scores(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    input_shape: tuple[int, ...],
    double: bool = False,
) -> dict[str, Tensor]:
    """``|θ ⊙ ∂R/∂θ|`` with ``R = sum(f(𝟙; |θ|))``, leaving ``model`` untouched.

    Args:
        model: The network.
        params: Prunable ``{name: Parameter}`` of ``model`` (keys are looked up by name).
        input_shape: Shape of one example (the all-ones input is ``(1, *input_shape)``).
        double: Work on a float64 deep copy instead of the model itself.

    Returns:
        ``{name: score}`` shaped like the parameters (float64 when ``double``).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.0]]))
        ...     _ = net[1].weight.copy_(torch.tensor([[-1.0, 2.0]]))
        >>> s = synflow_scores(net, {"0.weight": net[0].weight}, (2,))
        >>> s["0.weight"].tolist()  # |θ_ij| · |w2_i| · 1
        [[1.0, 2.0], [6.0, 0.0]]
        >>> net[0].weight[0, 1].item()  # signs restored
        -2.0
    """
    modes = save_modes(model)
    work = copy.deepcopy(model).double() if double else model
    saved = None if double else {k: v.clone() for k, v in model.state_dict().items()}
    try:
        work.eval()
        with torch.no_grad():
            for t in work.state_dict().values():
                if t.is_floating_point():
                    t.abs_()
        named = dict(work.named_parameters())
        tensors = [named[n] for n in params]
        device, dtype = placement(work)
        out = work(torch.ones((1, *input_shape), device=device, dtype=dtype))
        grads = torch.autograd.grad(out.sum(), tensors, allow_unused=True)
        scores = {}
        for n, p, g in zip(params, tensors, grads, strict=True):
            g = torch.zeros_like(p) if g is None else g
            scores[n] = (g * p).detach().abs()
    finally:
        if saved is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    v.copy_(saved[k])
        restore_modes(modes)
    return scores


def _synflow(model, params, batches, loss_fn, hp: SynflowHparams):
    require_params(params)
    shape = _input_shape(model, batches, hp.input_shape)
    return synflow_scores(model, params, shape, hp.double)


CRITERIA.add(
    "synflow",
    Criterion("synflow", _synflow, SynflowHparams, False, "|θ ⊙ ∂R/∂θ|, R = 1ᵀf(1;|θ|), data-free"),
)
