"""The persistent store: every call kept across restarts, and the response cache.

One SQLite file (the standard library's :mod:`sqlite3`) in a per-user folder:
``$NBCLAUDE_HOME/nbclaude.sqlite3`` when ``NBCLAUDE_HOME`` is set, else ``platformdirs``'
user data folder for ``nbclaude``. Each call is written as it ends, in a short transaction,
so a crash or a restart loses nothing already finished, and several kernels may write at
once (WAL mode, a busy timeout). The request is kept as the run log shows it (images and
documents as placeholders); no key or header is ever written.

The cache maps a request's canonical body (model, system, messages, every parameter, as
sorted JSON) and the API it was sent to, hashed, to the last complete reply that answered
it. Clearing the cache keeps the history.

A store that cannot be used (locked past the timeout, full, corrupt, read-only, a folder
that cannot be made) never fails a call: each method raises :class:`StoreError` with one
line, and the run log keeps the call in memory and says so once. Nothing here imports
IPython.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs

__all__ = [
    "FILE_NAME",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoredRun",
    "default_path",
    "request_key",
]

SCHEMA_VERSION = 1
"""The version of the tables; a later release migrates a store with a lower one."""

FILE_NAME = "nbclaude.sqlite3"
"""The store's file name, in its folder."""

BUSY_SECONDS = 2.0
"""How long a write waits for another kernel's transaction before giving up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    started_at TEXT NOT NULL,
    model TEXT NOT NULL,
    flags TEXT NOT NULL,
    chat TEXT,
    request TEXT NOT NULL,
    reply TEXT,
    rendered TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    thinking_tokens INTEGER,
    cost REAL,
    time_to_first_token REAL,
    duration REAL NOT NULL,
    stop_reason TEXT,
    complete INTEGER NOT NULL,
    error TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    notebook TEXT,
    cell_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_session ON runs (session);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    grp TEXT NOT NULL,
    session TEXT NOT NULL,
    created_at TEXT NOT NULL,
    notebook TEXT,
    flags TEXT NOT NULL,
    requests INTEGER NOT NULL,
    state TEXT NOT NULL,
    jobs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_group ON batches (grp);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE
);
"""

_RUN_COLUMNS = (
    "session",
    "started_at",
    "model",
    "flags",
    "chat",
    "request",
    "reply",
    "rendered",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "thinking_tokens",
    "cost",
    "time_to_first_token",
    "duration",
    "stop_reason",
    "complete",
    "error",
    "cached",
    "notebook",
    "cell_id",
)


class StoreError(Exception):
    """The store cannot be read or written; the message is one line."""


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One row of the store, as written: the run log's fields, JSON already decoded."""

    values: Mapping[str, Any]
    """Each column by name; ``request`` and ``reply`` are decoded JSON (``reply`` may be
    ``None``); ``started_at`` is a timezone-aware datetime; ``complete`` and ``cached``
    are booleans."""


def default_path() -> Path:
    """Where the store lives: ``$NBCLAUDE_HOME/nbclaude.sqlite3``, or the user data folder."""
    home = os.environ.get("NBCLAUDE_HOME")
    folder = Path(home).expanduser() if home else Path(platformdirs.user_data_dir("nbclaude"))
    return folder / FILE_NAME


