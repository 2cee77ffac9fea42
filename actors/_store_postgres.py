"""The shared run store: one PostgreSQL database, through the asyncpg driver.

All SQL of the PostgreSQL backend lives here. The library creates and migrates the
schema itself (the version is in ``actors_meta``; a migration holds an advisory
lock, so engines starting together migrate once). Values are JSON text, as in the
SQLite store, so a run reads back exactly as recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Any

from actors._store import RunRecord, StepRecord
from actors._store_sqlite import _dumps, _run_record, _step_record, _step_row
from actors.errors import InvalidOption, StoreError, StoreReadOnly, StoreVersionError

__all__ = ("SCHEMA_VERSION", "PostgresStore", "is_postgres_address")

SCHEMA_VERSION = 1
_MIGRATION_LOCK = 0x61637473  # pg_advisory_xact_lock key: "acts"

# _MIGRATIONS[n] takes the schema from version n to n + 1.
_MIGRATIONS = (
    """
    CREATE TABLE actors_definitions (hash TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE actors_runs (
        id TEXT PRIMARY KEY, workflow TEXT NOT NULL,
        definition TEXT NOT NULL REFERENCES actors_definitions (hash),
        event TEXT NOT NULL, key TEXT UNIQUE, status TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION, output TEXT);
    CREATE INDEX actors_runs_by_status ON actors_runs (status, created_at);
    CREATE INDEX actors_runs_by_workflow ON actors_runs (workflow, created_at);
    CREATE INDEX actors_runs_by_creation ON actors_runs (created_at);
    CREATE TABLE actors_steps (
        run_id TEXT NOT NULL REFERENCES actors_runs (id) ON DELETE CASCADE,
        step TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        result TEXT, error TEXT, reason TEXT, duration DOUBLE PRECISION NOT NULL,
        logs TEXT, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, step));
    """,
)

_RUN_COLUMNS = (
    "r.id, r.workflow, d.data, r.event, r.key, r.status, "
    "r.created_at, r.updated_at, r.ended_at, r.output"
)
_RUN_SELECT = (
    f"SELECT {_RUN_COLUMNS} FROM actors_runs r JOIN actors_definitions d ON d.hash = r.definition"
)
_STEP_COLUMNS = "run_id, step, status, attempts, result, error, reason, duration, logs, updated_at"
_PUT_STEP = (
    f"INSERT INTO actors_steps ({_STEP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (run_id, step) DO UPDATE SET status = excluded.status,"
    " attempts = excluded.attempts, result = excluded.result, error = excluded.error,"
    " reason = excluded.reason, duration = excluded.duration, logs = excluded.logs,"
    " updated_at = excluded.updated_at"
)
_MARK_ATTEMPT = (
    f"INSERT INTO actors_steps ({_STEP_COLUMNS})"
    " VALUES ($1, $2, 'running', $3, NULL, NULL, NULL, 0, NULL, $4)"
    " ON CONFLICT (run_id, step) DO UPDATE SET attempts = excluded.attempts,"
    " updated_at = excluded.updated_at WHERE actors_steps.status = 'running'"
)


def is_postgres_address(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) address."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


class PostgresStore:
    """Runs recorded in the PostgreSQL database ``dsn`` (``postgresql://...``); open it
    with ``async with`` (the engine does). Needs ``pip install 'actors[postgres]'``.

    ``pool_size``: connections to the database. ``read_only=True`` neither creates
    nor migrates the schema, and writes raise :class:`~actors.errors.StoreReadOnly`.
    """

    def __init__(self, dsn: str, *, pool_size: int = 4, read_only: bool = False) -> None:
        if not is_postgres_address(dsn):
            raise InvalidOption("dsn", "must be a postgresql:// address", value=dsn)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise InvalidOption("pool_size", "must be a positive integer", value=pool_size)
        self.dsn = dsn
        self.read_only = bool(read_only)
        self._pool_size = pool_size
        self._pool: Any = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    @property
    def location(self) -> str:
        """The address without its password."""
        parts = urllib.parse.urlsplit(self.dsn)
        if parts.password is None:
            return self.dsn
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    async def __aenter__(self) -> PostgresStore:
        if self._pool is not None:
            raise RuntimeError("this store is open already")
        asyncpg = _driver(self.location)
        try:
            pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self._pool_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(self.location, f"cannot connect: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await self._check_schema(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _check_schema(self, conn: Any) -> None:
        version = await self._version(conn)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(self.location, found=version, supported=SCHEMA_VERSION)
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(self.location, "is not a run store (no runs were recorded in it)")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS actors_meta (version INTEGER NOT NULL);"
                "INSERT INTO actors_meta SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM actors_meta)"
            )
            version = await conn.fetchval("SELECT version FROM actors_meta")
            for migration in _MIGRATIONS[version:]:
                await conn.execute(migration)
            await conn.execute("UPDATE actors_meta SET version = $1", SCHEMA_VERSION)

    async def _version(self, conn: Any) -> int:
        exists = await conn.fetchval("SELECT to_regclass('actors_meta') IS NOT NULL")
        if not exists:
            return 0
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM actors_meta"))

    # -- plumbing ------------------------------------------------------------------

    async def _call(self, operation: Any, *, write: bool = True) -> Any:
        if self._pool is None:
            raise StoreError(self.location, "the store is not open (use 'async with')")
        if write and self.read_only:
            raise StoreReadOnly(self.location, "opened read_only=True")
        asyncpg = _driver(self.location)
        try:
            async with self._pool.acquire() as conn:
                return await operation(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(self.location, f"{type(exc).__name__}: {exc}") from exc

    # -- writes --------------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> RunRecord:
        definition = json.dumps(run.definition, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(definition.encode()).hexdigest()

        async def create(conn: Any) -> RunRecord:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO actors_definitions VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    digest,
                    definition,
                )
                inserted = await conn.fetchval(
                    "INSERT INTO actors_runs VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    " ON CONFLICT (key) DO NOTHING RETURNING id",
                    run.id, run.workflow, digest, _dumps(run.event), run.key, run.status,
                    run.created_at, run.updated_at, run.ended_at, _dumps(run.output),
                )  # fmt: skip
            if inserted is not None:
                return run
            row = await conn.fetchrow(f"{_RUN_SELECT} WHERE r.key = $1", run.key)
            return _run_record(tuple(row))

        record: RunRecord = await self._call(create)
        return record

    async def record_attempt(self, run_id: str, step: str, attempt: int) -> None:
        args = (run_id, step, attempt, time.time())
        await self._call(lambda conn: conn.execute(_MARK_ATTEMPT, *args))

    async def record_step(self, step: StepRecord) -> None:
        row = _step_row(step)
        await self._call(lambda conn: conn.execute(_PUT_STEP, *row))

    async def finish_run(
        self, run_id: str, *, status: str, output: Any, steps: Sequence[StepRecord]
    ) -> None:
        rows = [_step_row(step) for step in steps]
        now, encoded = time.time(), _dumps(output)

        async def finish(conn: Any) -> None:
            async with conn.transaction():
                if rows:
                    await conn.executemany(_PUT_STEP, rows)
                await conn.execute(
                    "UPDATE actors_runs SET status = $1, output = $2, ended_at = $3,"
                    " updated_at = $3 WHERE id = $4",
                    status, encoded, now, run_id,
                )  # fmt: skip

        await self._call(finish)

    async def reopen_run(self, run_id: str, *, keep: Collection[str]) -> None:
        kept = list(keep)

        async def reopen(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM actors_steps WHERE run_id = $1 AND NOT (step = ANY($2::text[]))",
                    run_id,
                    kept,
                )
                await conn.execute(
                    "UPDATE actors_runs SET status = 'running', output = NULL, ended_at = NULL,"
                    " updated_at = $1 WHERE id = $2",
                    time.time(),
                    run_id,
                )

        await self._call(reopen)

    async def prune(self, *, ended_before: float) -> int:
        async def prune(conn: Any) -> int:
            async with conn.transaction():
                status = await conn.execute(
                    "DELETE FROM actors_runs WHERE ended_at IS NOT NULL AND ended_at < $1",
                    ended_before,
                )
                await conn.execute(
                    "DELETE FROM actors_definitions d WHERE NOT EXISTS"
                    " (SELECT 1 FROM actors_runs r WHERE r.definition = d.hash)"
                )
            return int(status.split()[-1])

        count: int = await self._call(prune)
        return count

    # -- reads ---------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._call(
            lambda conn: conn.fetchrow(f"{_RUN_SELECT} WHERE r.id = $1", run_id), write=False
        )
        return None if row is None else _run_record(tuple(row))

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        query = f"SELECT {_STEP_COLUMNS} FROM actors_steps WHERE run_id = $1 ORDER BY step"
        rows = await self._call(lambda conn: conn.fetch(query, run_id), write=False)
        return [_step_record(tuple(row)) for row in rows]

    async def list_runs(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        query = (
            f"{_RUN_SELECT} WHERE ($1::text IS NULL OR r.workflow = $1)"
            " AND ($2::text IS NULL OR r.status = $2) ORDER BY r.created_at DESC LIMIT $3"
        )
        rows = await self._call(lambda c: c.fetch(query, workflow, status, limit), write=False)
        return [_run_record(tuple(row)) for row in rows]

    async def unfinished_runs(self) -> list[RunRecord]:
        query = f"{_RUN_SELECT} WHERE r.status = 'running' ORDER BY r.created_at"
        rows = await self._call(lambda conn: conn.fetch(query), write=False)
        return [_run_record(tuple(row)) for row in rows]


def _driver(location: str) -> Any:
    try:
        import asyncpg
    except ImportError:
        reason = "needs the asyncpg driver: pip install 'actors[postgres]'"
        raise StoreError(location, reason) from None
    return asyncpg
