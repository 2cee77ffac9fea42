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

import anyio
from anyio.abc import TaskGroup

from actors._cluster_tail import Tail, TailRow
from actors._log import get_logger
from actors._pg_lease import FENCED, NOW, Lease
from actors._pg_lease import MIGRATION as LEASE_MIGRATION
from actors._pg_tail import BUS_CHANNEL, head, insert_bus, prune_bus, rows_after
from actors._pg_tail import MIGRATION as TAIL_MIGRATION
from actors._store import RunRecord, StepRecord
from actors._store_sqlite import _dumps, _run_record, _step_record, _step_row
from actors._values import first_non_json
from actors.errors import InvalidOption, StoreError, StoreReadOnly, StoreVersionError

__all__ = ("SCHEMA_VERSION", "PostgresStore", "is_postgres_address")

logger = get_logger(__name__)

SCHEMA_VERSION = 5
_MIGRATION_LOCK = 0x61637473  # pg_advisory_xact_lock key: "acts"
_CLAIM_LIMIT = 1000  # runs taken over per look
_CHANNEL = "actors_events"

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
    LEASE_MIGRATION,
    f"""
    CREATE TABLE actors_events (
        id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL DEFAULT {NOW});
    CREATE INDEX actors_events_by_creation ON actors_events (created_at);
    """,
    "ALTER TABLE actors_runs ADD COLUMN parent_run_id TEXT;",
    TAIL_MIGRATION,
)

_RUN_COLUMNS = (
    "r.id, r.workflow, d.data, r.event, r.key, r.status, "
    "r.created_at, r.updated_at, r.ended_at, r.output, r.parent_run_id"
)
_RUN_SELECT = (
    f"SELECT {_RUN_COLUMNS} FROM actors_runs r JOIN actors_definitions d ON d.hash = r.definition"
)
_STEP_COLUMNS = "run_id, step, status, attempts, result, error, reason, duration, logs, updated_at"
_STEP_VALUES = "$2, $4, $5, $6::int, $7, $8, $9, $10::float8, $11, $12::float8"
_PUT_STEP = (
    f"{FENCED}INSERT INTO actors_steps ({_STEP_COLUMNS}) SELECT {_STEP_VALUES} FROM ok"
    " ON CONFLICT (run_id, step) DO UPDATE SET status = excluded.status,"
    " attempts = excluded.attempts, result = excluded.result, error = excluded.error,"
    " reason = excluded.reason, duration = excluded.duration, logs = excluded.logs,"
    " updated_at = excluded.updated_at RETURNING 1"
)
_MARK_ATTEMPT = (
    f"{FENCED}INSERT INTO actors_steps ({_STEP_COLUMNS})"
    " SELECT $2, $4, 'running', $5::int, NULL, NULL, NULL, 0, NULL, $6::float8 FROM ok"
    " ON CONFLICT (run_id, step) DO UPDATE SET attempts = excluded.attempts,"
    " updated_at = excluded.updated_at WHERE actors_steps.status = 'running'"
)


def is_postgres_address(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) address."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


