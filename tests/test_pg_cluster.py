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

    async def claim(store: PostgresStore) -> None:
        taken.extend(r.id for r in await store.unfinished_runs())

    stores = [PostgresStore(postgres_dsn) for _ in range(4)]
    async with (
        stores[0],
        stores[1],
        stores[2],
        stores[3],  # all open, holding leases
        anyio.create_task_group() as group,
    ):
        for store in stores:
            group.start_soon(claim, store)
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


async def wait_for_runs(engine: Engine, count: int, timeout: float = 20.0) -> list[Any]:
    with anyio.fail_after(timeout):
        while True:
            runs = await engine.runs(status="completed", limit=1000)
            if len(runs) >= count:
                return runs
            await anyio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_an_event_published_on_one_engine_starts_a_run_on_another(
    postgres_dsn: str,
) -> None:
    calls: list[str] = []
    publisher = Engine(pool=counting([]), store=postgres_dsn)
    worker = Engine(pool=counting(calls), store=postgres_dsn)
    async with publisher, worker:
        worker.on("order.*", chain())
        assert await publisher.bus.publish("order.created", {"n": 2}) == ()
        runs = await wait_for_runs(worker, 1)
    assert [r.output for r in runs] == [30] and calls == ["a", "b"]


@pytest.mark.timeout(60)
async def test_each_event_starts_one_run_whichever_engines_publish(postgres_dsn: str) -> None:
    calls: list[str] = []
    engines = [Engine(pool=counting(calls), store=postgres_dsn) for _ in range(3)]
    async with engines[0], engines[1], engines[2]:
        for engine in engines:
            engine.on("order.*", chain())
        for n in range(30):
            await engines[n % 3].bus.publish("order.created", {"n": n})
        runs = await wait_for_runs(engines[0], 30)
        await anyio.sleep(0.5)  # a duplicate start would show up meanwhile
        runs = await engines[0].runs(limit=1000)
    assert sorted(r.output for r in runs) == sorted((n + 1) * 10 for n in range(30))
    assert calls.count("a") == calls.count("b") == 30


@pytest.mark.timeout(60)
async def test_an_event_with_no_trigger_running_starts_when_one_comes_up(
    postgres_dsn: str,
) -> None:
    async with Engine(pool=counting([]), store=postgres_dsn) as publisher:
        await publisher.bus.publish("order.created", {"n": 7})
    worker = Engine(pool=counting([]), store=postgres_dsn)
    worker.on("order.*", chain())
    async with worker:
        runs = await wait_for_runs(worker, 1)
    assert [r.output for r in runs] == [80]


async def test_an_engine_back_from_a_stall_confirms_its_run_before_a_step(
    postgres_dsn: str,
) -> None:
    now = time.time()
    run = RunRecord("r1", "chain", chain().to_dict(), {"n": 1}, None, "running", now, now)
    async with PostgresStore(postgres_dsn, lease=60) as first:
        await first.create_run(run)
        await first.confirm_held("r1")  # renewed recently: no question asked
        first._lease._valid_until = 0.0  # as after a stall past its lease (by its own clock)
        await first.confirm_held("r1")  # still holds it: the lease is renewed
        assert first._lease.fresh()
        async with PostgresStore(postgres_dsn, lease=60) as second:
            await expire_lease(postgres_dsn, first.engine_id)
            assert [r.id for r in await second.unfinished_runs()] == ["r1"]
            first._lease._valid_until = 0.0
            with capture_logs() as logs, pytest.raises(RunLost):
                await first.confirm_held("r1")
    assert [e["event"] for e in logs] == ["run_lost"]
