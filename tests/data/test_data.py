"""Dataset loaders: real file formats written tiny, exact statistics, seeds, every error path."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.data import DATASETS, idx, load
from prunelab.data._common import standardised_images
from prunelab.data.digits import stratified_split
from prunelab.errors import PrunelabError

FMNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def raises_one_line(match: str, fn, *args, **kwargs) -> str:
    """Assert ``fn`` raises a one-line PrunelabError matching ``match``; return the message."""
    with pytest.raises(PrunelabError, match=match) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def unstandardise(x: torch.Tensor, stats: dict, channel_axis: int | None) -> np.ndarray:
    """Undo the standardisation in float64 and round back to the integer pixel values."""
    mean = np.asarray(stats["mean"])
    std = np.asarray(stats["std"])
    shape = [1] * x.ndim
    if channel_axis is not None:
        shape[channel_axis] = -1
    raw = x.double().numpy() * std.reshape(shape) + mean.reshape(shape)
    assert np.allclose(raw, np.round(raw), atol=1e-3)
    return np.round(raw).astype(np.int64)


def test_all_names_registered():
    names = set(DATASETS.names())
    assert {"digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic-linear"} <= names


# ----------------------------------------------------------------------------- standardisation


@pytest.mark.parametrize("channel_axis", [None, 1])
def test_standardisation_matches_float64_reference(channel_axis):
    gen = np.random.default_rng(0)
    train = gen.integers(0, 256, size=(7, 3, 4, 5), dtype=np.uint8)
    test = gen.integers(0, 256, size=(4, 3, 4, 5), dtype=np.uint8)
    x_train, x_test, stats = standardised_images(train, test, channel_axis)
    axes = (0, 2, 3) if channel_axis == 1 else None
    mean = train.astype(np.float64).mean(axis=axes, keepdims=True)
    std = train.astype(np.float64).std(axis=axes, keepdims=True)  # population std
    np.testing.assert_allclose(np.ravel(stats["mean"]), mean.ravel(), rtol=1e-12)
    np.testing.assert_allclose(np.ravel(stats["std"]), std.ravel(), rtol=1e-12)
    assert x_train.dtype == torch.float32 and x_test.dtype == torch.float32
    np.testing.assert_allclose(x_train.numpy(), (train - mean) / std, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x_test.numpy(), (test - mean) / std, rtol=1e-6, atol=1e-6)


def test_constant_channel_is_only_centred():
    train = np.full((3, 2, 2, 2), 7, dtype=np.uint8)
    train[:, 1] = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    x_train, _, stats = standardised_images(train, train[:1], channel_axis=1)
    assert stats["std"][0] == 1.0 and stats["mean"][0] == 7.0
    assert torch.all(x_train[:, 0] == 0)
    assert torch.isfinite(x_train).all()


# ------------------------------------------------------------------------------------ digits


def test_stratified_split_counts_and_coverage():
    labels = np.repeat(np.arange(4), [10, 7, 3, 1])
    for f in (0.25, 0.5, 0.9):
        train, test = stratified_split(labels, f, seed=3)
        assert test.size == round(f * labels.size)
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
        for c, n_c in enumerate((10, 7, 3, 1)):
            assert abs(np.sum(labels[test] == c) - f * n_c) < 1


def test_digits_shapes_and_split_sizes():
    data = load("digits", seed=0)
    (x_train, y_train), (x_test, _) = data.train, data.test
    assert (
        data.num_classes == 10 and data.input_shape == (1, 8, 8) and data.task == "classification"
    )
    assert x_train.shape == (1348, 1, 8, 8) and x_test.shape == (449, 1, 8, 8)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert data.spec == {"name": "digits", "seed": 0, "data_dir": None}


@pytest.mark.parametrize("fraction", [0.25, 0.3])
def test_digits_split_is_stratified_and_a_partition(fraction):
    from sklearn.datasets import load_digits

    raw = load_digits()
    data = load("digits", seed=1, test_fraction=fraction)
    totals = np.bincount(raw.target, minlength=10)
    n_test = np.bincount(data.test[1].numpy(), minlength=10)
    n_train = np.bincount(data.train[1].numpy(), minlength=10)
    assert np.array_equal(n_test + n_train, totals)
    assert np.all(np.abs(n_test - fraction * totals) < 1)
    # the two splits together are exactly the sklearn images with their labels
    stats = data.info["standardise"]
    rows = [
        np.concatenate([unstandardise(x, stats, None).reshape(len(y), 64), y.numpy()[:, None]], 1)
        for x, y in (data.train, data.test)
    ]
    ours = np.concatenate(rows)
    theirs = np.concatenate([raw.data.astype(np.int64), raw.target[:, None]], 1)
    assert np.array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])


def test_digits_uses_training_statistics_only():
    data = load("digits", seed=0)
    x_train, x_test = data.train[0].double(), data.test[0].double()
    assert abs(x_train.mean().item()) < 1e-6
    assert abs(x_train.std(unbiased=False).item() - 1) < 1e-6
    assert abs(x_test.mean().item()) > 1e-4  # test statistics were not used
    raw_train = unstandardise(data.train[0], data.info["standardise"], None)
    assert data.info["standardise"]["mean"][0] == pytest.approx(raw_train.mean(), rel=1e-12)
    assert data.info["standardise"]["std"][0] == pytest.approx(raw_train.std(), rel=1e-12)


def test_digits_deterministic_given_seed():
    a, b, c = load("digits", seed=5), load("digits", seed=5), load("digits", seed=6)
    for split in ("train", "test"):
        assert torch.equal(a.split(split)[0], b.split(split)[0])
        assert torch.equal(a.split(split)[1], b.split(split)[1])
    assert not torch.equal(a.train[1], c.train[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1e-6, "abc", None])
def test_digits_rejects_bad_test_fraction(fraction):
    raises_one_line("test_fraction", load, "digits", seed=0, test_fraction=fraction)


def test_unknown_option_and_bad_seed_are_rejected():
    raises_one_line("unknown option 'epochs'.*test_fraction", load, "digits", seed=0, epochs=3)
    raises_one_line("seed", load, "digits", seed=-1)
    raises_one_line("unknown option 'foo'", load, "fashion-mnist", seed=0, foo=1)
    raises_one_line("unknown option 'foo'", load, "cifar10", seed=0, foo=1)
    raises_one_line("unknown option 'foo'", load, "synthetic-linear", seed=0, foo=1)


# ----------------------------------------------------------------------------- IDX (MNIST)


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    magic = (0x0800 + array.ndim) if magic is None else magic
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def make_idx_dir(root: Path, n_train: int = 30, n_test: int = 12, gz: bool = True) -> dict:
    """Write a tiny four-file IDX data set; return the arrays written."""
    gen = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        img_stem, lab_stem = idx.FILES[split]
        suffix = ".gz" if gz else ""
        write_idx(root / f"{img_stem}{suffix}", images)
        write_idx(root / f"{lab_stem}{suffix}", labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_tiny_directory_loads_exactly(tmp_path, name, gz):
    arrays = make_idx_dir(tmp_path, gz=gz)
    data = load(name, seed=0, data_dir=tmp_path, verify_counts=False)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert data.train[0].shape == (30, 1, 28, 28) and data.test[0].shape == (12, 1, 28, 28)
    stats = data.info["standardise"]
    for split in ("train", "test"):
        x, y = data.split(split)
        images, labels = arrays[split]
        assert np.array_equal(unstandardise(x, stats, None)[:, 0], images)
        assert np.array_equal(y.numpy(), labels)
    assert stats["mean"][0] == pytest.approx(arrays["train"][0].mean(), rel=1e-12)
    assert data.info["sha256_verified"] is False


def test_idx_subsample_is_seeded_subset(tmp_path):
    arrays = make_idx_dir(tmp_path)
    kw = {"data_dir": tmp_path, "verify_counts": False, "subsample_train": 10, "subsample_test": 5}
    a, b, c = load("mnist", seed=1, **kw), load("mnist", seed=1, **kw), load("mnist", seed=2, **kw)
    assert a.train[0].shape == (10, 1, 28, 28) and a.test[0].shape == (5, 1, 28, 28)
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.test[1], b.test[1])
    assert not torch.equal(a.train[1], c.train[1]) or not torch.equal(a.train[0], c.train[0])
    # every kept image is one of the file's images, with its own label
    raw = unstandardise(a.train[0], a.info["standardise"], None)[:, 0]
    images, labels = arrays["train"]
    for img, label in zip(raw, a.train[1].numpy(), strict=True):
        match = np.flatnonzero((images == img).all(axis=(1, 2)))
        assert match.size == 1 and labels[match[0]] == label
    # statistics come from the kept training images only
    assert a.info["standardise"]["mean"][0] == pytest.approx(raw.mean(), rel=1e-12)
    for bad in (0, 31, 2.5):
        raises_one_line("subsample_train", load, "mnist", seed=0, **{**kw, "subsample_train": bad})


def test_idx_counts_verified_by_default(tmp_path):
    make_idx_dir(tmp_path)
    raises_one_line("expected 60000.*verify_counts=False", load, "mnist", 0, tmp_path)
    raises_one_line("verify_counts", load, "mnist", 0, tmp_path, verify_counts="no")


def test_idx_missing_directory_and_files(tmp_path, monkeypatch):
    msg = raises_one_line("no data directory", load, "mnist", seed=0)
    assert "train-images-idx3-ubyte.gz" in msg and "--data-dir" in msg
    msg = raises_one_line("missing directory", load, "mnist", 0, tmp_path / "nope")
    assert all(name in msg for name in idx.EXPECTED)
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "absent")
    msg = raises_one_line("fashion-mnist: missing", load, "fashion-mnist", seed=0)
    assert "dataset-fashion-mnist" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    make_idx_dir(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").unlink()
    msg = raises_one_line("missing t10k-labels-idx1-ubyte.gz", load, "mnist", 0, tmp_path / "d")
    assert str(tmp_path / "d") in msg


def test_idx_bad_magic_and_malformed_files(tmp_path):
    d = tmp_path
    make_idx_dir(d, gz=False)
    labels = d / "train-labels-idx1-ubyte"
    write_idx(labels, np.zeros(30, np.uint8), magic=0x00000803)
    raises_one_line(f"{labels}.*magic number 0x00000803", load, "mnist", 0, d, verify_counts=False)
    labels.write_bytes(b"\x00\x00")
    raises_one_line(f"{labels}.*magic", load, "mnist", 0, d, verify_counts=False)
    write_idx(labels, np.zeros(29, np.uint8))
    raises_one_line("29 labels but .* 30 images", load, "mnist", 0, d, verify_counts=False)
    write_idx(labels, np.full(30, 10, np.uint8))
    raises_one_line("label 10, expected 0..9", load, "mnist", 0, d, verify_counts=False)
    write_idx(d / "train-images-idx3-ubyte", np.zeros((30, 27, 27), np.uint8))
    raises_one_line("27x27 images", load, "mnist", 0, d, verify_counts=False)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_and_overlong_files(tmp_path, gz):
    make_idx_dir(tmp_path, gz=gz)
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    content = path.read_bytes()
    path.write_bytes(content[:-100])  # a cut gzip stream or a cut payload
    raises_one_line(str(path), load, "mnist", 0, tmp_path, verify_counts=False)
    raw = gzip.decompress(content) if gz else content
    for broken, what in ((raw[:-1], "truncated"), (raw + b"\x00", "longer than its header")):
        path.write_bytes(gzip.compress(broken) if gz else broken)
        raises_one_line(f"{path} is {what}", load, "mnist", 0, tmp_path, verify_counts=False)
    path.write_bytes(raw[:10])
    raises_one_line(f"{path} is truncated inside its header", load, "mnist", 0, tmp_path,
                    verify_counts=False)  # fmt: skip


def test_fashion_checksums_apply_to_the_debian_location(tmp_path, monkeypatch):
    make_idx_dir(tmp_path)
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path)
    raises_one_line("is damaged .*SHA-256", load, "fashion-mnist", 0, verify_counts=False)


@pytest.mark.skipif(not FMNIST_DEBIAN.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    labels = idx.read_idx(FMNIST_DEBIAN / "t10k-labels-idx1-ubyte.gz", idx.LABELS_MAGIC)
    assert labels.shape == (10_000,) and np.array_equal(np.bincount(labels), [1000] * 10)
    data = load("fashion-mnist", seed=0, subsample_train=500, subsample_test=100)
    assert data.info["sha256_verified"] is True  # implies the 60,000 / 10,000 were checked
    assert data.train[0].shape == (500, 1, 28, 28) and data.test[0].shape == (100, 1, 28, 28)
    assert data.info["classes"][9] == "Ankle boot"
    assert abs(data.train[0].double().mean().item()) < 1e-5
    again = load("fashion-mnist", seed=0, subsample_train=500, subsample_test=100)
    assert torch.equal(again.train[0], data.train[0]) and torch.equal(again.test[1], data.test[1])


# ------------------------------------------------------------------------------------ CIFAR


def cifar_layout(n_classes: int) -> tuple[str, list[str], list[str], str, bytes, bytes]:
    if n_classes == 10:
        batches = [f"data_batch_{i}" for i in range(1, 6)]
        return (
            "cifar-10-batches-py",
            batches,
            ["test_batch"],
            "batches.meta",
            b"labels",
            b"label_names",
        )
    return "cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"


def make_cifar_dir(root: Path, n_classes: int, per_file: int = 6) -> tuple[Path, dict]:
    """Write tiny CIFAR pickles (protocol 2, bytes keys, as the Python 2 originals)."""
    subdir, train_files, test_files, meta, label_key, names_key = cifar_layout(n_classes)
    folder = root / subdir
    folder.mkdir(parents=True)
    gen = np.random.default_rng(1)
    written = {"train": [], "test": []}
    for split, files in (("train", train_files), ("test", test_files)):
        for name in files:
            data = gen.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
            labels = [int(v) for v in gen.integers(0, n_classes, size=per_file)]
            batch = {b"batch_label": b"tiny", label_key: labels, b"data": data,
                     b"filenames": [b"x.png"] * per_file}  # fmt: skip
            if n_classes == 100:
                batch[b"coarse_labels"] = [v // 5 for v in labels]
            blob = pickle.dumps(batch, protocol=2)
            # spell the array global as numpy 1 (which wrote the real files) does
            blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            (folder / name).write_bytes(blob)
            written[split].append((data, labels))
    names = {names_key: [f"class{i}".encode() for i in range(n_classes)]}
    (folder / meta).write_bytes(pickle.dumps(names, protocol=2))
    return folder, written


@pytest.mark.parametrize("n_classes", [10, 100])
@pytest.mark.parametrize("use_parent", [True, False])
def test_cifar_tiny_directory_loads_exactly(tmp_path, n_classes, use_parent):
    folder, written = make_cifar_dir(tmp_path, n_classes)
    name = f"cifar{n_classes}"
    data = load(name, 0, tmp_path if use_parent else folder, verify_counts=False)
    assert data.num_classes == n_classes and data.input_shape == (3, 32, 32)
    assert data.info["classes"][:2] == ["class0", "class1"]
    stats = data.info["standardise"]
    assert len(stats["mean"]) == 3
    for split in ("train", "test"):
        x, y = data.split(split)
        raw = np.concatenate([d for d, _ in written[split]])
        # rows are R plane, G plane, B plane, each 32x32 row-major
        assert np.array_equal(unstandardise(x, stats, 1), raw.reshape(-1, 3, 32, 32))
        assert y.tolist() == [v for _, labels in written[split] for v in labels]
    per_channel = data.train[0].double()
    assert torch.allclose(
        per_channel.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-6
    )
    ones = torch.ones(3, dtype=torch.float64)
    assert torch.allclose(per_channel.std((0, 2, 3), unbiased=False), ones, atol=1e-6)


def test_cifar_subsample_and_counts(tmp_path):
    _, written = make_cifar_dir(tmp_path, 10)
    kw = {"verify_counts": False, "subsample_train": 7, "subsample_test": 3}
    a, b = load("cifar10", 4, tmp_path, **kw), load("cifar10", 4, tmp_path, **kw)
    assert a.train[0].shape == (7, 3, 32, 32) and a.test[0].shape == (3, 3, 32, 32)
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.test[1], b.test[1])
    raises_one_line("expected 50000.*verify_counts=False", load, "cifar10", 0, tmp_path)
    raises_one_line("subsample_test", load, "cifar10", 0, tmp_path, verify_counts=False,
                    subsample_test=7)  # fmt: skip


def test_cifar_error_paths(tmp_path):
    msg = raises_one_line("no data directory", load, "cifar10", seed=0)
    assert "data_batch_1" in msg and "batches.meta" in msg
    raises_one_line("missing directory", load, "cifar100", 0, tmp_path / "nope")
    folder, _ = make_cifar_dir(tmp_path, 10)
    kw = {"verify_counts": False}
    (folder / "data_batch_3").unlink()
    msg = raises_one_line("missing data_batch_3", load, "cifar10", 0, tmp_path, **kw)
    assert "test_batch" in msg and "cifar-10-batches-py" in msg
    bad = folder / "data_batch_3"
    bad.write_bytes(b"not a pickle at all")
    raises_one_line(f"cannot read {bad}", load, "cifar10", 0, tmp_path, **kw)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, 2))
    raises_one_line(f"{bad} has 1 labels for 2 images", load, "cifar10", 0, tmp_path, **kw)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, 2))
    raises_one_line(f"{bad} holds data of shape", load, "cifar10", 0, tmp_path, **kw)
    bad.write_bytes(pickle.dumps({b"labels": [0]}, 2))
    raises_one_line(f"{bad} is not a CIFAR batch", load, "cifar10", 0, tmp_path, **kw)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, 2))
    raises_one_line("range over 0..10, expected 0..9", load, "cifar10", 0, tmp_path, **kw)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_refuses_pickles_that_would_run_code(tmp_path, capsys):
    folder, _ = make_cifar_dir(tmp_path, 100)
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": _Evil()}, 2))
    raises_one_line("refusing to load global .*print", load, "cifar100", 0, folder,
                    verify_counts=False)  # fmt: skip
    assert "pwned" not in capsys.readouterr().out


# --------------------------------------------------------------------------- synthetic-linear


def test_synthetic_shapes_and_info():
    data = load("synthetic-linear", seed=0, n_train=30, n_test=7, dim=6)
    assert data.task == "regression" and data.num_classes == 0 and data.input_shape == (6,)
    assert data.train[0].shape == (30, 6) and data.train[1].shape == (30,)
    assert data.test[0].shape == (7, 6)
    assert data.train[0].dtype == torch.float32 and data.train[1].dtype == torch.float32
    info = data.info
    for key in ("beta_star", "scales", "covariance"):
        assert info[key].dtype == torch.float64
    expected = torch.from_numpy(np.geomspace(0.1, 10.0, 6))
    assert torch.equal(info["scales"], expected)  # default preset: heterogeneous
    assert torch.equal(info["covariance"], torch.diag(expected**2))
    assert (
        load("synthetic-linear", seed=0, dim=4, scales="equal").info["scales"].tolist() == [1.0] * 4
    )


def test_synthetic_deterministic_and_streams_independent():
    a = load("synthetic-linear", seed=3, n_train=40, n_test=10, dim=5)
    b = load("synthetic-linear", seed=3, n_train=40, n_test=10, dim=5)
    c = load("synthetic-linear", seed=4, n_train=40, n_test=10, dim=5)
    d = load("synthetic-linear", seed=3, n_train=40, n_test=99, dim=5)
    for t1, t2 in zip((*a.train, *a.test), (*b.train, *b.test), strict=True):
        assert torch.equal(t1, t2)
    assert not torch.equal(a.train[0], c.train[0])
    assert not torch.equal(a.info["beta_star"], c.info["beta_star"])
    assert torch.equal(a.train[0], d.train[0]) and torch.equal(a.train[1], d.train[1])
    assert torch.equal(a.info["beta_star"], d.info["beta_star"])
    spec = a.spec
    again = load(**spec)
    assert torch.equal(again.test[1], a.test[1])


def test_synthetic_scales_and_noise_honoured_empirically():
    scales = [0.1, 1.0, 3.0, 10.0, 0.5]
    n, noise = 20_000, 0.7
    data = load("synthetic-linear", seed=1, n_train=n, n_test=1, dim=5, scales=scales,
                noise_std=noise)  # fmt: skip
    x = data.train[0].double()
    # the sample std of a normal has relative standard error 1/sqrt(2n); allow 4 of them
    tolerance = 4 / np.sqrt(2 * n)
    rel = x.std(0, unbiased=False).numpy() / np.asarray(scales)
    assert np.all(np.abs(rel - 1) < tolerance), rel
    assert np.all(np.abs(x.mean(0).numpy()) < 4 * np.asarray(scales) / np.sqrt(n))
    residual = data.train[1].double() - x @ data.info["beta_star"]
    assert abs(residual.std().item() / noise - 1) < tolerance
    clean = load("synthetic-linear", seed=1, n_train=50, n_test=1, dim=5, noise_std=0.0)
    xb = clean.train[0].double() @ clean.info["beta_star"]
    assert torch.allclose(clean.train[1].double(), xb, rtol=1e-6, atol=1e-6)


def test_synthetic_teachers():
    sparse = load("synthetic-linear", seed=2, dim=40, teacher="sparse", teacher_density=0.2)
    beta = sparse.info["beta_star"]
    assert int((beta != 0).sum()) == 8
    tiny = load("synthetic-linear", seed=2, dim=40, teacher="sparse", teacher_density=0.001)
    assert int((tiny.info["beta_star"] != 0).sum()) == 1
    dense = load("synthetic-linear", seed=2, dim=40)
    assert int((dense.info["beta_star"] != 0).sum()) == 40
    # the scales preset does not change the teacher
    equal = load("synthetic-linear", seed=2, dim=40, scales="equal")
    assert torch.equal(equal.info["beta_star"], dense.info["beta_star"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"scales": "wide"}, "unknown scales 'wide'"),
        ({"dim": 3, "scales": [1.0, 2.0]}, "list of 3"),
        ({"dim": 2, "scales": [1.0, -2.0]}, "positive finite"),
        ({"dim": 2, "scales": [1.0, "a"]}, "positive finite"),
        ({"teacher": "medium"}, "unknown teacher 'medium'"),
        ({"teacher": "sparse", "teacher_density": 0.0}, "teacher_density"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"noise_std": "loud"}, "noise_std"),
        ({"n_train": 0}, "n_train"),
        ({"n_test": 1.5}, "n_test"),
        ({"dim": True}, "dim"),
    ],
)
def test_synthetic_rejects_bad_options(options, match):
    raises_one_line(match, load, "synthetic-linear", seed=0, **options)
