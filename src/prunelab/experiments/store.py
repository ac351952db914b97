"""The results store of a sweep: one SQLite file (stdlib ``sqlite3``, WAL journal).

Tables (every JSON column is ``json.dumps`` text with non-finite floats as ``null``):

* ``runs``: one row per grid point — ``hash`` (primary key), ``dense_hash``, ``config``
  (the run's resolved settings), ``status`` (``ok`` | ``failed`` | ``diverged``),
  ``error``, ``metrics``, ``seconds``, ``created``;
* ``dense``: one row per trained dense checkpoint (``metrics``: dense test/train loss and
  accuracy, training history);
* ``predictions``: one row per trained dense model and prediction settings (``result``:
  Gaussian-width limit, cosine rule, actual limit, spectrum);
* ``studies``: model-free studies such as paper 000's linear theory;
* ``meta``: ``key -> value`` (the sweep's config hash and resolved config).

Design: only the sweep's parent process writes (workers return plain dicts), each result
is one ``INSERT`` in its own transaction, and the primary key makes a second insert of
the same hash a no-op, so a sweep killed at any moment (even ``kill -9`` between two
statements) leaves every finished result exactly once and nothing half-written. A busy
timeout lets a reader (``prunelab report``) open the file while a sweep is writing.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

STATUSES = ("ok", "failed", "diverged")
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY, dense_hash TEXT, config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'diverged')),
    error TEXT, metrics TEXT, seconds REAL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dense (
    hash TEXT PRIMARY KEY, config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'diverged')),
    error TEXT, metrics TEXT, seconds REAL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    hash TEXT PRIMARY KEY, dense_hash TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'diverged')),
    error TEXT, result TEXT, seconds REAL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    hash TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'diverged')),
    error TEXT, result TEXT, seconds REAL, created TEXT NOT NULL);
"""

_COLUMNS = {
    "runs": ("hash", "dense_hash", "config", "status", "error", "metrics", "seconds"),
    "dense": ("hash", "config", "status", "error", "metrics", "seconds"),
    "predictions": ("hash", "dense_hash", "config", "status", "error", "result", "seconds"),
    "studies": ("hash", "kind", "config", "status", "error", "result", "seconds"),
}
_JSON = ("config", "metrics", "result")


def sanitize(obj: object) -> object:
    """A JSON-ready copy: tuples → lists, non-finite floats → ``None``, other → ``str``.

    Example:
        >>> sanitize({"a": float("nan"), "b": (1, 2.5), "c": float("inf")})
        {'a': None, 'b': [1, 2.5], 'c': None}
    """
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if hasattr(obj, "item"):  # numpy / torch scalars
        return sanitize(obj.item())
    return str(obj)


def dumps(obj: object) -> str:
    """Canonical JSON text of :func:`sanitize` (sorted keys; strict, no NaN)."""
    return json.dumps(sanitize(obj), sort_keys=True, allow_nan=False)


class ResultStore:
    """A sweep's SQLite results file.

    Args:
        path: The ``results.sqlite`` file (created with its tables if missing).

    Example:
        >>> import tempfile, pathlib
        >>> with ResultStore(pathlib.Path(tempfile.mkdtemp()) / "r.sqlite") as s:
        ...     s.record("runs", hash="h1", dense_hash=None, config={"p": 0.5},
        ...              status="ok", error=None, metrics={"acc": 90.0}, seconds=1.0)
        ...     s.record("runs", hash="h1", dense_hash=None, config={}, status="ok",
        ...              error=None, metrics={}, seconds=0.0)  # duplicate: ignored
        ...     [r["metrics"] for r in s.rows("runs")]
        True
        False
        [{'acc': 90.0}]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed row survives power loss too, not only a killed process
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def record(self, table: str, **row) -> bool:
        """Insert one row in its own transaction; return False if its hash was present.

        Args:
            table: ``runs``, ``dense``, ``predictions`` or ``studies``.
            **row: The table's columns (see the module docstring); JSON columns as objects.

        Returns:
            Whether the row was new.
        """
        columns = _COLUMNS[table]
        if row.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
        values = [dumps(row[c]) if c in _JSON else row[c] for c in columns]
        values.append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        names = ", ".join((*columns, "created"))
        marks = ", ".join("?" * (len(columns) + 1))
        cur = self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur.execute(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", values)
            new = cur.rowcount == 1
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return new

    def hashes(self, table: str) -> set[str]:
        """Every hash present in ``table``."""
        return {h for (h,) in self.conn.execute(f"SELECT hash FROM {table}")}

    def rows(self, table: str, where: str = "", args: tuple = ()) -> list[dict]:
        """Rows of ``table`` as dicts with JSON columns decoded, ordered by insertion."""
        cur = self.conn.execute(f"SELECT * FROM {table} {where} ORDER BY rowid", args)
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values, strict=True))
            for c in _JSON:
                if c in row and row[c] is not None:
                    row[c] = json.loads(row[c])
            out.append(row)
        return out

    def get(self, table: str, hash_: str) -> dict | None:
        """The row with ``hash_`` or ``None``."""
        found = self.rows(table, "WHERE hash = ?", (hash_,))
        return found[0] if found else None

    def set_meta(self, key: str, value: object) -> None:
        """Store a JSON value under ``key`` (replacing it)."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, dumps(value))
            )

    def get_meta(self, key: str) -> object:
        """The JSON value stored under ``key``, or ``None``."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def counts(self, table: str = "runs") -> dict[str, int]:
        """``status -> number of rows``, every status present (0 when absent)."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.conn.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY 1"):
            out[status] = n
        return out
