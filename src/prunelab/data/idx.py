"""``mnist`` and ``fashion-mnist``: the four IDX files, gzipped or not.

IDX layout (big-endian): two zero bytes, a type byte (``0x08`` = unsigned byte), the
number of dimensions, one ``uint32`` per dimension, then the values in C order. Images
have magic ``0x00000803`` (``N x 28 x 28``), labels ``0x00000801`` (``N``).

Every file is checked: magic number, dimensions (28 x 28), payload length against the
header (catches truncation and trailing junk), label count = image count, labels in
0..9 and, unless ``verify_counts=False``, the official counts 60,000 / 10,000. For
Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (the default location)
the decompressed bytes are also checked against SHA-256 digests recorded from that
package, so a damaged installation is detected rather than trained on.

Pixels are standardised with one mean/std computed over all training pixels (for these
one-channel images, per-channel and global are the same thing).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import struct
import zlib
from pathlib import Path

import numpy as np

from prunelab.data._common import (
    PASS_DATA_DIR,
    check_count,
    check_flag,
    check_seed,
    labels_tensor,
    missing_error,
    reject_unknown,
    standardised_images,
    subsample_indices,
)
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
#: split -> (images file, labels file), without the optional ``.gz``
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
COUNTS = {"train": 60_000, "test": 10_000}
EXPECTED = [f"{stem}.gz" for pair in FILES.values() for stem in pair]

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: SHA-256 of the *decompressed* files of Debian's dataset-fashion-mnist 0.0~git20200523
DEBIAN_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
OPTIONS = ("subsample_train", "subsample_test", "verify_counts")


def read_idx(path: Path, magic: int, dataset: str = "idx", sha256: str | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzip is detected from the content).

    Args:
        path: The file.
        magic: Expected magic number, :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
        dataset: Dataset name for error messages.
        sha256: If given, the SHA-256 hex digest the decompressed bytes must have.

    Returns:
        A read-only ``uint8`` array with the shape given in the header.

    Raises:
        PrunelabError: Naming the file, if it is unreadable, corrupt, of the wrong type, or
            its length disagrees with its header.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise PrunelabError(f"{dataset}: cannot read {path}: {exc}") from None
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise PrunelabError(
                f"{dataset}: {path} is damaged (SHA-256 of its content is {digest[:16]}..., "
                f"expected {sha256[:16]}...); reinstall the package or {PASS_DATA_DIR}"
            )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = "none (file shorter than 4 bytes)" if found is None else f"0x{found:08x}"
        raise PrunelabError(
            f"{dataset}: {path} is not an IDX file of unsigned bytes: magic number {shown}, "
            f"expected 0x{magic:08x}"
        )
    if len(raw) < header:
        raise PrunelabError(f"{dataset}: {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise PrunelabError(
            f"{dataset}: {path} is {what}: header {'x'.join(map(str, dims))} needs "
            f"{expected} bytes of data, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _locate(directory: Path, stem: str) -> Path | None:
    """The uncompressed file if present (no inflate cost), else the ``.gz``, else ``None``."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _locate_all(dataset: str, directory: Path, remedy: str) -> dict[str, Path]:
    """Find all four files before reading any, so a missing one is reported at once."""
    if not directory.is_dir():
        raise missing_error(dataset, "directory", directory, EXPECTED, remedy)
    paths = {}
    for stem in (s for pair in FILES.values() for s in pair):
        path = _locate(directory, stem)
        if path is None:
            raise missing_error(dataset, f"{stem}.gz", directory, EXPECTED, remedy)
        paths[stem] = path
    return paths


