"""The SQLite run store against real SQLite files: records, keys, owners, bad files."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from actors import SQLiteStore
from actors._store import RunRecord, StepRecord
from actors._store_sqlite import SCHEMA_VERSION
from actors.errors import (
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreReadOnly,
    StoreVersionError,
)

pytestmark = pytest.mark.anyio

DEFINITION = {"name": "wf", "steps": {"a": {"js": "return 1;"}}}


def a_run(run_id: str, *, key: str | None = None, created: float | None = None) -> RunRecord:
    now = time.time() if created is None else created
    return RunRecord(
        id=run_id,
        workflow="wf",
        definition=DEFINITION,
        event={"n": 1},
        key=key,
        status="running",
        created_at=now,
        updated_at=now,
    )


def a_step(run_id: str, step: str = "a", **fields: object) -> StepRecord:
    values: dict[str, object] = {"status": "completed", "attempts": 1, "result": {"x": [1, 2]}}
    values.update(fields)
    return StepRecord(run_id=run_id, step=step, **values)  # type: ignore[arg-type]


async def test_runs_and_step_outcomes_survive_closing_the_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path) as store:
        await store.create_run(a_run("r1"))
        error = {"type": "ScriptFailed", "name": "TypeError", "message": "boom"}
        await store.record_step(a_step("r1", logs=(("log", "hello"),), duration=0.5))
        await store.record_step(a_step("r1", "b", status="failed", error=error, attempts=3))
    async with SQLiteStore(path) as store:
        run = await store.get_run("r1")
        steps = {s.step: s for s in await store.get_steps("r1")}
    assert run is not None and run.definition == DEFINITION and run.event == {"n": 1}
    assert run.status == "running" and run.ended_at is None
    assert steps["a"].result == {"x": [1, 2]} and steps["a"].logs == (("log", "hello"),)
    assert steps["a"].duration == 0.5
    assert steps["b"].status == "failed" and steps["b"].error == error
    assert steps["b"].attempts == 3


async def test_a_second_run_with_a_known_key_returns_the_first(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        first = await store.create_run(a_run("r1", key="order-42"))
        again = await store.create_run(a_run("r2", key="order-42"))
        assert first.id == again.id == "r1"
        assert await store.get_run("r2") is None


async def test_concurrent_writes_share_transactions(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        await store.create_run(a_run("r1"))
        before = store.commits
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(store.record_step, a_step("r1", f"s{i}"))
        assert len(await store.get_steps("r1")) == 200
        assert store.commits - before < 200  # group commit: many records per transaction


async def test_attempt_markers_never_overwrite_a_final_outcome(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        await store.create_run(a_run("r1"))
        await store.record_attempt("r1", "a", 1)
        await store.record_attempt("r1", "a", 2)
        await store.record_attempt("r1", "b", 1)
        await store.record_step(a_step("r1", "b", attempts=1))
        await store.record_attempt("r1", "b", 5)  # late: the outcome stays
        steps = {s.step: s for s in await store.get_steps("r1")}
    assert (steps["a"].status, steps["a"].attempts) == ("running", 2)
    assert (steps["b"].status, steps["b"].attempts) == ("completed", 1)


async def test_history_lists_newest_first_with_filters(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        for i in range(5):
            await store.create_run(a_run(f"r{i}", created=1000.0 + i))
        await store.finish_run("r1", status="failed", output=None, steps=[])
        await store.finish_run("r3", status="completed", output=7, steps=[a_step("r3")])
        newest = [r.id for r in await store.list_runs(limit=3)]
        failed = [r.id for r in await store.list_runs(status="failed")]
        none = await store.list_runs(workflow="other")
        unfinished = [r.id for r in await store.unfinished_runs()]
        done = await store.get_run("r3")
    assert newest == ["r4", "r3", "r2"]
    assert failed == ["r1"] and none == []
    assert unfinished == ["r0", "r2", "r4"]
    assert done is not None and done.output == 7 and done.ended_at is not None


async def test_reopening_a_run_forgets_the_steps_that_will_run_again(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        await store.create_run(a_run("r1"))
        steps = [a_step("r1", "a"), a_step("r1", "b", status="failed")]
        await store.finish_run("r1", status="failed", output=None, steps=steps)
        await store.reopen_run("r1", keep=["a"])
        run = await store.get_run("r1")
        kept = [s.step for s in await store.get_steps("r1")]
    assert run is not None and run.status == "running" and run.ended_at is None
    assert kept == ["a"]


async def test_prune_deletes_only_runs_that_ended_before_the_cut(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "runs.db") as store:
        for run_id in ("old", "new", "open"):
            await store.create_run(a_run(run_id))
            await store.record_step(a_step(run_id))
        await store.finish_run("old", status="completed", output=1, steps=[])
        cut = time.time()
        await store.finish_run("new", status="completed", output=1, steps=[])
        assert await store.prune(ended_before=cut) == 1
        assert await store.get_run("old") is None and await store.get_steps("old") == []
        assert await store.get_run("new") is not None
        assert await store.get_run("open") is not None


async def test_a_second_owner_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path):
        with pytest.raises(StoreLocked) as caught:
            async with SQLiteStore(path):
                pass
    assert caught.value.pid == os.getpid()
    assert caught.value.hostname == socket.gethostname()
    assert f"process {os.getpid()} on {socket.gethostname()}" in str(caught.value)
    async with SQLiteStore(path) as store:  # released on close
        assert await store.list_runs() == []


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreVersionError, match="schema version 99 is newer") as caught:
        async with SQLiteStore(path):
            pass
    assert (caught.value.found, caught.value.supported) == (99, SCHEMA_VERSION)


async def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    garbage = b"this is not a database, " * 100
    path.write_bytes(garbage)
    with pytest.raises(StoreCorrupt, match="not a database"):
        async with SQLiteStore(path):
            pass
    assert path.read_bytes() == garbage


async def test_a_path_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="unable to open"):
        async with SQLiteStore(tmp_path / "dir.db"):
            pass


async def test_a_full_disk_fails_the_write_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path) as store:
        await store.create_run(a_run("r1"))
        await store.record_step(a_step("r1", "a"))
        await store._run().call(_freeze_size)  # the disk is full from now on
        with pytest.raises(StoreFull, match="full"):
            await store.record_step(a_step("r1", "big", result="x" * 100_000))
        assert [s.step for s in await store.get_steps("r1")] == ["a"]  # still serving reads
    async with SQLiteStore(path) as store:
        assert [s.step for s in await store.get_steps("r1")] == ["a"]
        await store.record_step(a_step("r1", "big", result="x" * 100_000))  # room again


def _freeze_size(conn: sqlite3.Connection) -> None:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_read_only_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    anyio.run(_make_store, path)
    before = path.read_bytes()
    with _read_only(path), pytest.raises(StoreReadOnly, match="readonly") as caught:
        anyio.run(_make_store, path)
    assert path.read_bytes() == before
    assert isinstance(caught.value, StoreError)


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` cannot be written, even by root (who ignores file modes)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("root, and chattr +i is not available to make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def _make_store(path: Path) -> None:
    async with SQLiteStore(path) as store:
        await store.create_run(a_run(f"r{time.monotonic_ns()}"))


async def test_a_read_only_opener_reads_while_the_owner_writes(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path) as owner:
        await owner.create_run(a_run("r1"))
        async with SQLiteStore(path, read_only=True) as reader:
            assert [r.id for r in await reader.list_runs()] == ["r1"]
            await owner.record_step(a_step("r1"))
            assert [s.step for s in await reader.get_steps("r1")] == ["a"]
            with pytest.raises(StoreReadOnly):
                await reader.create_run(a_run("r2"))
    with pytest.raises(StoreError, match="not a run store"):
        sqlite3.connect(tmp_path / "empty.db").close()
        async with SQLiteStore(tmp_path / "empty.db", read_only=True):
            pass


async def test_a_version_1_file_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    from actors._store_sqlite import _MIGRATIONS

    path = tmp_path / "runs.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as the first release left it
        conn.executescript(_MIGRATIONS[0])
        conn.execute("INSERT INTO definitions VALUES ('h', ?)", ('{"name": "wf"}',))
        row = "'r1', 'wf', 'h', '{}', NULL, 'running', 1, 1, NULL, NULL"
        conn.execute(f"INSERT INTO runs VALUES ({row})")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    with pytest.raises(StoreError, match="schema version 1 is older than this library's 2"):
        async with SQLiteStore(path, read_only=True):
            pass
    async with SQLiteStore(path) as store:
        (old,) = await store.unfinished_runs()
        assert (old.id, old.parent_run_id) == ("r1", None)
        child = dataclasses.replace(a_run("r2"), parent_run_id="r1")
        await store.create_run(child)
    async with SQLiteStore(path, read_only=True) as store:
        found = await store.get_run("r2")
    assert found is not None and found.parent_run_id == "r1"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