def request_key(body: Mapping[str, Any], endpoint: str = "") -> str:
    """The cache key of a request: its body as canonical JSON (``stream`` aside) and the
    API it goes to, hashed.

    The endpoint keeps apart what different APIs answered: the offline demo's canned
    replies never answer a request to the real API, nor a proxy's the API's.
    """
    canonical = {name: value for name, value in body.items() if name != "stream"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{endpoint}\n{text}".encode()).hexdigest()


class Store:
    """The SQLite file, opened on first use.

    Args:
        path: The file; made (with its folder) on first write.
        session: This process's session id, stamped on each run written.
    """

    def __init__(self, path: Path, *, session: str | None = None) -> None:
        self.path = path
        """The SQLite file."""
        self.session = session or uuid.uuid4().hex
        """The id this session's runs are written with."""
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    # ---- connecting

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A short transaction on the open connection; any failure is a :class:`StoreError`."""
        with self._lock:
            try:
                connection = self._connect()
                with connection:
                    yield connection
            except (sqlite3.Error, OSError) as exc:
                self._disconnect()
                raise StoreError(f"{self.path}: {_reason(exc)}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, check_same_thread=False)
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                connection.execute("PRAGMA journal_mode = DELETE")
            with connection:
                connection.executescript(_SCHEMA)
                # OR IGNORE: another process may create the same file at the same moment.
                connection.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                (version,) = connection.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                if int(version) > SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"made by a newer nbclaude (schema {version}); upgrade nbclaude"
                    )
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def close(self) -> None:
        """Close the file; the next use opens it again."""
        with self._lock:
            self._disconnect()

    # ---- writing

    def add(self, values: Mapping[str, Any], *, cache_key: str | None = None) -> int:
        """Write one run; with ``cache_key``, make it the cached answer to that request.

        Args:
            values: A value for each column (``request`` and ``reply`` as JSON-able data,
                ``started_at`` a datetime); ``session`` is filled in.
            cache_key: The request's :func:`request_key`, for a complete reply that was not
                itself served from the cache.

        Returns:
            The run's row id.

        Raises:
            StoreError: If the store cannot be written.
        """
        row = {**values, "session": self.session}
        row["started_at"] = values["started_at"].isoformat()
        row["request"] = json.dumps(values["request"], ensure_ascii=False, default=str)
        for name in ("reply", "rendered"):
            value = values.get(name)
            row[name] = None if value is None else json.dumps(value, ensure_ascii=False)
        columns = ", ".join(_RUN_COLUMNS)
        marks = ", ".join("?" for _ in _RUN_COLUMNS)
        with self._transaction() as connection:
            cursor = connection.execute(
                f"INSERT INTO runs ({columns}) VALUES ({marks})",
                [row.get(column) for column in _RUN_COLUMNS],
            )
            run_id = int(cursor.lastrowid or 0)
            if cache_key is not None:
                connection.execute(
                    "INSERT OR REPLACE INTO cache (key, run_id) VALUES (?, ?)", (cache_key, run_id)
                )
        return run_id

    def set_rendered(self, run_id: int, rendered: Mapping[int, str]) -> None:
        """Keep a run's Markdown as the view rendered it, by block position, so that a cache
        hit shows the same HTML without rendering it again.

        Raises:
            StoreError: If the store cannot be written.
        """
        text = json.dumps({str(position): html for position, html in rendered.items()})
        with self._transaction() as connection:
            connection.execute("UPDATE runs SET rendered = ? WHERE id = ?", (text, run_id))

    def add_batch(
        self,
        batch_id: str,
        *,
        group: str,
        created_at: datetime,
        notebook: str | None,
        flags: str,
        jobs: list[Mapping[str, Any]],
    ) -> None:
        """Remember a Message Batch as soon as it is created, so a restart loses nothing.

        Args:
            batch_id: The API's id of the batch.
            group: The id of the first batch of the cell (a cell may make several).
            created_at: When it was created.
            notebook: The notebook that made it, if known.
            flags: The ``%%claude`` line.
            jobs: For each of its requests: ``custom_id``, ``label`` and ``inputs``.

        Raises:
            StoreError: If the store cannot be written.
        """
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    group,
                    self.session,
                    created_at.isoformat(),
                    notebook,
                    flags,
                    len(jobs),
                    "in_progress",
                    json.dumps(jobs, ensure_ascii=False, default=str),
                ),
            )

    def set_batch_state(self, batch_id: str, state: str) -> None:
        """Note how a batch stands: ``in_progress``, ``ended``, ``canceling``, ``collected``.

        Raises:
            StoreError: If the store cannot be written.
        """
        with self._transaction() as connection:
            connection.execute("UPDATE batches SET state = ? WHERE id = ?", (state, batch_id))

    def batch_group(self, batch_id: str) -> list[Mapping[str, Any]]:
        """Every batch of the cell that made ``batch_id``, oldest first; empty if unknown.

        Each is a mapping of its columns, ``jobs`` decoded.

        Raises:
            StoreError: If the store cannot be read.
        """
        with self._transaction() as connection:
            return _batch_rows(
                connection.execute(
                    "SELECT * FROM batches WHERE grp = (SELECT grp FROM batches WHERE id = ?) "
                    "ORDER BY created_at, rowid",
                    (batch_id,),
                )
            )

    def batches(self, limit: int = 20) -> list[Mapping[str, Any]]:
        """The most recent batches, newest first.

        Raises:
            StoreError: If the store cannot be read.
        """
        with self._transaction() as connection:
            return _batch_rows(
                connection.execute(
                    "SELECT * FROM batches ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
                )
            )

    def clear_cache(self) -> int:
        """Forget every cached reply (the history stays); return how many there were.

        Raises:
            StoreError: If the store cannot be written.
        """
        with self._transaction() as connection:
            return connection.execute("DELETE FROM cache").rowcount

    # ---- reading

    def cached(self, cache_key: str) -> tuple[Mapping[str, Any], dict[int, str]] | None:
        """The reply stored for a request, or ``None``.

        Returns:
            The API's message as JSON, and its Markdown as the view rendered it, by block
            position (empty when no view rendered it).

        Raises:
            StoreError: If the store cannot be read.
        """
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT runs.reply, runs.rendered FROM cache JOIN runs ON runs.id = cache.run_id "
                "WHERE cache.key = ?",
                (cache_key,),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        rendered = {int(key): str(html) for key, html in json.loads(row[1] or "{}").items()}
        return json.loads(row[0]), rendered

    def runs(
        self,
        *,
        session: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        notebook: str | None = None,
    ) -> list[StoredRun]:
        """The stored runs, oldest first, narrowed by any of the filters given.

        Args:
            session: Only this session's.
            since: Only those started at or after this moment.
            until: Only those started before this moment.
            notebook: Only those made in a notebook whose path ends with this.

        Raises:
            StoreError: If the store cannot be read.
        """
        where, arguments = [], []
        if session is not None:
            where.append("session = ?")
            arguments.append(session)
        if since is not None:
            where.append("started_at >= ?")
            arguments.append(since.isoformat())
        if until is not None:
            where.append("started_at < ?")
            arguments.append(until.isoformat())
        if notebook is not None:
            where.append("notebook LIKE ? ESCAPE '\\'")
            arguments.append("%" + notebook.replace("\\", "\\\\").replace("%", "\\%"))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        columns = ", ".join(_RUN_COLUMNS)
        with self._transaction() as connection:
            rows = connection.execute(
                f"SELECT {columns} FROM runs{clause} ORDER BY id", arguments
            ).fetchall()
        return [StoredRun(_decoded(dict(zip(_RUN_COLUMNS, row, strict=True)))) for row in rows]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["started_at"] = datetime.fromisoformat(row["started_at"])
    row["request"] = json.loads(row["request"])
    row["reply"] = None if row["reply"] is None else json.loads(row["reply"])
    row.pop("rendered")
    row["complete"] = bool(row["complete"])
    row["cached"] = bool(row["cached"])
    return row


def _batch_rows(cursor: sqlite3.Cursor) -> list[Mapping[str, Any]]:
    """The batches a query found, each a mapping of its columns, ``jobs`` decoded."""
    names = [column[0] for column in cursor.description]
    rows: list[Mapping[str, Any]] = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        row["jobs"] = json.loads(row["jobs"])
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        rows.append(row)
    return rows


def _reason(exc: BaseException) -> str:
    """What went wrong with the store, in a few words."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return "not an nbclaude store (the file is corrupt, or something else)"
    if "readonly" in text or "read-only" in text:
        return "read-only"
    return text