def _read_split(
    dataset: str, paths: dict[str, Path], split: str, verify_counts: bool, checksums: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate the images ``(N, 28, 28)`` and labels ``(N,)`` of a split."""
    arrays = []
    for stem, magic in zip(FILES[split], (IMAGES_MAGIC, LABELS_MAGIC), strict=True):
        sha = DEBIAN_SHA256[stem] if checksums else None
        arrays.append((paths[stem], read_idx(paths[stem], magic, dataset, sha)))
    (img_path, images), (lab_path, labels) = arrays
    if images.shape[1:] != (28, 28):
        raise PrunelabError(
            f"{dataset}: {img_path} holds {images.shape[1]}x{images.shape[2]} images, "
            f"expected 28x28"
        )
    if labels.shape[0] != images.shape[0]:
        raise PrunelabError(
            f"{dataset}: {lab_path} has {labels.shape[0]} labels but {img_path} has "
            f"{images.shape[0]} images"
        )
    if verify_counts and images.shape[0] != COUNTS[split]:
        raise PrunelabError(
            f"{dataset}: {img_path} has {images.shape[0]} images, expected {COUNTS[split]} "
            f"(pass verify_counts=False to load a partial set)"
        )
    if labels.size and labels.max() > 9:
        raise PrunelabError(f"{dataset}: {lab_path} holds label {int(labels.max())}, expected 0..9")
    return images, labels


def load_idx_dataset(
    dataset: str,
    seed: int,
    directory: Path,
    remedy: str,
    *,
    subsample_train: int | None = None,
    subsample_test: int | None = None,
    verify_counts: bool = True,
    checksums: bool = False,
    classes: list[str] | None = None,
) -> DataBundle:
    """Load a 28x28, 10-class IDX dataset from ``directory`` (shared by both loaders).

    Args:
        dataset: Registry name, for messages and the bundle.
        seed: Seed of the subsamples (non-negative integer).
        directory: Directory holding the four files.
        remedy: What the user should do when files are missing (goes into the message).
        subsample_train: Keep this many training images (seeded, uniform), or all.
        subsample_test: Keep this many test images (seeded, independent stream), or all.
        verify_counts: Require the official 60,000 / 10,000 images.
        checksums: Check the decompressed files against :data:`DEBIAN_SHA256`.
        classes: Class names stored in ``info["classes"]``.

    Returns:
        A :class:`DataBundle` with inputs ``(N, 1, 28, 28)`` float32 standardised with the
        (subsampled) training split's statistics and int64 labels.
    """
    seed = check_seed(dataset, seed)
    check_flag(dataset, "verify_counts", verify_counts)
    paths = _locate_all(dataset, directory, remedy)
    x_u8, y = {}, {}
    for stream, (split, k) in enumerate((("train", subsample_train), ("test", subsample_test))):
        images, labels = _read_split(dataset, paths, split, verify_counts, checksums)
        if k is not None:
            k = check_count(dataset, f"subsample_{split}", k, images.shape[0])
        idx = subsample_indices(images.shape[0], k, seed, stream)
        # fancy indexing copies only the kept uint8 images; no subsample keeps the file view
        x_u8[split] = (images if idx is None else images[idx])[:, None, :, :]
        y[split] = labels if idx is None else labels[idx]
    x_train, x_test, stats = standardised_images(x_u8["train"], x_u8["test"], channel_axis=None)
    log.debug(
        "%s: loaded %d train / %d test images from %s",
        dataset,
        len(x_train),
        len(x_test),
        directory,
    )
    return DataBundle(
        name=dataset,
        train=(x_train, labels_tensor(y["train"])),
        test=(x_test, labels_tensor(y["test"])),
        num_classes=10,
        input_shape=(1, 28, 28),
        info={
            "standardise": {**stats, "scope": "global, training split"},
            "classes": classes or [str(c) for c in range(10)],
            "directory": str(directory),
            "sha256_verified": checksums,
        },
    )


def _is_debian_dir(directory: Path) -> bool:
    """Whether ``directory`` is the Debian package's directory (then checksums apply)."""
    try:
        return DEBIAN_DIR.is_dir() and directory.resolve() == DEBIAN_DIR.resolve()
    except OSError:
        return False


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(
    seed: int,
    data_dir: Path | None = None,
    *,
    subsample_train: int | None = None,
    subsample_test: int | None = None,
    verify_counts: bool = True,
    **unknown,
) -> DataBundle:
    """Load Fashion-MNIST (60,000 train / 10,000 test 28x28 grey images, 10 classes).

    Args:
        seed: Seed of the subsamples (non-negative integer).
        data_dir: Directory with the four IDX files (``.gz`` or uncompressed); default
            ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``),
            whose content is verified against recorded SHA-256 digests.
        subsample_train: Keep this many training images (seeded), e.g. for CPU runs.
        subsample_test: Keep this many test images (seeded).
        verify_counts: Require the official 60,000 / 10,000 images (default true).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with inputs ``(N, 1, 28, 28)`` and ``num_classes=10``.

    Raises:
        PrunelabError: On missing or corrupt files or a bad option, in one line.
    """
    reject_unknown("fashion-mnist", unknown, OPTIONS)
    directory = DEBIAN_DIR if data_dir is None else Path(data_dir)
    if data_dir is None:
        remedy = f"install the Debian package dataset-fashion-mnist or {PASS_DATA_DIR}"
    else:
        remedy = f"put the files there (gzipped or not) or {PASS_DATA_DIR}"
    return load_idx_dataset(
        "fashion-mnist", seed, directory, remedy,
        subsample_train=subsample_train, subsample_test=subsample_test,
        verify_counts=verify_counts, checksums=_is_debian_dir(directory),
        classes=FASHION_CLASSES,
    )  # fmt: skip


@DATASETS.register("mnist")
def load_mnist(
    seed: int,
    data_dir: Path | None = None,
    *,
    subsample_train: int | None = None,
    subsample_test: int | None = None,
    verify_counts: bool = True,
    **unknown,
) -> DataBundle:
    """Load MNIST (60,000 train / 10,000 test 28x28 grey digits) from a user directory.

    Args:
        seed: Seed of the subsamples (non-negative integer).
        data_dir: Directory with the four IDX files (``.gz`` or uncompressed); required.
        subsample_train: Keep this many training images (seeded).
        subsample_test: Keep this many test images (seeded).
        verify_counts: Require the official 60,000 / 10,000 images (default true).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with inputs ``(N, 1, 28, 28)`` and ``num_classes=10``.

    Raises:
        PrunelabError: If no directory is given, or on missing / corrupt files.
    """
    reject_unknown("mnist", unknown, OPTIONS)
    if data_dir is None:
        raise PrunelabError(
            f"mnist: no data directory given (MNIST is not bundled); {PASS_DATA_DIR} "
            f"containing {', '.join(EXPECTED)} (gzipped or not)"
        )
    return load_idx_dataset(
        "mnist", seed, Path(data_dir),
        f"put the files there (gzipped or not) or {PASS_DATA_DIR}",
        subsample_train=subsample_train, subsample_test=subsample_test,
        verify_counts=verify_counts,
    )  # fmt: skip
