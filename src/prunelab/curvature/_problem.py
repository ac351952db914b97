"""The functional set-up shared by every curvature computation (private).

A :class:`Problem` fixes *what* is differentiated: a model, a mean-reduced loss, a chosen
set of parameters ``θ`` (flattened to length ``D`` in a fixed order) and a list of
``(x, y)`` batches. Everything else in the model (other parameters, buffers such as
BatchNorm running statistics) is held fixed through ``torch.func.functional_call``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from prunelab.curvature._dist import World, all_reduce_sum, resolve_world, same_on_all_ranks
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters

log = logging.getLogger(__name__)

ParamsArg = Sequence[str] | PrunableSpec | dict | None


@dataclass(frozen=True)
class Batch:
    """One materialised batch: ``index`` in the caller's iterable, inputs, targets, size."""

    index: int
    x: Tensor
    y: Tensor
    n: int


def check_deterministic(model: nn.Module) -> None:
    """Refuse a model whose forward pass is random or depends on the batch.

    Raises:
        PrunelabError: If a Dropout with ``p > 0`` or a BatchNorm layer is in training mode.
    """
    bad = []
    for name, mod in model.named_modules():
        if not mod.training:
            continue
        if isinstance(mod, nn.modules.dropout._DropoutNd) and mod.p > 0:
            bad.append(f"{type(mod).__name__} {name or '<root>'!r} (p={mod.p})")
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            bad.append(f"{type(mod).__name__} {name or '<root>'!r}")
    if bad:
        raise PrunelabError(
            "model is not deterministic: "
            + ", ".join(bad)
            + " in training mode; call model.eval() before measuring curvature"
        )


def select_parameters(model: nn.Module, params: ParamsArg) -> dict[str, nn.Parameter]:
    """Resolve ``params`` to an ordered ``name -> Parameter`` dict.

    Args:
        model: The model.
        params: ``None`` (the default prunable set), a :class:`PrunableSpec`, a dict as
            returned by :func:`prunable_parameters`, or a sequence of parameter names.

    Raises:
        PrunelabError: On an unknown name, a duplicate-free empty selection, or mixed
            dtypes/devices.
    """
    named = dict(model.named_parameters())
    if params is None or isinstance(params, PrunableSpec):
        chosen = prunable_parameters(model, params)
        if not chosen:
            raise PrunelabError(
                "model has no prunable parameters (no Linear/Conv weights); "
                f"pass params= with names from: {', '.join(named) or '<none>'}"
            )
    else:
        names = [params] if isinstance(params, str) else list(params)
        chosen = {}
        for n in names:
            if not isinstance(n, str) or n not in named:
                raise PrunelabError(
                    f"unknown parameter name {n!r}; valid names: {', '.join(named) or '<none>'}"
                )
            chosen[n] = named[n]
        if not chosen:
            raise PrunelabError("params is empty; give at least one parameter name")
    kinds = {(p.dtype, p.device) for p in chosen.values()}
    if len(kinds) > 1:
        raise PrunelabError(f"selected parameters mix dtypes/devices {sorted(map(str, kinds))}")
    dtype = next(iter(kinds))[0]
    if not dtype.is_floating_point:
        raise PrunelabError(f"selected parameters must be floating point, got {dtype}")
    return chosen


