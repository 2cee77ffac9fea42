"""Many engines on one PostgreSQL database: leases, takeover, fencing tokens.

Steps run on the fake runner (the scheduler and the store are under test); a real
PostgreSQL server backs every test. Killed and stopped processes are in
test_pg_chaos.py.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from actors import Engine, PostgresStore, StepCompleted, Workflow
from actors._store import RunRecord, StepRecord
from actors.errors import RunLost, UnknownRun
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


def chain() -> Workflow:
    wf = Workflow("chain")
    wf.add_step("a", js="A")
    wf.add_step("b", js="B", after=["a"])
    return wf


def counting(calls: list[str], *, hang_b: bool = False) -> FakeRunner:
    async def a(s: FakeScript) -> Any:
        calls.append("a")
        return s.ctx["event"]["n"] + 1

    async def b(s: FakeScript) -> Any:
        calls.append("b")
        if hang_b:
            await anyio.sleep_forever()
        return s.deps["a"] * 10

    return FakeRunner({"A": a, "B": b})


async def expire_lease(dsn: str, engine_id: str) -> None:
    """What the others see of an engine that stalled past its lease."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE actors_engines SET lease_until = 0 WHERE id = $1", engine_id)
    finally:
        await conn.close()


async def test_a_stalled_owner_records_nothing_for_a_run_taken_from_it(
    postgres_dsn: str,
) -> None:
    now = time.time()
    run = RunRecord("r1", "chain", chain().to_dict(), {"n": 1}, None, "running", now, now)
    async with PostgresStore(postgres_dsn, lease=60) as first:
        await first.create_run(run)
        await first.record_step(StepRecord("r1", "a", "completed", 1, result=2))
        async with PostgresStore(postgres_dsn, lease=60) as second:
            assert await second.unfinished_runs() == []  # held by a live lease
            await expire_lease(postgres_dsn, first.engine_id)
            assert [r.id for r in await second.unfinished_runs()] == ["r1"]
            assert await second.unfinished_runs() == []  # taken once
            with capture_logs() as logs:
                with pytest.raises(RunLost):
                    await first.record_step(StepRecord("r1", "b", "completed", 1, result=99))
                with pytest.raises(RunLost):
                    await first.finish_run("r1", status="failed", output=None, steps=[])
            assert [e["event"] for e in logs] == ["run_lost"]
            assert logs[0]["run_id"] == "r1"
            await second.record_step(StepRecord("r1", "b", "completed", 1, result=20))
            await second.finish_run("r1", status="completed", output=20, steps=[])
            record = await second.get_run("r1")
            steps = {s.step: s.result for s in await second.get_steps("r1")}
    assert record is not None and record.status == "completed" and record.output == 20
    assert steps == {"a": 2, "b": 20}


async def test_engines_claiming_together_take_each_run_once(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn) as seed:
        for n in range(40):
            now = time.time()
            await seed.create_run(
                RunRecord(f"r{n}", "chain", chain().to_dict(), {"n": n}, None, "running", now, now)
            )
    taken: list[str] = []

    async def claim() -> None:
        async with PostgresStore(postgres_dsn) as store:
            taken.extend(r.id for r in await store.unfinished_runs())

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(claim)
    assert sorted(taken) == sorted(f"r{n}" for n in range(40))


@pytest.mark.timeout(60)
async def test_a_stopped_engines_run_is_finished_by_another_from_its_steps(
    postgres_dsn: str,
) -> None:
    first_calls: list[str] = []
    second_calls: list[str] = []
    second = Engine(pool=counting(second_calls), store=PostgresStore(postgres_dsn, lease=1.0))
    async with second:
        first = Engine(
            pool=counting(first_calls, hang_b=True), store=PostgresStore(postgres_dsn, lease=1.0)
        )
        async with first, first.bus.subscribe("step.completed") as events:
            handle = await first.start(chain(), event={"n": 4})
            with anyio.fail_after(10):
                event = await events.receive()
            assert isinstance(event, StepCompleted) and event.step == "a"
        # first stopped mid-run: its lease is given up, the run is left running
        with anyio.fail_after(20):
            while True:
                try:
                    result = await second.wait(handle.id)
                    break
                except UnknownRun:  # not taken over yet
                    await anyio.sleep(0.1)
    assert result.status == "completed" and result.output == 50
    assert first_calls[0] == "a" and second_calls == ["b"]  # a ran once, on the first
