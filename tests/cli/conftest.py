"""Fixtures of the CLI tests: one tiny trained checkpoint, a runner, a disk snapshot."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from prunelab.cli import main


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` as a process would see it: exit code, stdout, stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # --help / --version
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots`` (hidden ones too): ``path -> (size, mtime_ns)``."""
    seen = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                seen[str(p)] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return seen


@pytest.fixture
def cli(capsys):
    """``cli(argv) -> (exit code, stdout, stderr)`` of one in-process run."""
    return lambda argv: run_cli(capsys, argv)


@pytest.fixture
def disk():
    """:func:`snapshot`, to assert that a failed command left the disk as it was."""
    return snapshot


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    """lenet300 trained one epoch on digits (read it, never write into it: copy it)."""
    out = tmp_path_factory.mktemp("cli-shared") / "lenet"
    assert (
        main(
            ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--out", str(out)]
        )
        == 0
    )
    return out


@pytest.fixture
def ckpt_copy(ckpt, tmp_path) -> Path:
    """A private copy of :func:`ckpt` that a test may write reports into."""
    return Path(shutil.copytree(ckpt, tmp_path / "ckpt"))


@pytest.fixture
def read_only(monkeypatch):
    """Make folders behave as on a read-only file system (``EROFS``), even for root.

    ``mark(path)`` makes ``path`` and everything under it refuse writes: ``os.access``
    reports it unwritable and creating, renaming or removing entries there raises
    ``OSError(EROFS)``, as the kernel does.
    """
    frozen: list[str] = []

    def inside(path) -> bool:
        try:
            p = os.path.abspath(os.fspath(path))
        except TypeError:
            return False
        return any(p == f or p.startswith(f + os.sep) for f in frozen)

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

    real = {
        n: getattr(os, n)
        for n in ("access", "open", "mkdir", "replace", "rename", "unlink", "rmdir")
    }

    def access(path, mode, *a, **k):
        if mode & os.W_OK and inside(path):
            return False
        return real["access"](path, mode, *a, **k)

    def opener(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real["open"](path, flags, *a, **k)

    def guard(name):
        def wrapped(path, *a, **k):
            if inside(path) or (a and name in ("replace", "rename") and inside(a[0])):
                refuse(path)
            return real[name](path, *a, **k)

        return wrapped

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "open", opener)
    for name in ("mkdir", "replace", "rename", "unlink", "rmdir"):
        monkeypatch.setattr(os, name, guard(name))

    def mark(path: Path) -> Path:
        frozen.append(os.path.abspath(path))
        return path

    return mark
