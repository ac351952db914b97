"""What an importance criterion is, and the one entry point that computes any of them.

Convention (methods.md §2): **higher score = keep**. A criterion is a function
``fn(model, params, batches, loss_fn, hparams) -> dict[name, Tensor]`` plus a typed,
frozen dataclass of hyper-parameters, registered under a name in :data:`CRITERIA`.
A new criterion is one file and one ``CRITERIA.add`` call; it then appears in the
CLI, sweeps and reports without further edits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters
from prunelab.registry import Registry

ScoreFn = Callable[..., dict[str, Tensor]]


@dataclass(frozen=True)
class Criterion:
    """A registered importance criterion.

    Attributes:
        name: Registry name (``"magnitude"``, ``"obd"``, ...).
        fn: ``fn(model, params, batches, loss_fn, hparams) -> {name: score}``; ``params`` is
            the prunable ``{name: Parameter}`` dict, ``batches`` a list of ``(x, y)`` or ``None``.
        hparams: Frozen dataclass type of the criterion's hyper-parameters.
        needs_data: Whether ``batches`` and ``loss_fn`` are required.
        summary: One line for ``--help`` and reports.
        reconstruct: For criteria that also refit the kept weights once a mask is chosen
            (``sparsegpt``): ``reconstruct(model, params, batches, mask, hparams)`` updates
            the prunable weights in place, pruned ones to exactly 0, and returns the
            ``{name: bool tensor}`` mask it used (the same counts per row as ``mask``, and
            only weights that ``mask`` keeps or that are still non-zero);
            ``None`` for the rest. Called by :func:`reconstruct`, which the procedures
            call after every mask.
    """

    name: str
    fn: ScoreFn
    hparams: type
    needs_data: bool
    summary: str
    reconstruct: Callable[..., None] | None = None

    def make_hparams(self, **values) -> object:
        """Build the hparams dataclass, naming any unknown key and the valid ones."""
        valid = {f.name for f in dataclasses.fields(self.hparams)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise PrunelabError(
                f"criterion {self.name!r} has no hparam {unknown[0]!r}; valid: "
                f"{', '.join(sorted(valid)) or '(none)'}"
            )
        return self.hparams(**values)


CRITERIA: Registry[Criterion] = Registry("criterion")


def score(
    model: nn.Module,
    criterion: str,
    batches: Iterable[tuple[Tensor, Tensor]] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    spec: PrunableSpec | None = None,
    **hparams,
) -> dict[str, Tensor]:
    """Score every prunable weight of ``model`` at its current values (higher = keep).

    Args:
        model: The network; scored as it is. Criteria that differentiate the loss refuse
            an active Dropout or a train-mode BatchNorm (call ``model.eval()`` first).
        criterion: A name in :data:`CRITERIA`.
        batches: ``(x, y)`` batches for data-dependent criteria.
        loss_fn: Mean-reduced loss ``(output, y) -> scalar`` for data-dependent criteria.
        spec: Which parameters are prunable (default: Linear/Conv weights).
        **hparams: The criterion's hyper-parameters (see its dataclass).

    Returns:
        ``{param name: scores}`` with the shape of each parameter, float.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> s = score(net, "magnitude")
        >>> torch.equal(s["0.weight"], net[0].weight.detach().abs())
        True
    """
    crit = CRITERIA.get(criterion)
    hp = crit.make_hparams(**hparams)
    if crit.needs_data and (batches is None or loss_fn is None):
        raise PrunelabError(f"criterion {criterion!r} needs data: pass batches and loss_fn")
    params = prunable_parameters(model, spec)
    batch_list = list(batches) if batches is not None else None
    if crit.needs_data and not batch_list:
        raise PrunelabError(f"criterion {criterion!r} got an empty batch iterable")
    scores = crit.fn(model, params, batch_list, loss_fn, hp)
    for name, value in scores.items():
        if not torch.isfinite(value).all():
            raise PrunelabError(f"criterion {criterion!r} produced non-finite scores in {name!r}")
    return scores


def reconstruct(
    model: nn.Module,
    criterion: str,
    mask,
    batches: Iterable[tuple[Tensor, Tensor]] | None = None,
    **hparams,
):
    """Refit the kept weights of ``model`` for ``mask`` if ``criterion`` does so (in place).

    Call it **before** applying ``mask``: the weights about to be pruned still hold their
    values, whose removal error the refit compensates. Criteria without a reconstruction
    step leave the model alone; the others use it in ``eval()`` mode (its modes are
    restored) and leave it with ``mask`` applied.

    Args:
        model: The network.
        criterion: A name in :data:`CRITERIA`.
        mask: The :class:`~prunelab.masks.Mask` just chosen.
        batches: Calibration ``(x, y)`` batches.
        **hparams: The criterion's hyper-parameters.

    Returns:
        The mask applied (a new :class:`~prunelab.masks.Mask` with the same spec, or
        ``mask`` itself), or ``None`` when the criterion has no reconstruction step.
    """
    crit = CRITERIA.get(criterion)
    if crit.reconstruct is None:
        return None
    batch_list = list(batches) if batches is not None else []
    if not batch_list:
        raise PrunelabError(f"criterion {criterion!r} needs calibration batches to reconstruct")
    hp = crit.make_hparams(**hparams)
    params = prunable_parameters(model, mask.spec)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        used = crit.reconstruct(model, params, batch_list, mask, hp)
    finally:
        for m, training in modes:
            m.training = training
    if used is not None:
        out = type(mask)(used, mask.spec)
        out.nm = getattr(mask, "nm", None)
        mask = out
    mask.apply(model)
    return mask
