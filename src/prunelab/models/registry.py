"""The model registry, ``build`` / ``build_from_spec``, and helpers shared by the architectures.

Every built-in factory has the signature ``factory(input_shape, output_dim) -> nn.Module``
and returns a freshly initialised network (:func:`init_weights`). :func:`build` attaches a
plain-dict ``prunelab_spec`` to the model so that a checkpoint's ``meta.json`` can rebuild
the same architecture with :func:`build_from_spec` without the user naming it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from prunelab.errors import PrunelabError
from prunelab.registry import Registry

#: name -> factory(input_shape: tuple[int, ...], output_dim: int) -> nn.Module
MODELS: Registry[Callable[[tuple[int, ...], int], nn.Module]] = Registry("model")


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    """Return ``input_shape`` as a tuple of positive ints, or raise naming the bad value."""
    if isinstance(input_shape, str | bytes) or not isinstance(input_shape, Sequence):
        raise PrunelabError(
            f"input_shape must be a sequence of positive ints like (1, 8, 8), got {input_shape!r}"
        )
    dims = tuple(input_shape)
    ok = len(dims) > 0 and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims
    )
    if not ok:
        raise PrunelabError(
            f"input_shape must be a non-empty sequence of positive ints, got {input_shape!r}"
        )
    return dims


def _check_output_dim(output_dim: Any) -> int:
    """Return ``output_dim`` as a positive int, or raise naming the bad value."""
    if isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim < 1:
        raise PrunelabError(f"output_dim must be a positive int, got {output_dim!r}")
    return output_dim


def image_shape(model_name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Check that a convolutional model gets an image-shaped input.

    Args:
        model_name: Registry name of the model, for the error message.
        input_shape: Shape of one example.

    Returns:
        ``(channels, height, width)``.

    Raises:
        PrunelabError: If ``input_shape`` is not three-dimensional.

    Example:
        >>> image_shape("lenet5", (1, 28, 28))
        (1, 28, 28)
    """
    if len(input_shape) != 3:
        raise PrunelabError(
            f"model {model_name!r} needs an image input_shape (C, H, W), got {tuple(input_shape)}; "
            "use an MLP (fc5, fc12, lenet300) for flat inputs"
        )
    c, h, w = input_shape
    return c, h, w


def init_weights(model: nn.Module) -> nn.Module:
    """Initialise a network the prunelab way, in place.

    Conv and Linear weights get Kaiming-normal (fan_in, ReLU gain: std ``sqrt(2 / fan_in)``),
    their biases zero; BatchNorm weights 1 and biases 0. Every built-in architecture uses
    this so that magnitude- and curvature-based scores at initialisation are comparable
    across architectures. Random draws come from torch's global generator, so building
    under ``torch.manual_seed(s)`` is reproducible.

    Args:
        model: The network to initialise.

    Returns:
        ``model`` itself.

    Example:
        >>> net = init_weights(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
        >>> net[0].bias.tolist(), net[1].weight.tolist()
        ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    """
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def build(
    name: str,
    data: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    output_dim: int | None = None,
) -> nn.Module:
    """Build a freshly initialised model.

    Args:
        name: A registered model name (see ``MODELS.names()``), a user model
            ``"package.module:factory"`` (see :mod:`prunelab.models.user`), or a Hugging
            Face encoder directory ``"hf:PATH"`` (see :mod:`prunelab.models.hf`; the
            path is stored absolute in the spec).
        data: A :class:`~prunelab.data.DataBundle`; supplies ``input_shape`` (shape of one
            example) and ``output_dim`` (classes, or 1 for regression) unless they are
            given explicitly.
        input_shape: Shape of one example, e.g. ``(64,)`` or ``(3, 32, 32)``.
        output_dim: Width of the output layer.

    Returns:
        The model (on CPU, default dtype), with ``model.prunelab_spec`` set to
        ``{"name": name, "input_shape": [...], "output_dim": int}``.

    Raises:
        PrunelabError: On an unknown name, a bad user model reference, missing or invalid
            sizes, or a convolutional model given a flat ``input_shape``.

    Example:
        >>> model = build("lenet300", input_shape=(1, 8, 8), output_dim=10)
        >>> model.prunelab_spec
        {'name': 'lenet300', 'input_shape': [1, 8, 8], 'output_dim': 10}
    """
    if input_shape is None and data is not None:
        input_shape = data.input_shape
    if output_dim is None and data is not None:
        output_dim = data.output_dim
    if input_shape is None or output_dim is None:
        raise PrunelabError(
            f"cannot build model {name!r}: give a dataset or both input_shape and output_dim"
        )
    shape = _check_shape(input_shape)
    out = _check_output_dim(output_dim)
    if isinstance(name, str) and (name.startswith("hf:") or name == "minilm"):
        # Pretrained encoders (minilm too: its data check needs `data`); see models/hf.py.
        from prunelab.models.hf import build_hf, check_reference

        name = check_reference(name, data)  # hf:PATH with PATH absolute
        model = build_hf(name, shape, out)
    elif isinstance(name, str) and ":" in name:
        # Imported lazily: user.py imports this module.
        from prunelab.models.user import build_user_model

        model = build_user_model(name, shape, out)
    else:
        model = MODELS.get(name)(shape, out)
    model.prunelab_spec = {"name": name, "input_shape": list(shape), "output_dim": out}
    return model


def build_from_spec(spec: dict) -> nn.Module:
    """Rebuild a model from its ``prunelab_spec`` (e.g. read back from ``meta.json``).

    Weights are freshly initialised; load the saved ones afterwards.

    Args:
        spec: A dict with keys ``name``, ``input_shape`` and ``output_dim``.

    Returns:
        A model of the same architecture (same ``state_dict`` keys and shapes).

    Raises:
        PrunelabError: If ``spec`` is not such a dict or its values are invalid.

    Example:
        >>> a = build("fc5", input_shape=(64,), output_dim=10)
        >>> b = build_from_spec(a.prunelab_spec)
        >>> [v.shape for v in a.state_dict().values()] == [v.shape for v in b.state_dict().values()]
        True
    """
    required = ("name", "input_shape", "output_dim")
    if not isinstance(spec, dict) or any(k not in spec for k in required):
        raise PrunelabError(
            f"model spec must be a dict with keys {', '.join(required)}, got {spec!r}"
        )
    return build(spec["name"], input_shape=spec["input_shape"], output_dim=spec["output_dim"])
