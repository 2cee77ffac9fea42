"""The PostgreSQL run store against a real server: records, keys, schema, errors."""

from __future__ import annotations

import time

import anyio
import asyncpg
import pytest

from actors import Engine, PostgresStore
from actors._store import RunRecord, StepRecord, open_store
from actors._store_postgres import SCHEMA_VERSION
from actors.errors import InvalidOption, StoreError, StoreReadOnly, StoreVersionError

pytestmark = pytest.mark.anyio

DEFINITION = {"name": "wf", "steps": {"a": {"js": "return 1;"}}}


def a_run(run_id: str, *, key: str | None = None) -> RunRecord:
    now = time.time()
    return RunRecord(run_id, "wf", DEFINITION, {"n": 1}, key, "running", now, now)


async def test_runs_and_steps_read_back_as_recorded(postgres_dsn: str) -> None:
    error = {"type": "ScriptFailed", "name": "TypeError", "message": "boom"}
    async with PostgresStore(postgres_dsn) as store:
        await store.create_run(a_run("r1"))
        await store.record_attempt("r1", "a", 2)
        await store.record_step(StepRecord("r1", "b", "failed", attempts=3, error=error))
        await store.finish_run(
            "r1",
            status="failed",
            output={"z": [1, "ü"]},
            steps=[StepRecord("r1", "c", "completed", 1, {"k": 1}, logs=(("log", "hi"),))],
        )
    async with PostgresStore(postgres_dsn, read_only=True) as store:
        run = await store.get_run("r1")
        steps = {s.step: s for s in await store.get_steps("r1")}
    assert run is not None and run.status == "failed" and run.output == {"z": [1, "ü"]}
    assert run.definition == DEFINITION and run.ended_at is not None
    assert steps["a"].status == "running" and steps["a"].attempts == 2
    assert steps["b"].error == error and steps["c"].logs == (("log", "hi"),)


async def test_a_key_names_one_run_across_stores_started_together(postgres_dsn: str) -> None:
    found: list[str] = []

    async def start(run_id: str) -> None:
        async with PostgresStore(postgres_dsn) as store:  # each its own connections
            found.append((await store.create_run(a_run(run_id, key="order-7"))).id)

    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(start, f"r{n}")
    assert len(found) == 5 and len(set(found)) == 1


async def test_the_schema_is_created_once_with_its_version(postgres_dsn: str) -> None:
    async with anyio.create_task_group() as group:  # engines starting together
        for _ in range(4):
            group.start_soon(_open_and_close, postgres_dsn)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT version FROM actors_meta") == SCHEMA_VERSION
        assert await conn.fetchval("SELECT count(*) FROM actors_meta") == 1
        await conn.execute("UPDATE actors_meta SET version = $1", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    with pytest.raises(StoreVersionError) as caught:
        await _open_and_close(postgres_dsn)
    assert caught.value.found == SCHEMA_VERSION + 1


async def _open_and_close(dsn: str) -> None:
    async with PostgresStore(dsn):
        pass


async def test_read_only_neither_creates_nor_writes(postgres_dsn: str) -> None:
    with pytest.raises(StoreError, match="not a run store"):
        async with PostgresStore(postgres_dsn, read_only=True):
            pass
    await _open_and_close(postgres_dsn)
    async with PostgresStore(postgres_dsn, read_only=True) as store:
        with pytest.raises(StoreReadOnly):
            await store.create_run(a_run("r1"))


async def test_prune_forgets_ended_runs_and_their_steps(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn) as store:
        for run_id in ("old", "live"):
            await store.create_run(a_run(run_id))
            await store.record_step(StepRecord(run_id, "a", "completed", 1, 1))
        await store.finish_run("old", status="completed", output=1, steps=[])
        assert await store.prune(ended_before=time.time() + 1) == 1
        assert await store.get_run("old") is None and await store.get_steps("old") == []
        assert [r.id for r in await store.list_runs()] == ["live"]


async def test_bad_addresses_are_clear_errors(postgres_server: object) -> None:
    with pytest.raises(InvalidOption):
        PostgresStore("/tmp/runs.db")
    with pytest.raises(InvalidOption):
        Engine(store="mysql://x/y")
    store = open_store("postgresql://me:secret@127.0.0.1:1/nowhere")
    assert isinstance(store, PostgresStore) and "secret" not in store.location
    with pytest.raises(StoreError, match="cannot connect") as caught:
        async with store:
            pass
    assert "secret" not in str(caught.value)


async def test_a_version_1_database_is_migrated_and_its_runs_taken_over(
    postgres_dsn: str,
) -> None:
    from actors._store_postgres import _MIGRATIONS

    conn = await asyncpg.connect(postgres_dsn)
    try:  # the schema as the first release left it, with a run under way
        await conn.execute("CREATE TABLE actors_meta (version INTEGER NOT NULL)")
        await conn.execute(_MIGRATIONS[0])
        await conn.execute("INSERT INTO actors_meta VALUES (1)")
        await conn.execute("INSERT INTO actors_definitions VALUES ('h', $1)", '{"name": "wf"}')
        await conn.execute(
            "INSERT INTO actors_runs VALUES ('r1', 'wf', 'h', '{}', NULL, 'running', 1, 1)"
        )
    finally:
        await conn.close()
    async with PostgresStore(postgres_dsn) as store:
        assert [r.id for r in await store.unfinished_runs()] == ["r1"]
        await store.record_step(StepRecord("r1", "a", "completed", 1, 5))  # held now
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT version FROM actors_meta") == SCHEMA_VERSION
    finally:
        await conn.close()
