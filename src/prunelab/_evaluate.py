"""Evaluation and the task loss, shared by training, pruning and curvature code.

Re-exported by :mod:`prunelab.train`. Batches are moved to the model's device and, for
floating tensors, its dtype, so a float64 model can be evaluated on float32 data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError


def token_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Next-token cross-entropy: ``(N, T, V)`` logits vs ``(N, T)`` ids, mean over all tokens.

    Every example has the same ``T`` tokens, so the mean over tokens is the mean over
    examples of each example's mean, and regrouping examples into batches changes nothing.

    Example:
        >>> logits = torch.zeros(2, 3, 4)
        >>> round(float(token_cross_entropy(logits, torch.zeros(2, 3, dtype=torch.long))), 4)
        1.3863
    """
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


def cosine_distance(output: Tensor, target: Tensor) -> Tensor:
    """Embedding fidelity loss ``mean over examples of 1 − cos(output, target)``.

    Computed as ``½‖ô − t̂‖²`` with ``ô = o/‖o‖``, ``t̂ = t/‖t‖`` (the same number, since
    ``‖ô − t̂‖² = 2 − 2 cos``), which is exactly 0 when the output equals the target, never
    negative, and smooth there. Shapes: ``(N, d)`` and ``(N, d)`` → a scalar.

    Example:
        >>> o = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> float(cosine_distance(o, o)), float(cosine_distance(o, o.flip(1)))
        (0.0, 1.0)
    """
    o = F.normalize(output, dim=-1)
    t = F.normalize(target, dim=-1)
    return 0.5 * (o - t).pow(2).sum(-1).mean()


def loss_function(data: DataBundle) -> Callable[[Tensor, Tensor], Tensor]:
    """Mean-reduced loss for the task.

    Cross-entropy (classification), MSE (regression), next-token cross-entropy over
    every position (language model), or ``mean(1 − cos)`` between output and target
    embeddings (embedding, :func:`cosine_distance`). For regression an output of shape
    ``(N, 1)`` is compared with targets of shape ``(N,)``.
    """
    if data.task == "embedding":
        return cosine_distance
    if data.task == "language-model":
        return token_cross_entropy
    if data.task == "classification":
        return F.cross_entropy

    def mse(output: Tensor, target: Tensor) -> Tensor:
        if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
            output = output.squeeze(-1)
        return F.mse_loss(output, target)

    return mse


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model (its first parameter; CPU/float32 if none)."""
    for t in model.parameters():
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def to_model(
    x: Tensor, y: Tensor, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Move a batch to the model; floating tensors take the model's dtype."""
    x = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
    y = y.to(device=device, dtype=dtype) if y.is_floating_point() else y.to(device)
    return x, y


def save_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """The train/eval flag of every submodule, for :func:`restore_modes`."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    """Put back flags saved by :func:`save_modes` (per module: models may mix modes)."""
    for m, training in modes:
        m.training = training


def evaluate(
    model: nn.Module, data: DataBundle, split: str = "test", batch_size: int = 1024
) -> dict:
    """Loss and accuracy of ``model`` on a split, in ``eval()`` mode, without gradients.

    The train/eval mode of every submodule is restored afterwards.

    Args:
        model: The network.
        data: The dataset.
        split: ``"train"`` or ``"test"``.
        batch_size: Examples per forward pass (memory only; results do not depend on it
            beyond float rounding).

    Returns:
        ``{"loss": mean loss over examples, "accuracy": percent correct (0-100), or None
        for regression}``; a language model's accuracy is over every next-token
        prediction, and it also gets ``"perplexity": exp(loss)``; an embedding task gets
        ``"accuracy": None`` and ``"cosine"``: the mean cosine similarity to the
        targets, ``1 − loss``.
    """
    device, dtype = placement(model)
    loss_fn = loss_function(data)
    classify = data.has_accuracy
    modes = save_modes(model)
    model.eval()
    total, correct, n, predictions = 0.0, 0, 0, 0
    try:
        with torch.no_grad():
            for x, y in data.batches(split, batch_size):
                x, y = to_model(x, y, device, dtype)
                out = model(x)
                total += float(loss_fn(out, y)) * y.shape[0]
                if classify:
                    correct += int((out.argmax(dim=-1 if data.sequence else 1) == y).sum())
                    predictions += y.numel()
                n += y.shape[0]
    finally:
        restore_modes(modes)
    if n == 0:
        raise PrunelabError(f"split {split!r} of dataset {data.name!r} is empty")
    result = {"loss": total / n, "accuracy": 100.0 * correct / predictions if classify else None}
    if data.sequence:
        result["perplexity"] = math.exp(min(result["loss"], 700.0))
    if data.task == "embedding":
        result["cosine"] = 1.0 - result["loss"]
    return result
