"""The embedded run store: one SQLite file (standard library ``sqlite3``, WAL mode).

All SQL of the SQLite backend lives here. Every operation runs on the store's one
writer thread (see ``_sqlite_writer``), many per transaction; the event loop only
awaits. The schema version is kept in ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Collection, Sequence
from os import PathLike, fspath
from types import TracebackType
from typing import Any, Literal

import anyio

from actors._sqlite_lock import FileLock
from actors._sqlite_writer import Writer
from actors._store import RunRecord, StepRecord
from actors.errors import (
    InvalidOption,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreReadOnly,
    StoreVersionError,
)

__all__ = ("SCHEMA_VERSION", "SQLiteStore")

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locks (
    id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER, hostname TEXT, acquired_at REAL);
CREATE TABLE IF NOT EXISTS definitions (hash TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, workflow TEXT NOT NULL, definition TEXT NOT NULL,
    event TEXT NOT NULL, key TEXT UNIQUE, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, ended_at REAL, output TEXT);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow, created_at);
CREATE INDEX IF NOT EXISTS runs_by_creation ON runs (created_at);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, result TEXT, error TEXT, reason TEXT,
    duration REAL NOT NULL, logs TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, step)) WITHOUT ROWID;
"""
# _MIGRATIONS[n] takes the schema from version n to n + 1.
_MIGRATIONS = (_SCHEMA, "ALTER TABLE runs ADD COLUMN parent_run_id TEXT;")

_RUN_COLUMNS = (
    "r.id, r.workflow, d.data, r.event, r.key, r.status, "
    "r.created_at, r.updated_at, r.ended_at, r.output, r.parent_run_id"
)
_RUN_SELECT = f"SELECT {_RUN_COLUMNS} FROM runs r JOIN definitions d ON d.hash = r.definition"
_STEP_COLUMNS = "run_id, step, status, attempts, result, error, reason, duration, logs, updated_at"

Synchronous = Literal["NORMAL", "FULL"]


