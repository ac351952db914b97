"""User-supplied models and weights.

A model name of the form ``"package.module:factory"`` imports ``package.module`` and
calls ``factory``: with ``input_shape=`` and ``output_dim=`` keyword arguments if it
accepts them, otherwise with no arguments. User models keep their own initialisation.
:func:`load_user_weights` loads a ``state_dict`` saved with ``torch.save`` (``.pt``,
``.pth``, read with ``weights_only=True`` so no pickled code runs) or with safetensors.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunelab.errors import PrunelabError

#: Suffixes :func:`load_user_weights` understands.
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")


def resolve_factory(ref: str) -> Callable[..., Any]:
    """Import the callable named by ``"package.module:attr"`` (``attr`` may be dotted).

    Args:
        ref: The reference, e.g. ``"mypkg.nets:make_net"``.

    Returns:
        The callable.

    Raises:
        PrunelabError: If the reference is malformed, the module cannot be imported, the
            attribute is missing, or it is not callable.

    Example:
        >>> resolve_factory("collections:OrderedDict").__name__
        'OrderedDict'
    """
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path or ":" in attr_path:
        raise PrunelabError(f"user model must look like 'package.module:factory', got {ref!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module's problem
        raise PrunelabError(
            f"cannot import module {module_name!r} of user model {ref!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise PrunelabError(
                f"user model {ref!r}: {getattr(obj, '__name__', obj)!r} has no attribute {part!r}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise PrunelabError(f"user model {ref!r} is not callable (got {type(obj).__name__})")
    return obj


def _accepted_keywords(factory: Callable[..., Any], names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` ``factory`` accepts as keyword arguments."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: call with no arguments
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return set(names)
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in keyword_kinds and p.name in names}


def build_user_model(ref: str, input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """Build a user model from ``"package.module:factory"``.

    Args:
        ref: The reference to the factory (a function or an ``nn.Module`` class).
        input_shape: Shape of one example, passed as ``input_shape=`` (a tuple) if the
            factory accepts it.
        output_dim: Output width, passed as ``output_dim=`` if the factory accepts it.

    Returns:
        The module the factory returned.

    Raises:
        PrunelabError: If the factory cannot be found, fails, or does not return an
            ``nn.Module``.
    """
    factory = resolve_factory(ref)
    offered = {"input_shape": tuple(input_shape), "output_dim": output_dim}
    kwargs = {k: v for k, v in offered.items() if k in _accepted_keywords(factory, tuple(offered))}
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise PrunelabError(
            f"user model {ref!r} failed when called with {kwargs or 'no arguments'}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise PrunelabError(f"user model {ref!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a flat ``name -> tensor`` dict from a weights file, on CPU."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PrunelabError(
            f"cannot read weights file '{path}': {type(exc).__name__}: {exc}"
        ) from exc
    # Training scripts often save {"state_dict": ..., "epoch": ...}; accept that wrapper.
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise PrunelabError(
            f"weights file '{path}' does not hold a state_dict (a dict of name -> tensor)"
        )
    return obj


def load_user_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a ``state_dict`` from a ``.pt``/``.pth`` or ``.safetensors`` file into ``model``.

    Every key of the model's ``state_dict`` must be present with the same shape, except
    BatchNorm ``num_batches_tracked`` counters (they do not affect the function); extra
    keys are refused. A ``module.`` prefix (from ``DataParallel``) is stripped when the
    model itself has none. Values are copied into the model's own device and dtype.

    Args:
        model: The model to fill, e.g. from :func:`~prunelab.models.build`.
        path: The weights file.

    Returns:
        ``model``, with the weights loaded in place.

    Raises:
        PrunelabError: If the file is missing or unreadable, or a key is missing,
            unexpected or of the wrong shape (the first bad key is named).
    """
    path = Path(path)
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise PrunelabError(
            f"weights file '{path}' has suffix {path.suffix!r}; "
            f"allowed: {', '.join(WEIGHT_SUFFIXES)}"
        )
    if not path.is_file():
        raise PrunelabError(f"weights file '{path}' does not exist")
    loaded = _read_state_dict(path)
    own = model.state_dict()
    if (
        loaded
        and all(k.startswith("module.") for k in loaded)
        and not any(k.startswith("module.") for k in own)
    ):
        loaded = {k.removeprefix("module."): v for k, v in loaded.items()}
    for key, ref in own.items():
        if key not in loaded:
            if key.endswith("num_batches_tracked"):
                continue
            raise PrunelabError(
                f"weights file '{path}' lacks key {key!r} (model expects shape {tuple(ref.shape)})"
            )
        if loaded[key].shape != ref.shape:
            raise PrunelabError(
                f"weights file '{path}': key {key!r} has shape {tuple(loaded[key].shape)}, "
                f"model expects {tuple(ref.shape)}"
            )
    extra = [k for k in loaded if k not in own]
    if extra:
        raise PrunelabError(
            f"weights file '{path}' has key {extra[0]!r} that the model does not have "
            f"({len(extra)} unexpected key(s))"
        )
    model.load_state_dict(loaded, strict=False)
    return model
