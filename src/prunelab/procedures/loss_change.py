"""How local was a pruning step? Predicted vs measured loss change (paper 001).

For a step from ``θ`` to ``m ⊙ θ`` (``Δθ = −(1 − m) ⊙ θ`` on the prunable set):

* first-order model: ``ΔL₁ = gᵀΔθ``;
* second-order model: ``ΔL₂ = gᵀΔθ + ½ ΔθᵀHΔθ``, with one exact Hessian-vector product
  (``second_order="hvp"``) or a diagonal curvature ``½ Σ c_i Δθ_i²``
  (``second_order="diagonal"``, any curvature of the scores);
* measured: ``L(m ⊙ θ) − L(θ)`` on the same batches.

When the step is small the three agree; a large gap says the Taylor model that chose the
mask was used far outside its region of validity, which is why several small steps or a
locality penalty help (paper 001). All losses are means over every example in ``eval()``
mode; the model is not modified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.func import functional_call

from prunelab._evaluate import restore_modes, save_modes
from prunelab.curvature import Hessian
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores._common import check_choice, device_batches, flatten, mean_gradient
from prunelab.scores._curvature_diag import curvature_diagonal

SECOND_ORDER = ("hvp", "diagonal")


@dataclass(frozen=True)
class LossChange:
    """Predicted and measured loss change of one pruning step.

    Attributes:
        loss_before: ``L(θ)``, mean over the batches.
        loss_after: ``L(m ⊙ θ)``.
        measured: ``loss_after − loss_before``.
        first_order: ``gᵀΔθ``.
        second_order: ``gᵀΔθ + ½ ΔθᵀHΔθ`` (or its diagonal form).
        second_order_kind: ``"hvp"`` or ``"diagonal:<curvature>"``.
        step_norm: ``‖Δθ‖₂``.
        removed: Non-zero weights that ``mask`` sets to zero.
        num_examples: Examples the losses are averaged over.
    """

    loss_before: float
    loss_after: float
    measured: float
    first_order: float
    second_order: float
    second_order_kind: str
    step_norm: float
    removed: int
    num_examples: int

    def to_dict(self) -> dict:
        """Plain-dict form for reports."""
        return asdict(self)


def _loss_at(model, values: dict, batches) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y, loss_fn in batches:
            total += float(loss_fn(functional_call(model, values, (x,)), y)) * int(x.shape[0])
            n += int(x.shape[0])
    return total / n


def predict_loss_change(
    model: nn.Module,
    mask: Mask,
    batches: list,
    loss_fn,
    *,
    second_order: str = "hvp",
    curvature: str = "exact",
    num_probes: int = 10,
    seed: int = 0,
) -> LossChange:
    """First- and second-order predictions of the loss change of pruning to ``mask``.

    Args:
        model: The network at ``θ`` (weights not yet masked); scored in ``eval()`` mode
            and left unchanged.
        mask: The mask to prune to (its ``spec`` names the prunable set).
        batches: ``(x, y)`` pairs.
        loss_fn: Mean-reduced loss.
        second_order: ``"hvp"`` (exact ``ΔθᵀHΔθ``) or ``"diagonal"``.
        curvature: Curvature diagonal for ``"diagonal"`` (``exact``, ``hutchinson``,
            ``empirical-fisher``, ``fisher``).
        num_probes: Hutchinson probes for ``curvature="hutchinson"``.
        seed: Hutchinson seed.

    Returns:
        The :class:`LossChange`.

    Raises:
        PrunelabError: On an unknown option, no batches, or a mask that does not fit.
    """
    check_choice(second_order, "second_order", SECOND_ORDER)
    batches = list(batches or [])
    if not batches:
        raise PrunelabError("predict_loss_change needs at least one (x, y) batch")
    params = prunable_parameters(model, mask.spec)
    mask._check_model(model)
    modes = save_modes(model)
    model.eval()
    try:
        theta = {n: p.detach() for n, p in params.items()}
        delta = {n: -(~mask.masks[n].to(t.device)).to(t.dtype) * t for n, t in theta.items()}
        flat_delta = flatten(delta)
        g = flatten(mean_gradient(model, params, batches, loss_fn))
        first = float(g @ flat_delta)
        if second_order == "hvp":
            h_delta = Hessian(model, loss_fn, batches, params=list(params)) @ flat_delta
            quad, kind = float(flat_delta @ h_delta), "hvp"
        else:
            diag = curvature_diagonal(
                model,
                params,
                batches,
                loss_fn,
                curvature,
                num_probes=num_probes,
                seed=seed,
                negative_curvature="keep",
            )
            quad = float(flatten(diag.values) @ flat_delta**2)
            kind = f"diagonal:{curvature}"
        state = dict(model.named_parameters())
        state.update(dict(model.named_buffers()))
        on_device = [(x, y, loss_fn) for x, y in device_batches(model, batches)]
        before = _loss_at(model, state, on_device)
        after = _loss_at(model, {**state, **{n: theta[n] + delta[n] for n in theta}}, on_device)
    finally:
        restore_modes(modes)
    removed = sum(int((p != 0).sum()) for p in delta.values())
    return LossChange(
        loss_before=before,
        loss_after=after,
        measured=after - before,
        first_order=first,
        second_order=first + 0.5 * quad,
        second_order_kind=kind,
        step_norm=float(flat_delta.norm()),
        removed=removed,
        num_examples=sum(int(x.shape[0]) for x, _ in batches),
    )
