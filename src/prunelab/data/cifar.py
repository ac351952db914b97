"""``cifar10`` and ``cifar100``: the standard "python version" pickle batches.

CIFAR-10 (``cifar-10-batches-py``): ``data_batch_1`` .. ``data_batch_5``, ``test_batch``
and ``batches.meta``. CIFAR-100 (``cifar-100-python``): ``train``, ``test`` and ``meta``;
the 100 *fine* labels are used. Each batch is a pickled dict (bytes keys, written by
Python 2) with ``b"data"``, a ``uint8`` array ``(N, 3072)`` holding the red, green and
blue 32x32 planes of each image in turn, and ``b"labels"`` / ``b"fine_labels"``.

``data_dir`` may be the batch directory itself or its parent. The pickles are read with
an unpickler that only admits the few numpy globals an array needs, so a tampered file
cannot run code. Inputs are standardised per channel with training-split statistics.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from pathlib import Path

import numpy as np

from prunelab.data._common import (
    check_count,
    check_flag,
    check_seed,
    labels_tensor,
    missing_error,
    pass_data_dir,
    reject_unknown,
    standardised_images,
    subsample_indices,
)
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

#: name -> (subdirectory, train files, test files, meta file, label key, names key, classes)
LAYOUTS = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        b"labels",
        b"label_names",
        10,
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels",
                 b"fine_label_names", 100),
}  # fmt: skip
COUNTS = {"train": 50_000, "test": 10_000}
OPTIONS = ("subsample_train", "subsample_test", "verify_counts")

_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except those needed to rebuild numpy arrays."""

    def find_class(self, module: str, name: str):
        """Resolve an allowed global, mapping ``numpy.core`` and ``numpy._core`` onto each other."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        # prefer numpy 2's private module name, fall back to numpy 1's (and vice versa)
        modern = module.replace("numpy.core.", "numpy._core.", 1)
        legacy = modern.replace("numpy._core.", "numpy.core.", 1)
        for candidate in dict.fromkeys((modern, legacy)):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


def read_batch(path: Path, dataset: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch file.

    Args:
        path: The pickle file.
        dataset: Dataset name for error messages.
        label_key: ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).

    Returns:
        ``(images, labels)``: ``uint8`` array ``(N, 3, 32, 32)`` and int64 array ``(N,)``.

    Raises:
        PrunelabError: Naming the file, if it is not a readable batch of that layout.
    """
    content = _unpickle(path, dataset)
    if not isinstance(content, dict) or b"data" not in content or label_key not in content:
        raise PrunelabError(
            f"{dataset}: {path} is not a CIFAR batch (needs keys b'data' and {label_key!r})"
        )
    data = np.asarray(content[b"data"])
    labels = np.asarray(content[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise PrunelabError(
            f"{dataset}: {path} holds data of shape {data.shape} and type {data.dtype}, "
            f"expected uint8 (N, 3072)"
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise PrunelabError(
            f"{dataset}: {path} has {labels.size} labels for {data.shape[0]} images"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _unpickle(path: Path, dataset: str) -> object:
    """Load a pickle written by Python 2 (bytes keys) with the restricted unpickler."""
    try:
        with open(path, "rb") as fh:
            return _ArrayUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # any failure to parse is a corrupt file, reported as such
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PrunelabError(f"{dataset}: cannot read {path}: {reason}") from None


def _batch_dir(dataset: str, data_dir: Path | None, expected: list[str]) -> Path:
    """The directory holding the batches: ``data_dir`` itself or its standard subdirectory."""
    subdir = LAYOUTS[dataset][0]
    remedy = pass_data_dir(f"the {subdir} folder or its parent")
    if data_dir is None:
        raise PrunelabError(
            f"{dataset}: no data directory given ({dataset} is not bundled); {remedy} "
            f"containing {', '.join(expected)}"
        )
    if not data_dir.is_dir():
        raise missing_error(dataset, "directory", data_dir, expected, remedy)
    if not (data_dir / expected[0]).exists() and (data_dir / subdir).is_dir():
        return data_dir / subdir
    return data_dir


def _load_cifar(
    dataset: str,
    seed: int,
    data_dir: Path | None,
    subsample_train: int | None,
    subsample_test: int | None,
    verify_counts: bool,
) -> DataBundle:
    """Shared body of the CIFAR-10 and CIFAR-100 loaders (see :func:`load_cifar10`)."""
    seed = check_seed(dataset, seed)
    check_flag(dataset, "verify_counts", verify_counts)
    subdir, train_files, test_files, meta_file, label_key, names_key, n_classes = LAYOUTS[dataset]
    expected = [*train_files, *test_files, meta_file]
    directory = _batch_dir(dataset, None if data_dir is None else Path(data_dir), expected)
    for name in expected:
        if not (directory / name).is_file():
            remedy = pass_data_dir(f"the {subdir} folder or its parent")
            raise missing_error(dataset, name, directory, expected, remedy)
    meta = _unpickle(directory / meta_file, dataset)
    if not isinstance(meta, dict) or len(meta.get(names_key, [])) != n_classes:
        raise PrunelabError(
            f"{dataset}: {directory / meta_file} does not list {n_classes} names under "
            f"{names_key!r}"
        )
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    x_u8, y = {}, {}
    for stream, (split, files, k) in enumerate(
        (("train", train_files, subsample_train), ("test", test_files, subsample_test))
    ):
        parts = [read_batch(directory / f, dataset, label_key) for f in files]
        images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if verify_counts and images.shape[0] != COUNTS[split]:
            raise PrunelabError(
                f"{dataset}: {directory} has {images.shape[0]} {split} images in "
                f"{', '.join(files)}, expected {COUNTS[split]} (pass verify_counts=False to "
                f"load a partial set)"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise PrunelabError(
                f"{dataset}: {split} labels in {directory} range over "
                f"{labels.min()}..{labels.max()}, expected 0..{n_classes - 1}"
            )
        if k is not None:
            k = check_count(dataset, f"subsample_{split}", k, images.shape[0])
        idx = subsample_indices(images.shape[0], k, seed, stream)
        x_u8[split] = images if idx is None else images[idx]
        y[split] = labels if idx is None else labels[idx]
    x_train, x_test, stats = standardised_images(x_u8["train"], x_u8["test"], channel_axis=1)
    return DataBundle(
        name=dataset,
        train=(x_train, labels_tensor(y["train"])),
        test=(x_test, labels_tensor(y["test"])),
        num_classes=n_classes,
        input_shape=(3, 32, 32),
        info={
            "standardise": {**stats, "scope": "per channel (R, G, B), training split"},
            "classes": classes,
            "directory": str(directory),
        },
    )


@DATASETS.register("cifar10")
def load_cifar10(
    seed: int,
    data_dir: Path | None = None,
    *,
    subsample_train: int | None = None,
    subsample_test: int | None = None,
    verify_counts: bool = True,
    **unknown,
) -> DataBundle:
    """Load CIFAR-10 (50,000 train / 10,000 test 32x32 colour images, 10 classes).

    Args:
        seed: Seed of the subsamples (non-negative integer).
        data_dir: The ``cifar-10-batches-py`` directory or its parent; required.
        subsample_train: Keep this many training images (seeded, uniform), or all.
        subsample_test: Keep this many test images (seeded, independent stream), or all.
        verify_counts: Require the official 50,000 / 10,000 images (default true).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with float32 inputs ``(N, 3, 32, 32)`` standardised per
        channel with training statistics, int64 labels, ``info["classes"]`` from the meta.

    Raises:
        PrunelabError: On a missing directory or file, a corrupt batch or a bad option.
    """
    reject_unknown("cifar10", unknown, OPTIONS)
    return _load_cifar("cifar10", seed, data_dir, subsample_train, subsample_test, verify_counts)


@DATASETS.register("cifar100")
def load_cifar100(
    seed: int,
    data_dir: Path | None = None,
    *,
    subsample_train: int | None = None,
    subsample_test: int | None = None,
    verify_counts: bool = True,
    **unknown,
) -> DataBundle:
    """Load CIFAR-100 with its 100 fine labels (50,000 train / 10,000 test images).

    Args:
        seed: Seed of the subsamples (non-negative integer).
        data_dir: The ``cifar-100-python`` directory or its parent; required.
        subsample_train: Keep this many training images (seeded, uniform), or all.
        subsample_test: Keep this many test images (seeded, independent stream), or all.
        verify_counts: Require the official 50,000 / 10,000 images (default true).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with float32 inputs ``(N, 3, 32, 32)``, ``num_classes=100``.

    Raises:
        PrunelabError: On a missing directory or file, a corrupt batch or a bad option.
    """
    reject_unknown("cifar100", unknown, OPTIONS)
    return _load_cifar("cifar100", seed, data_dir, subsample_train, subsample_test, verify_counts)
