"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, offline).

The split is seeded and stratified: every class puts (within one example) the same
fraction of its images into the test split. Pixels (integers 0..16) are standardised
with **one global mean and standard deviation** computed over all pixels of the training
split only: a per-pixel statistic would blow up the always-blank border pixels, and one
scale keeps the images' spatial structure, which the convolutional models rely on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from prunelab.data._common import (
    check_seed,
    labels_tensor,
    reject_unknown,
    rng,
    standardised_images,
)
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

NAME = "digits"


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into train and test, class by class.

    Class ``c`` with ``n_c`` examples sends ``floor(f n_c)`` or ``ceil(f n_c)`` of them to
    the test split (``f = test_fraction``); the rounding is chosen by largest remainder
    (ties: lower class first) so the total test size is ``round(f N)``.

    Args:
        labels: Integer class labels of shape ``(N,)``.
        test_fraction: Fraction of examples in the test split, in ``(0, 1)``.
        seed: Seed of the split; the same seed gives the same split.

    Returns:
        ``(train_idx, test_idx)``: int64 index arrays, each in a seeded random order
        (so unshuffled batches mix the classes).
    """
    classes, counts = np.unique(labels, return_counts=True)
    ideal = test_fraction * counts
    n_test = np.floor(ideal).astype(np.int64)
    remaining = int(round(test_fraction * labels.size)) - int(n_test.sum())
    # stable sort on the negated remainder: ties go to the lower class
    order = np.argsort(-(ideal - n_test), kind="stable")
    n_test[order[: max(0, remaining)]] += 1
    gen = rng(seed, 0)
    train, test = [], []
    for c, k in zip(classes, n_test, strict=True):
        members = gen.permutation(np.flatnonzero(labels == c))
        test.append(members[:k])
        train.append(members[k:])
    train_idx = gen.permutation(np.concatenate(train)).astype(np.int64)
    test_idx = gen.permutation(np.concatenate(test)).astype(np.int64)
    return train_idx, test_idx


@DATASETS.register(NAME)
def load_digits(
    seed: int, data_dir: Path | None = None, *, test_fraction: float = 0.25, **unknown
) -> DataBundle:
    """Load scikit-learn's digits as ``(N, 1, 8, 8)`` images with a stratified split.

    Args:
        seed: Seed of the train/test split (non-negative integer).
        data_dir: Must be ``None`` (the data ships inside scikit-learn); refused otherwise.
        test_fraction: Fraction of the 1,797 images in the test split, in ``(0, 1)``;
            default 0.25 (1,348 train / 449 test).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with float32 inputs of shape ``(N, 1, 8, 8)``, int64 labels,
        ``num_classes=10`` and ``info["standardise"] = {"mean": [m], "std": [s]}`` in
        raw pixel units (0..16).

    Raises:
        PrunelabError: On an unknown option, a bad seed or a ``test_fraction`` that leaves
            a split empty.

    Example:
        >>> data = load_digits(seed=0)
        >>> data.train[0].shape, data.test[0].shape, data.num_classes
        (torch.Size([1348, 1, 8, 8]), torch.Size([449, 1, 8, 8]), 10)
    """
    reject_unknown(NAME, unknown, ["test_fraction"])
    seed = check_seed(NAME, seed)
    if data_dir is not None:  # refused, never silently ignored
        raise PrunelabError(
            f"digits ships with scikit-learn and reads no files; data_dir={str(data_dir)!r} "
            "would be ignored, leave it out"
        )
    from sklearn.datasets import load_digits as sklearn_digits  # import only when used

    raw = sklearn_digits()
    pixels, labels = raw.data, raw.target.astype(np.int64)
    n = labels.size
    try:
        f = float(test_fraction)
    except (TypeError, ValueError):
        f = float("nan")
    if not (0.0 < f < 1.0) or not (1 <= round(f * n) <= n - 1):
        raise PrunelabError(
            f"digits: test_fraction must be in (0, 1) leaving both splits non-empty "
            f"(at least 1/{n} and at most {n - 1}/{n}), got {test_fraction!r}"
        )
    # the pixels are small integers (0..16) stored as float64: keep them as uint8 so that
    # the statistics are exact and the float32 conversion happens once
    u8 = pixels.astype(np.uint8).reshape(n, 1, 8, 8)
    if not np.array_equal(u8.reshape(n, -1), pixels):
        raise PrunelabError("digits: scikit-learn returned non-integer pixels; cannot use them")
    train_idx, test_idx = stratified_split(labels, f, seed)
    x_train, x_test, stats = standardised_images(u8[train_idx], u8[test_idx], channel_axis=None)
    return DataBundle(
        name=NAME,
        train=(x_train, labels_tensor(labels[train_idx])),
        test=(x_test, labels_tensor(labels[test_idx])),
        num_classes=10,
        input_shape=(1, 8, 8),
        info={
            "standardise": {**stats, "scope": "global, training split"},
            "classes": [str(c) for c in range(10)],
            "test_fraction": f,
        },
    )
