"""Shared helpers of the dataset loaders: option checks, seeded index draws, standardisation.

Standardisation statistics are computed **exactly** from a histogram of the raw ``uint8``
pixel values of the training split (256 counts per channel), so they never depend on
float summation order, never need a float64 copy of the images, and are bit-identical
across runs. Images are converted from ``uint8`` to ``float32`` exactly once and then
standardised in place.

The standard deviation is the population one (divide by ``N``, not ``N - 1``), so the
standardised training split has mean 0 and standard deviation 1 exactly up to float32
rounding. A constant channel (standard deviation 0) is only centred (divided by 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunelab.errors import PrunelabError

#: How a loader's error tells the user to give the data directory: the Python parameter
#: first (these are library errors), the CLI flag that fills it second.
PASS_DATA_DIR = "pass data_dir=DIR (--data-dir DIR on the command line)"


def pass_data_dir(what: str) -> str:
    """:data:`PASS_DATA_DIR` saying what ``DIR`` must be, e.g. ``"the cifar-10 folder"``."""
    return f"pass data_dir=DIR, {what} (--data-dir DIR on the command line),"


def reject_unknown(dataset: str, options: Mapping[str, object], allowed: Iterable[str]) -> None:
    """Raise if a loader got an option it does not understand.

    Args:
        dataset: Dataset name, used in the message.
        options: The options left over after the loader took the ones it knows.
        allowed: The option names the loader accepts.

    Raises:
        PrunelabError: Naming the first unknown option and the valid ones.
    """
    if options:
        bad = sorted(options)[0]
        valid = ", ".join(sorted(allowed)) or "(none)"
        raise PrunelabError(f"{dataset}: unknown option {bad!r}; valid options: {valid}")


def check_seed(dataset: str, seed: object) -> int:
    """Return ``seed`` as a non-negative ``int`` or raise :class:`PrunelabError`."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise PrunelabError(f"{dataset}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_flag(dataset: str, option: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``, else raise :class:`PrunelabError` naming ``option``."""
    if not isinstance(value, bool):
        raise PrunelabError(f"{dataset}: {option} must be true or false, got {value!r}")
    return value


def check_count(dataset: str, option: str, value: object, maximum: int | None = None) -> int:
    """Validate a positive integer option such as ``n_train`` or ``subsample_train``.

    Args:
        dataset: Dataset name, used in the message.
        option: Option name, used in the message.
        value: The value given.
        maximum: Largest allowed value (e.g. the number of available examples), or ``None``.

    Returns:
        ``value`` as an ``int``.

    Raises:
        PrunelabError: If ``value`` is not an integer in ``[1, maximum]``.
    """
    allowed = f"an integer in [1, {maximum}]" if maximum is not None else "a positive integer"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PrunelabError(f"{dataset}: {option} must be {allowed}, got {value!r}")
    if value < 1 or (maximum is not None and value > maximum):
        raise PrunelabError(f"{dataset}: {option} must be {allowed}, got {value!r}")
    return int(value)


def rng(seed: int, stream: int) -> np.random.Generator:
    """A numpy generator for one independent random stream of a seeded loader.

    Different ``stream`` numbers give statistically independent draws for the same
    ``seed``, so e.g. the test subsample does not change when the train subsample size does.
    """
    return np.random.default_rng([seed, stream])


def subsample_indices(n: int, k: int | None, seed: int, stream: int) -> np.ndarray | None:
    """Pick ``k`` of ``n`` indices uniformly without replacement, in increasing order.

    Args:
        n: Number of available examples.
        k: How many to keep, or ``None`` to keep all (then ``None`` is returned).
        seed: Loader seed.
        stream: Stream number (see :func:`rng`), distinct per split.

    Returns:
        Sorted int64 indices of shape ``(k,)`` (file order is kept), or ``None``.
    """
    if k is None:
        return None
    chosen = rng(seed, stream).choice(n, size=k, replace=False)
    return np.sort(chosen).astype(np.int64)


def _channel_stats(u8: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and population std of ``uint8`` data, overall or per channel.

    Args:
        u8: ``uint8`` array, e.g. ``(N, C, H, W)``.
        channel_axis: Axis holding channels, or ``None`` for one global statistic.

    Returns:
        ``(mean, std)`` float64 arrays of shape ``(C,)`` (``(1,)`` when global).
    """
    if u8.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {u8.dtype}")
    planes = [u8] if channel_axis is None else list(np.moveaxis(u8, channel_axis, 0))
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for plane in planes:
        counts = np.bincount(plane.reshape(-1), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float(counts @ values) / total
        var = float(counts @ (values - mean) ** 2) / total
        means.append(mean)
        stds.append(np.sqrt(var))
    return np.asarray(means), np.asarray(stds)


def standardised_images(
    train_u8: np.ndarray, test_u8: np.ndarray, channel_axis: int | None
) -> tuple[Tensor, Tensor, dict]:
    """Convert ``uint8`` images to standardised ``float32`` tensors using train statistics.

    Args:
        train_u8: Training images, ``uint8`` of shape ``(N, C, H, W)``.
        test_u8: Test images, same layout.
        channel_axis: ``1`` for per-channel statistics, ``None`` for one global mean/std.

    Returns:
        ``(x_train, x_test, stats)``: float32 tensors of the input shapes and
        ``{"mean": [...], "std": [...]}`` (raw pixel units, one entry per channel or one
        in total), so ``x * std + mean`` recovers the pixel values.
    """
    mean, std = _channel_stats(train_u8, channel_axis)
    std = np.where(std > 0, std, 1.0)  # constant channel: centre only, never divide by 0
    shape = [1] * train_u8.ndim
    if channel_axis is not None:
        shape[channel_axis] = -1
    out = []
    for u8 in (train_u8, test_u8):
        # the one uint8 -> float32 conversion; everything after is in place
        x = torch.from_numpy(np.ascontiguousarray(u8).astype(np.float32))
        x.sub_(torch.from_numpy(mean.astype(np.float32)).reshape(shape))
        x.div_(torch.from_numpy(std.astype(np.float32)).reshape(shape))
        out.append(x)
    return out[0], out[1], {"mean": mean.tolist(), "std": std.tolist()}


def missing_error(
    dataset: str, missing: str, directory: Path, expected: Sequence[str], remedy: str
) -> PrunelabError:
    """The one-line error for a missing dataset file or directory.

    Args:
        dataset: Dataset name.
        missing: What is missing (a file name, or ``"directory"``).
        directory: Where it was looked for.
        expected: Every file the loader needs, named in the message.
        remedy: How to provide them, e.g. :data:`PASS_DATA_DIR`.

    Returns:
        The error (the caller raises it).
    """
    return PrunelabError(
        f"{dataset}: missing {missing} in {directory}; {remedy} containing {', '.join(expected)}"
    )


def labels_tensor(labels: np.ndarray | Sequence[int]) -> Tensor:
    """Class labels as a contiguous int64 tensor of shape ``(N,)``."""
    return torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())