class PostgresStore:
    """Runs recorded in the PostgreSQL database ``dsn`` (``postgresql://...``); open it
    with ``async with`` (the engine does). Needs ``pip install 'actors[postgres]'``.

    Many engines may share one database: each holds the runs it started or took
    over with a lease renewed every ``lease / 3`` seconds; the runs of an engine
    whose lease lapsed (killed, stalled, stopped) are taken over by the others.
    ``pool_size``: connections to the database. ``read_only=True`` neither creates
    nor migrates the schema nor takes runs, and writes raise
    :class:`~actors.errors.StoreReadOnly`. ``share_events``: record this engine's
    bus events for other engines' ``bus.subscribe(..., cluster=True)`` (kept 10 min).
    """

    def __init__(
        self,
        dsn: str,
        *,
        lease: float = 15.0,
        pool_size: int = 4,
        read_only: bool = False,
        share_events: bool = True,
    ) -> None:
        if not is_postgres_address(dsn):
            raise InvalidOption("dsn", "must be a postgresql:// address", value=dsn)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise InvalidOption("pool_size", "must be a positive integer", value=pool_size)
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise InvalidOption("lease", "must be a positive number of seconds", value=lease)
        self.dsn = dsn
        self.read_only = bool(read_only)
        self.share_events = bool(share_events)
        self._pool_size = pool_size
        self._pool: Any = None
        self._lease = Lease(self.location, float(lease))
        self._group: TaskGroup | None = None
        self._listener: Any = None
        self._wakeups = {_CHANNEL: anyio.Event(), BUS_CHANNEL: anyio.Event()}

    @property
    def engine_id(self) -> str:
        """This store's engine in ``actors_engines`` (host, pid and a random part)."""
        return self._lease.engine_id

    @property
    def takeover_interval(self) -> float | None:
        """How often the engine looks for runs to take over (``None``: read-only)."""
        return None if self.read_only else self._lease.seconds / 2

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
            pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self._pool_size, server_settings=self._settings()
            )
        except _driver_errors(asyncpg) as exc:
            raise StoreError(self.location, f"cannot connect: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await self._check_schema(conn)
                if not self.read_only:
                    await self._lease.register(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        if not self.read_only:
            await self._listen(asyncpg)
            self._group = anyio.create_task_group()
            await self._group.__aenter__()
            self._group.start_soon(self._lease.keep, pool)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
        if pool is None:
            return
        with anyio.CancelScope(shield=True):
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.terminate()
            try:
                if not self.read_only:
                    async with pool.acquire() as conn:
                        await self._lease.release(conn)
            except Exception as exc:  # the lease then lapses by itself
                logger.warning("store_lease_not_released", store=self.location, error=str(exc))
            finally:
                await pool.close()

    def _settings(self) -> dict[str, str]:
        """A transaction this engine leaves open (it stalled in the middle) is ended by
        the server after twice the lease time (10 s at least), so the rows it locked
        can be taken over."""
        stall_ms = int(max(10.0, 2 * self._lease.seconds) * 1000)
        return {"idle_in_transaction_session_timeout": str(stall_ms)}

    async def _listen(self, asyncpg: Any) -> None:
        try:
            self._listener = await asyncpg.connect(self.dsn)
            for channel in self._wakeups:
                await self._listener.add_listener(channel, self._notified)
        except _driver_errors(asyncpg) as exc:
            await self.__aexit__(None, None, None)
            raise StoreError(self.location, f"cannot listen: {exc}") from exc

    def _notified(self, connection: object, pid: object, channel: str, payload: object) -> None:
        self._wakeups[channel].set()

    async def _check_schema(self, conn: Any) -> None:
        version = await self._version(conn)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(self.location, found=version, supported=SCHEMA_VERSION)
        if version == SCHEMA_VERSION:
            return
        if self.read_only and version:
            reason = f"schema version {version} is older than this library's {SCHEMA_VERSION}"
            raise StoreError(self.location, f"{reason}; open it with an engine once to upgrade")
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
        except _driver_errors(asyncpg) as exc:
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
                    "INSERT INTO actors_runs (id, workflow, definition, event, key, status,"
                    " created_at, updated_at, ended_at, output, owner, fence, parent_run_id)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12)"
                    " ON CONFLICT (key) DO NOTHING RETURNING id",
                    run.id, run.workflow, digest, _dumps(run.event), run.key, run.status,
                    run.created_at, run.updated_at, run.ended_at, _dumps(run.output),
                    self._lease.engine_id, run.parent_run_id,
                )  # fmt: skip
            if inserted is not None:
                self._lease.hold(run.id, 1)
                return run
            row = await conn.fetchrow(f"{_RUN_SELECT} WHERE r.key = $1", run.key)
            return _run_record(tuple(row))

        record: RunRecord = await self._call(create)
        return record

    async def record_attempt(self, run_id: str, step: str, attempt: int) -> None:
        args = (*self._lease.args(run_id), step, attempt, time.time())
        await self._call(lambda conn: conn.execute(_MARK_ATTEMPT, *args))

    async def confirm_held(self, run_id: str) -> None:
        """Before a step attempt: raise RunLost unless this engine still holds the run
        (no I/O while the lease was renewed recently)."""
        if not self._lease.fresh():
            await self._call(lambda conn: self._lease.confirm(conn, run_id))

    async def record_step(self, step: StepRecord) -> None:
        args = (*self._lease.args(step.run_id), *_step_row(step)[1:])
        if await self._call(lambda conn: conn.fetchval(_PUT_STEP, *args)) is None:
            raise self._lease.lost(step.run_id)

    async def finish_run(
        self, run_id: str, *, status: str, output: Any, steps: Sequence[StepRecord]
    ) -> None:
        fenced = self._lease.args(run_id)
        rows = [(*fenced, *_step_row(step)[1:]) for step in steps]
        now, encoded = time.time(), _dumps(output)

        async def finish(conn: Any) -> bool:
            async with conn.transaction():
                updated = await conn.fetchval(
                    f"{FENCED}UPDATE actors_runs SET status = $4, output = $5, ended_at = $6,"
                    " updated_at = $6 WHERE id = $2 AND EXISTS (SELECT 1 FROM ok) RETURNING 1",
                    *fenced, status, encoded, now,
                )  # fmt: skip
                if updated is not None and rows:
                    await conn.executemany(_PUT_STEP, rows)
            return updated is not None

        if not await self._call(finish):
            raise self._lease.lost(run_id)
        self._lease.drop(run_id)

    async def reopen_run(self, run_id: str, *, keep: Collection[str]) -> None:
        kept = list(keep)

        async def reopen(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM actors_steps WHERE run_id = $1 AND NOT (step = ANY($2::text[]))",
                    run_id,
                    kept,
                )
                fence = await conn.fetchval(
                    "UPDATE actors_runs SET status = 'running', output = NULL, ended_at = NULL,"
                    " updated_at = $1, owner = $3, fence = fence + 1 WHERE id = $2 RETURNING fence",
                    time.time(), run_id, self._lease.engine_id,
                )  # fmt: skip
                if fence is not None:
                    self._lease.hold(run_id, fence)

        await self._call(reopen)

    async def prune(self, *, ended_before: float) -> int:
        async def prune(conn: Any) -> int:
            async with conn.transaction():
                status = await conn.execute(
                    "DELETE FROM actors_runs WHERE ended_at IS NOT NULL AND ended_at < $1",
                    ended_before,
                )
                await conn.execute("DELETE FROM actors_events WHERE created_at < $1", ended_before)
                await conn.execute("DELETE FROM actors_bus WHERE created_at < $1", ended_before)
                await conn.execute(
                    "DELETE FROM actors_definitions d WHERE NOT EXISTS"
                    " (SELECT 1 FROM actors_runs r WHERE r.definition = d.hash)"
                )
            return int(status.split()[-1])

        count: int = await self._call(prune)
        return count

    # -- events shared between engines (see actors._cluster_triggers) ---------------

    async def record_event(self, topic: str, payload: Any) -> int:
        """Record a published event (committed when this returns) and notify engines."""
        found = first_non_json(payload, "payload")
        if found is not None:
            raise InvalidOption(found[0], f"{found[1]} (a shared event's payload is JSON data)")
        query = (
            "WITH e AS (INSERT INTO actors_events (topic, payload) VALUES ($1, $2) RETURNING id)"
            f" SELECT id, pg_notify('{_CHANNEL}', id::text) FROM e"
        )
        row = await self._call(lambda conn: conn.fetchrow(query, topic, _dumps(payload)))
        return int(row["id"])

    async def events_after(self, tail: Tail, limit: int) -> list[TailRow]:
        """Recorded events past ``tail`` (see :mod:`actors._cluster_tail`), oldest
        first; each row's data is ``(topic, payload)``."""
        rows = await self._call(lambda conn: rows_after(conn, "events", tail, limit), write=False)
        return [row._replace(data=(row.data[0], json.loads(str(row.data[1])))) for row in rows]

    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` name recorded runs."""
        if not keys:
            return set()
        query = "SELECT key FROM actors_runs WHERE key = ANY($1::text[])"
        rows = await self._call(lambda conn: conn.fetch(query, list(keys)), write=False)
        return {row[0] for row in rows}

    async def wait_for_events(self, timeout: float, *, channel: str = _CHANNEL) -> None:
        """Return when an engine recorded an event (a notification) or after ``timeout``."""
        with anyio.move_on_after(timeout):
            await self._wakeups[channel].wait()
        self._wakeups[channel] = anyio.Event()

    # -- lifecycle events shared between engines (see actors._cluster_bus) -----------

    async def record_bus_events(self, events: Sequence[tuple[str, str]]) -> None:
        """Append this engine's bus events, ``(topic, JSON text)``, in order."""
        engine = self._lease.engine_id
        await self._call(lambda conn: insert_bus(conn, engine, events))

    async def bus_head(self) -> Tail:
        """A tail of the shared bus events that takes those recorded from now on."""
        tail: Tail = await self._call(lambda conn: head(conn, "bus"), write=False)
        return tail

    async def bus_after(self, tail: Tail, limit: int) -> list[TailRow]:
        """Other engines' bus events past ``tail``; each row's data is ``(JSON text,)``."""
        me = self._lease.engine_id
        rows: list[TailRow] = await self._call(
            lambda conn: rows_after(conn, "bus", tail, limit, not_engine=me), write=False
        )
        return rows

    async def wait_for_bus(self, timeout: float) -> None:
        """Return when an engine recorded bus events, or after ``timeout``."""
        await self.wait_for_events(timeout, channel=BUS_CHANNEL)

    async def prune_bus(self, keep: float) -> None:
        """Forget shared bus events older than ``keep`` seconds."""
        await self._call(lambda conn: prune_bus(conn, keep))

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
        """Read-only: every running run. Otherwise the running runs nobody holds (their
        engine's lease lapsed), which this engine takes over by this call."""
        if self.read_only:
            query = f"{_RUN_SELECT} WHERE r.status = 'running' ORDER BY r.created_at"
            rows = await self._call(lambda conn: conn.fetch(query), write=False)
            return [_run_record(tuple(row)) for row in rows]
        return await self.claim_runs(_CLAIM_LIMIT)

    async def claim_runs(self, limit: int) -> list[RunRecord]:
        """Take over up to ``limit`` running runs nobody holds, oldest first."""
        query = f"{_RUN_SELECT} WHERE r.id = ANY($1::text[]) ORDER BY r.created_at"

        async def claim(conn: Any) -> list[Any]:
            return list(await conn.fetch(query, await self._lease.claim(conn, limit)))

        return [_run_record(tuple(row)) for row in await self._call(claim)]


def _driver_errors(asyncpg: Any) -> tuple[type[BaseException], ...]:
    """What the driver raises for a failed call (a connection the server ended while
    this engine was stalled can leave asyncpg's protocol confused: InternalClientError)."""
    return (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def _driver(location: str) -> Any:
    try:
        import asyncpg
    except ImportError:
        reason = "needs the asyncpg driver: pip install 'actors[postgres]'"
        raise StoreError(location, reason) from None
    return asyncpg