class SQLiteStore:
    """Runs recorded in the SQLite file ``path``; open it with ``async with`` (the
    engine does). One owner per file: a second opener gets
    :class:`~actors.errors.StoreLocked` naming the holder.

    ``synchronous``: ``"NORMAL"`` (the default) survives a crash of the process;
    ``"FULL"`` also a power loss, at the cost of an fsync per commit.
    ``queue_size`` bounds the writes waiting for the writer thread.
    ``read_only=True`` opens the file for reading only, without taking ownership
    (to look at runs while an engine owns the file); writes raise
    :class:`~actors.errors.StoreReadOnly`.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        queue_size: int = 1024,
        read_only: bool = False,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidOption("synchronous", "must be 'NORMAL' or 'FULL'", value=synchronous)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise InvalidOption("queue_size", "must be a positive integer", value=queue_size)
        self.path = fspath(path)
        self._synchronous = synchronous
        self._queue_size = queue_size
        self.read_only = bool(read_only)
        self._lock = FileLock(self.path)
        self._writer: Writer | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @property
    def location(self) -> str:
        return self.path

    @property
    def commits(self) -> int:
        """Transactions committed since the store was opened (each holds many writes)."""
        return 0 if self._writer is None else self._writer.batches

    async def __aenter__(self) -> SQLiteStore:
        if self._writer is not None:
            raise RuntimeError("this store is open already")
        writer = Writer(self._connect, translate=self._translate, queue_size=self._queue_size)
        await writer.start()
        self._writer = writer
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            with anyio.CancelScope(shield=True), contextlib.suppress(StoreError):
                await writer.call(lambda conn: conn.execute("DELETE FROM locks"))
        finally:
            await writer.stop()
            self._lock.release()

    # -- opening (on the writer thread) ----------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._open_read_only()
        self._lock.acquire()
        try:
            return self._open_database()
        except BaseException:
            self._lock.release()
            raise

    def _open_database(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreVersionError(self.path, found=version, supported=SCHEMA_VERSION)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            if version < SCHEMA_VERSION:
                steps = " ".join(_MIGRATIONS[version:])
                conn.executescript(
                    f"BEGIN IMMEDIATE; {steps} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
                )
            conn.execute(
                "INSERT OR REPLACE INTO locks VALUES (1, ?, ?, ?)",
                (os.getpid(), socket.gethostname(), time.time()),
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        if not os.path.exists(self.path):
            raise StoreError(self.path, "no such file")
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                raise StoreError(self.path, "is not a run store (no runs were recorded in it)")
            if version > SCHEMA_VERSION:
                raise StoreVersionError(self.path, found=version, supported=SCHEMA_VERSION)
            if version < SCHEMA_VERSION:
                reason = f"schema version {version} is older than this library's {SCHEMA_VERSION}"
                raise StoreError(self.path, f"{reason}; open it with an engine once to upgrade")
        except BaseException:
            conn.close()
            raise
        return conn

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "")
        text = f"{exc} ({name})" if name else str(exc)
        if name in ("SQLITE_FULL",) or "disk is full" in str(exc):
            return StoreFull(self.path, text)
        if name.startswith("SQLITE_READONLY") or "readonly" in str(exc):
            return StoreReadOnly(self.path, text)
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in str(exc):
            return StoreCorrupt(self.path, text)
        return StoreError(self.path, text)

    def _run(self) -> Writer:
        if self._writer is None:
            raise StoreError(self.path, "the store is not open (use 'async with')")
        return self._writer

    # -- writes ----------------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> RunRecord:
        return await self._run().call(lambda conn: _create_run(conn, run))

    async def record_attempt(self, run_id: str, step: str, attempt: int) -> None:
        args = (run_id, step, attempt, time.time())
        await self._run().submit(lambda conn: conn.execute(_MARK_ATTEMPT, args))

    async def record_step(self, step: StepRecord) -> None:
        row = _step_row(step)
        await self._run().call(lambda conn: conn.execute(_PUT_STEP, row))

    async def finish_run(
        self, run_id: str, *, status: str, output: Any, steps: Sequence[StepRecord]
    ) -> None:
        rows = [_step_row(step) for step in steps]
        now, encoded = time.time(), _dumps(output)

        def finish(conn: sqlite3.Connection) -> None:
            conn.executemany(_PUT_STEP, rows)
            conn.execute(
                "UPDATE runs SET status = ?, output = ?, ended_at = ?, updated_at = ? WHERE id = ?",
                (status, encoded, now, now, run_id),
            )

        await self._run().call(finish)

    async def reopen_run(self, run_id: str, *, keep: Collection[str]) -> None:
        kept = list(keep)

        def reopen(conn: sqlite3.Connection) -> None:
            marks = ",".join("?" * len(kept))
            conn.execute(f"DELETE FROM steps WHERE run_id = ? AND step NOT IN ({marks})",
                         (run_id, *kept))  # fmt: skip
            conn.execute(
                "UPDATE runs SET status = 'running', output = NULL, ended_at = NULL, "
                "updated_at = ? WHERE id = ?",
                (time.time(), run_id),
            )

        await self._run().call(reopen)

    async def prune(self, *, ended_before: float) -> int:
        def prune(conn: sqlite3.Connection) -> int:
            old = "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ?"
            conn.execute(f"DELETE FROM steps WHERE run_id IN ({old})", (ended_before,))
            cursor = conn.execute(f"DELETE FROM runs WHERE id IN ({old})", (ended_before,))
            conn.execute("DELETE FROM definitions WHERE hash NOT IN (SELECT definition FROM runs)")
            return cursor.rowcount

        return await self._run().call(prune)

    # -- reads -----------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        def get(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(f"{_RUN_SELECT} WHERE r.id = ?", (run_id,)).fetchone()
            return None if row is None else _run_record(row)

        return await self._run().call(get)

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        query = f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ?"
        rows = await self._run().call(lambda conn: conn.execute(query, (run_id,)).fetchall())
        return [_step_record(row) for row in rows]

    async def list_runs(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        where, args = ["1 = 1"], []
        if workflow is not None:
            where.append("r.workflow = ?")
            args.append(workflow)
        if status is not None:
            where.append("r.status = ?")
            args.append(status)
        query = f"{_RUN_SELECT} WHERE {' AND '.join(where)} ORDER BY r.created_at DESC LIMIT ?"
        rows = await self._run().call(lambda conn: conn.execute(query, (*args, limit)).fetchall())
        return [_run_record(row) for row in rows]

    async def unfinished_runs(self) -> list[RunRecord]:
        query = f"{_RUN_SELECT} WHERE r.status = 'running' ORDER BY r.created_at"
        rows = await self._run().call(lambda conn: conn.execute(query).fetchall())
        return [_run_record(row) for row in rows]


_MARK_ATTEMPT = (
    f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES (?, ?, 'running', ?, NULL, NULL, NULL, 0, NULL, ?)"
    " ON CONFLICT (run_id, step) DO UPDATE SET attempts = excluded.attempts,"
    " updated_at = excluded.updated_at WHERE steps.status = 'running'"
)
_PUT_STEP = f"INSERT OR REPLACE INTO steps ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _create_run(conn: sqlite3.Connection, run: RunRecord) -> RunRecord:
    if run.key is not None:
        row = conn.execute(f"{_RUN_SELECT} WHERE r.key = ?", (run.key,)).fetchone()
        if row is not None:
            return _run_record(row)
    definition = json.dumps(run.definition, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(definition.encode()).hexdigest()
    conn.execute("INSERT OR IGNORE INTO definitions VALUES (?, ?)", (digest, definition))
    conn.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run.id, run.workflow, digest, _dumps(run.event), run.key, run.status,
         run.created_at, run.updated_at, run.ended_at, _dumps(run.output), run.parent_run_id),
    )  # fmt: skip
    return run


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _step_row(step: StepRecord) -> tuple[Any, ...]:
    error = None if step.error is None else _dumps(step.error)
    logs = _dumps([list(line) for line in step.logs]) if step.logs else None
    return (step.run_id, step.step, step.status, step.attempts, _dumps(step.result), error,
            step.reason, step.duration, logs, step.updated_at or time.time())  # fmt: skip


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, workflow, definition, event, key, status, created, updated, ended, output, parent = row
    return RunRecord(
        id=run_id,
        workflow=workflow,
        definition=json.loads(definition),
        event=_loads(event),
        key=key,
        status=status,
        created_at=created,
        updated_at=updated,
        ended_at=ended,
        output=_loads(output),
        parent_run_id=parent,
    )


def _step_record(row: tuple[Any, ...]) -> StepRecord:
    run_id, step, status, attempts, result, error, reason, duration, logs, updated = row
    return StepRecord(
        run_id=run_id,
        step=step,
        status=status,
        attempts=attempts,
        result=_loads(result),
        error=_loads(error),
        reason=reason,
        duration=duration,
        logs=tuple((level, text) for level, text in _loads(logs) or ()),
        updated_at=updated,
    )