def materialise(batches: Iterable, dtype: torch.dtype, device: torch.device) -> list[Batch]:
    """Read an iterable of ``(x, y)`` pairs once into a list on ``device``.

    Floating inputs and targets are cast to the model's ``dtype``; integer labels are kept.
    A single ``(x, y)`` pair of tensors is accepted as one batch. Batches with zero
    examples are skipped.

    Raises:
        PrunelabError: If an element is not an ``(x, y)`` pair of tensors with equal length.
    """
    if (
        isinstance(batches, tuple | list)
        and len(batches) == 2
        and all(isinstance(t, Tensor) for t in batches)
    ):
        batches = [tuple(batches)]
    out = []
    for i, b in enumerate(batches):
        try:
            x, y = b
        except (TypeError, ValueError):
            raise PrunelabError(
                f"batch {i} is not an (x, y) pair, got {type(b).__name__}"
            ) from None
        if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
            raise PrunelabError(f"batch {i} must hold tensors, got ({type(x).__name__}, ...)")
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise PrunelabError(
                f"batch {i}: x and y must have the same leading size, got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        if x.shape[0] == 0:
            continue
        x = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
        y = y.to(device=device, dtype=dtype if y.is_floating_point() else y.dtype)
        out.append(Batch(i, x, y, int(x.shape[0])))
    return out


class Problem:
    """Model, loss, parameter selection and data, in functional form.

    Attributes:
        names: Selected parameter names, in flattening order.
        shapes: Their shapes.
        slices: ``name -> slice`` into the flat vector of length ``dim``.
        dim: ``D``, the total number of selected scalars.
        theta: The selected parameter values (detached), a tuple in ``names`` order.
        batches: This rank's batches (all batches when not distributed).
        num_examples: Global number of examples ``N`` (summed over ranks).
        world: The distributed context.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn,
        batches: Iterable,
        params: ParamsArg = None,
        *,
        shard: bool | None = None,
        distributed: bool | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise PrunelabError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise PrunelabError(f"loss_fn must be callable (output, y) -> scalar, got {loss_fn!r}")
        check_deterministic(model)
        self.model = model
        self.loss_fn = loss_fn
        chosen = select_parameters(model, params)
        first = next(iter(chosen.values()))
        self.dtype, self.device = first.dtype, first.device
        self.world: World = resolve_world(distributed)
        all_batches = materialise(batches, self.dtype, self.device)
        self.batches, self.shard = self._shard(all_batches, shard)
        n_local = torch.tensor([float(sum(b.n for b in self.batches))], device=self.device)
        self.num_examples = int(all_reduce_sum(n_local, self.world).item())
        if self.num_examples == 0:
            raise PrunelabError("batches is empty: got no (x, y) pair with at least one example")
        self._set_params(chosen)

    def _shard(self, batches: list[Batch], shard: bool | None) -> tuple[list[Batch], bool]:
        """Keep this rank's share: every ``size``-th batch, starting at ``rank``."""
        if not self.world.active or shard is False:
            return batches, False
        if shard is None:
            # Same data everywhere means the caller handed each rank the full data set.
            fp = [float(len(batches)), float(sum(b.n for b in batches))]
            for b in batches[:1] + batches[-1:]:
                fp += [float(b.x.double().sum()), float(b.y.double().sum())]
            fp += [0.0] * (6 - len(fp))
            shard = same_on_all_ranks(
                torch.tensor(fp, dtype=torch.float64, device=self.device), self.world
            )
            log.info("distributed: batches %s across ranks", "sharded" if shard else "kept")
        if not shard:
            return batches, False
        return batches[self.world.rank :: self.world.size], True

    def _set_params(self, chosen: dict[str, nn.Parameter]) -> None:
        self.names = list(chosen)
        self.shapes = [tuple(p.shape) for p in chosen.values()]
        self.numels = [p.numel() for p in chosen.values()]
        self.slices, start = {}, 0
        for n, k in zip(self.names, self.numels, strict=True):
            self.slices[n] = slice(start, start + k)
            start += k
        self.dim = start
        self.theta = tuple(p.detach() for p in chosen.values())
        selected = set(self.names)
        # Other parameters are passed detached so that no autograd graph is kept for them.
        self.fixed = {n: p.detach() for n, p in self.model.named_parameters() if n not in selected}

    def restricted(self, names: Sequence[str]) -> Problem:
        """A copy over a subset of the parameters, sharing model, loss and data."""
        new = object.__new__(Problem)
        new.__dict__.update(self.__dict__)
        new._set_params(select_parameters(self.model, list(names)))
        return new

    def output(self, theta: tuple[Tensor, ...], x: Tensor) -> Tensor:
        """Model output with the selected parameters replaced by ``theta``."""
        values = dict(self.fixed)
        values.update(zip(self.names, theta, strict=True))
        return functional_call(self.model, values, (x,))

    def loss(self, theta: tuple[Tensor, ...], x: Tensor, y: Tensor) -> Tensor:
        """Mean loss of one batch at ``theta`` (a scalar)."""
        return self.loss_fn(self.output(theta, x), y)

    def split(self, rows: Tensor) -> tuple[Tensor, ...]:
        """View ``(k, D)`` rows as a tuple of ``(k, *shape)`` per-parameter blocks."""
        k = rows.shape[0]
        return tuple(
            rows[:, s].reshape(k, *shape)
            for s, shape in zip(self.slices.values(), self.shapes, strict=True)
        )

    def cat(self, blocks: Sequence[Tensor]) -> Tensor:
        """Inverse of :meth:`split`: ``(k, *shape)`` blocks to ``(k, D)`` rows."""
        k = blocks[0].shape[0]
        return torch.cat([b.reshape(k, -1) for b in blocks], dim=1)

    def batch_label(self, b: Batch) -> str:
        """Human name of a batch for error messages."""
        where = f" on rank {self.world.rank}" if self.world.active else ""
        return f"batch {b.index}{where}"


def per_example_losses(problem: Problem, theta: tuple[Tensor, ...], x: Tensor, y: Tensor) -> Tensor:
    """Loss of every example of a batch, shape ``(n,)``.

    The model runs once on the whole batch (so eval-mode BatchNorm sees the same
    inputs); ``loss_fn`` is applied to each ``(output[i:i+1], y[i:i+1])`` pair.
    """
    out = problem.output(theta, x)
    return vmap(lambda o, t: problem.loss_fn(o[None], t[None]))(out, y)


def check_mean_reduced(problem: Problem) -> None:
    """Refuse a loss that is not the mean of its per-example losses (first local batch).

    Raises:
        PrunelabError: If ``loss_fn(out, y)`` differs from the mean of per-example losses.
    """
    if not problem.batches:
        return
    b = problem.batches[0]
    with torch.no_grad():
        whole = problem.loss(problem.theta, b.x, b.y)
        parts = per_example_losses(problem, problem.theta, b.x, b.y)
    if parts.shape != (b.n,):
        raise PrunelabError(
            f"loss_fn must return a scalar per example, got shape {tuple(parts.shape[1:])}"
        )
    tol = 1e3 * torch.finfo(problem.dtype).eps * max(1.0, abs(float(whole)))
    if abs(float(whole) - float(parts.mean())) > tol:
        raise PrunelabError(
            f"loss_fn is not a mean over examples (batch loss {float(whole):.6g} vs mean of "
            f"per-example losses {float(parts.mean()):.6g}); use reduction='mean'"
        )
