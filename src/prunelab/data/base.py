"""The dataset object every loader returns.

A :class:`DataBundle` holds the whole (small) dataset in memory as float32 inputs and
int64 labels (float32 targets for regression), already standardised with statistics
from the training split only. Batches come out in a deterministic order; shuffled
order depends only on the given seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from prunelab.errors import PrunelabError


@dataclass
class DataBundle:
    """An in-memory dataset with a train and a test split.

    Attributes:
        name: Registry name of the dataset (e.g. ``"digits"``).
        train: ``(x, y)`` with ``x`` of shape ``(N, *input_shape)`` float32 and ``y`` of
            shape ``(N,)`` (int64 class labels, or float32 targets for regression).
        test: Same layout as ``train``.
        num_classes: Number of classes; ``0`` for regression.
        input_shape: Shape of one example, e.g. ``(1, 8, 8)`` or ``(64,)``.
        spec: Everything needed to load the same data again (``name``, ``seed``,
            ``data_dir`` and loader options); stored in checkpoints' ``meta.json``.
        info: Extra facts about the data (e.g. the true coefficients of a synthetic
            teacher, the per-feature scales); not needed to reload.
        sequence: Next-token data (``text``): ``x`` and ``y`` are int64 ``(N, T)`` token
            ids, a model outputs ``(N, T, num_classes)`` logits, and the loss is the
            cross-entropy over every position (task ``"language-model"``).
        embedding: Embedding-fidelity data (``sentences``): ``x`` int64 ``(N, T)`` padded
            token ids, ``y`` float32 ``(N, d)`` reference embeddings, a model outputs
            ``(N, d)`` and the loss is ``mean(1 − cos)`` (task ``"embedding"``).
    """

    name: str
    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    num_classes: int
    input_shape: tuple[int, ...]
    spec: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    sequence: bool = False
    embedding: bool = False

    @property
    def task(self) -> str:
        """``"classification"``, ``"regression"``, ``"language-model"`` or ``"embedding"``."""
        if self.embedding:
            return "embedding"
        if self.sequence:
            return "language-model"
        return "classification" if self.num_classes > 0 else "regression"

    @property
    def has_accuracy(self) -> bool:
        """Whether outputs are class scores with an accuracy (classification, next token)."""
        return self.task in ("classification", "language-model")

    @property
    def output_dim(self) -> int:
        """Width of the model's output layer (an embedding task: the target width ``d``)."""
        if self.embedding:
            return int(self.train[1].shape[-1])
        return self.num_classes if self.num_classes > 0 else 1

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        """Return the ``(x, y)`` pair of ``"train"`` or ``"test"``."""
        if split not in ("train", "test"):
            raise PrunelabError(f"unknown split {split!r}; valid choices: train, test")
        return self.train if split == "train" else self.test

    def batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        limit: int | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` mini-batches of a split.

        Args:
            split: ``"train"`` or ``"test"``.
            batch_size: Examples per batch (the last batch may be smaller).
            shuffle: Shuffle with a generator seeded by ``seed`` (same seed → same order).
            seed: Seed for the shuffle.
            limit: Use only the first ``limit`` examples (after shuffling), e.g. to
                measure curvature on a subsample.

        Yields:
            ``(x, y)`` tensor pairs.
        """
        if batch_size < 1:
            raise PrunelabError(f"batch_size must be a positive integer, got {batch_size!r}")
        x, y = self.split(split)
        n = x.shape[0]
        if shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(n)
        if limit is not None:
            order = order[: max(0, int(limit))]
        for start in range(0, order.numel(), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]

    def __repr__(self) -> str:
        return (
            f"DataBundle({self.name!r}, train={tuple(self.train[0].shape)}, "
            f"test={tuple(self.test[0].shape)}, num_classes={self.num_classes})"
        )
