"""Errors raised inside a model, told in one line: which model, which input, which layer.

A user model (``"package.module:factory"``) whose layers do not fit the data fails deep
inside ``torch`` (``mat1 and mat2 shapes cannot be multiplied``). :func:`model_failure`
reads the traceback's frames for the module being run, so the one line names the model,
the shape of the batch it was given and the layer (e.g. ``'2' (Linear(in_features=10,
...))``) that raised; :func:`check_model_fits` runs that check on one small batch before
any training starts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from prunelab._evaluate import placement, restore_modes, save_modes, to_model
from prunelab.errors import PrunelabError


class ModelError(PrunelabError):
    """A model that does not fit its data (told in one line: model, input shape, layer)."""

    kind = "model"


def is_user_model(module: object) -> bool:
    """Whether ``module`` was built from a user's ``"package.module:factory"``."""
    spec = getattr(module, "prunelab_spec", None)
    return isinstance(spec, dict) and ":" in str(spec.get("name", ""))


def _first_tensor(values: object) -> Tensor | None:
    if isinstance(values, Tensor):
        return values
    if isinstance(values, (list, tuple)):
        for v in values:
            found = _first_tensor(v)
            if found is not None:
                return found
    if isinstance(values, dict):
        return _first_tensor(list(values.values()))
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def model_failure(exc: BaseException, root: nn.Module | None = None) -> str | None:
    """One line describing an exception raised while a model's ``forward`` ran.

    Args:
        exc: The exception (its traceback is read, nothing is re-run).
        root: The model; default: the outermost user model found in the traceback.

    Returns:
        ``"model 'pkg.mod:make' failed on a batch of shape (2, 1, 8, 8) in layer '2'
        (Linear(...)): RuntimeError: ..."``, or ``None`` when ``exc`` was not raised
        inside ``root`` (or, without ``root``, inside a user model).
    """
    tb = exc.__traceback__
    batch = inner = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        me = local.get("self")
        if isinstance(me, nn.Module):
            if root is None and is_user_model(me):
                root = me
            if root is not None:
                if me is root and batch is None:
                    batch = _first_tensor([local.get(k) for k in ("args", "input", "x")])
                inner = me
        tb = tb.tb_next
    if root is None or inner is None:
        return None
    names = {id(m): n for n, m in root.named_modules()}
    layer = names.get(id(inner))
    where = "in the model's own forward" if not layer else f"in layer {layer!r} ({inner!r})"
    where = " ".join(where.split())  # a multi-line repr on one line
    name = (getattr(root, "prunelab_spec", None) or {}).get("name", type(root).__name__)
    shape = tuple(batch.shape) if batch is not None else "?"
    return f"model {name!r} failed on a batch of shape {shape} {where}: {_one_line(exc)}"


def check_model_fits(
    model: nn.Module, data, loss_fn: Callable[[Tensor, Tensor], Tensor], name: str
) -> None:
    """Run ``model`` and the loss on two training examples; refuse in one line if they fail.

    Train/eval modes are restored; no gradient is taken and no weight changes.

    Raises:
        ModelError: The forward pass (naming the model, the input shape and the layer)
            or the loss (naming the output and target shapes) failed.
    """
    x, y = data.train[0][:2], data.train[1][:2]
    x, y = to_model(x, y, *placement(model))
    modes = save_modes(model)
    try:
        model.eval()
        with torch.no_grad():
            try:
                out = model(x)
            except Exception as exc:
                line = model_failure(exc, model) or (
                    f"model {name!r} failed on a batch of shape {tuple(x.shape)}: {_one_line(exc)}"
                )
                raise ModelError(
                    f"{line} (the data {data.name!r} has examples of shape "
                    f"{tuple(data.input_shape)})"
                ) from None
            try:
                loss_fn(out, y)
            except Exception as exc:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ModelError(
                    f"model {name!r} returns {shape} for a batch of shape {tuple(x.shape)}, "
                    f"which the {data.task} loss cannot compare with targets of shape "
                    f"{tuple(y.shape)} ({data.output_dim} outputs expected): {_one_line(exc)}"
                ) from None
    finally:
        restore_modes(modes)
