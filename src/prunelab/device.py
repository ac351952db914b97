"""Choosing where tensors live: ``cpu``, ``cuda`` (``cuda:N``) or ``auto``.

Nothing in prunelab hard-codes a device: models, masks, batches and curvature products
follow the model's parameters, and the entry points take ``device=`` only to move the
model there first. ``auto`` picks the first GPU when one is visible, else the CPU.
"""

from __future__ import annotations

import torch

from prunelab.errors import PrunelabError

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """The :class:`torch.device` that ``device`` names.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``, a device, or ``None``
            (the CPU).

    Returns:
        The device.

    Raises:
        PrunelabError: An unknown name, or a CUDA device that is not visible.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cpu")
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise PrunelabError(f"device {name!r}: no CUDA GPU is visible; use cpu or auto")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise PrunelabError(
                f"device {name!r}: {torch.cuda.device_count()} GPU(s) visible (cuda:0 ...)"
            )
        return torch.device(name)
    raise PrunelabError(f"unknown device {device!r}; valid: {', '.join(DEVICES)} or cuda:N")
