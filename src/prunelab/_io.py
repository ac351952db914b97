"""Atomic file and directory writes: nothing half-written survives a crash or an error.

Temporary names are hidden siblings of the destination, ``.NAME.<pid>@<host>.<random>.tmp``
(``.old`` for a directory being swapped out), so a write killed with ``kill -9`` leaves
something recognisable: the next write of the same ``NAME`` removes what a process no
longer alive left (:func:`clean_stale`). Files and folders get the mode the umask allows
(``mkstemp`` / ``mkdtemp`` alone would make them private, 0600 / 0700).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunelab.errors import PrunelabError

#: a temporary of another host (or of an older prunelab, without a pid) counts as stale
#: only when it has not been touched for this long
FOREIGN_STALE_SECONDS = 24 * 3600


class NotWritableError(PrunelabError):
    """A folder a command must write is read-only (told before any work is done)."""

    kind = "os"


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prefix(name: str) -> str:
    return f".{name}.{os.getpid()}@{_host_tag()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _is_stale(entry: Path, name: str) -> bool:
    """Whether ``entry`` is a temporary of ``name`` that no running write still owns."""
    own = re.fullmatch(rf"\.{re.escape(name)}\.(\d+)@([0-9a-f]{{6}})\.[^.]+\.(tmp|old)", entry.name)
    if own:
        if own.group(2) == _host_tag():
            return not _alive(int(own.group(1)))
    elif not re.fullmatch(rf"\.{re.escape(name)}\.[^.@]+\.(tmp|old)", entry.name):
        return False
    try:  # another host's or an older prunelab's temporary: only when long untouched
        return time.time() - entry.lstat().st_mtime > FOREIGN_STALE_SECONDS
    except OSError:
        return False


def clean_stale(path: str | Path) -> list[Path]:
    """Remove the hidden temporaries a killed write of ``path`` left behind.

    Looks beside ``path`` (``.NAME.*.tmp`` / ``.NAME.*.old``) and, for a directory, inside
    it (where :func:`atomic_directory` stages a replacement). A temporary whose process is
    still running is left alone, so concurrent writers are safe.

    Returns:
        What was removed.
    """
    path = Path(path)
    removed: list[Path] = []
    for folder in (path.parent, path):
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(f".{path.name}.") and _is_stale(entry, path.name):
                try:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                    removed.append(entry)
                except OSError:
                    pass
    return removed


def check_writable(path: str | Path) -> Path:
    """Refuse early (before any work) when ``path`` cannot be written.

    Checks the nearest existing folder at or above ``path`` (the one a write would create
    or replace entries in); a read-only file system is refused even for root.

    Raises:
        NotWritableError: Naming ``path`` and the folder that refuses writes.
    """
    path = Path(path)
    probe = path if path.is_dir() else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise NotWritableError(
            f"cannot write {str(path)!r}: {str(probe)!r} is a file, not a folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NotWritableError(
            f"cannot write {str(path)!r}: {str(probe)!r} is read-only (read-only file system "
            "or no write permission)"
        )
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename.

    Args:
        path: Destination file; its parent directory is created if needed.
        data: The bytes to write.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path.name), suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: object) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _mkdtemp(folder: Path, name: str, suffix: str) -> Path:
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=_prefix(name), suffix=suffix))
    tmp.chmod(0o777 & ~umask())
    return tmp


def _share_as_umask_allows(tmp: Path) -> None:
    """Give what a writer put in ``tmp`` the modes the umask allows.

    Some writers (safetensors' ``save_file``) create files 0600 whatever the umask; a
    checkpoint or report is meant to be shared as any file the user creates would be.
    """
    mask = umask()
    for entry in tmp.rglob("*"):
        if entry.is_symlink():
            continue
        executable = entry.is_dir() or entry.stat().st_mode & 0o111
        entry.chmod((0o777 if executable else 0o666) & ~mask)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_directory(
    path: str | Path, *, keep_others: bool = False, last: str | None = None
) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place only on success.

    A new ``path`` appears whole, by one rename. An existing ``path`` is replaced as a
    whole once the new content is complete, or, with ``keep_others``, only the entries
    the new content names are replaced and everything else in it (reports, the user's
    files) is kept; ``last`` is then removed first and moved in last, so a reader never
    sees it beside a mix of old and new entries. On any exception the temporary is
    removed and ``path`` is left as it was.

    Args:
        path: The final directory.
        keep_others: Keep the entries of an existing ``path`` that the new content lacks.
        last: With ``keep_others``, the entry that marks the content complete (e.g.
            ``meta.json``).

    Yields:
        The temporary directory to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    in_place = keep_others and path.is_dir()
    # staging inside `path` keeps every rename on one file system (path may be a mount)
    tmp = _mkdtemp(path if in_place else path.parent, path.name, ".tmp")
    try:
        yield tmp
        _share_as_umask_allows(tmp)
        if in_place:
            names = sorted(p.name for p in tmp.iterdir())
            if last in names:
                names.remove(last)
                names.append(last)
                _remove(path / last)
            for name in names:
                if (path / name).is_dir() and not (path / name).is_symlink():
                    shutil.rmtree(path / name)
                os.replace(tmp / name, path / name)
            tmp.rmdir()
        elif path.exists():
            old = _mkdtemp(path.parent, path.name, ".old")
            old.rmdir()
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
