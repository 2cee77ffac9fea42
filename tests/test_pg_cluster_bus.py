"""``bus.subscribe(pattern, cluster=True)``: lifecycle events of every engine on one
PostgreSQL database. Steps run on the fake runner; a real server backs every test."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Engine, EventBus, PostgresStore, Workflow
from actors._cluster_codec import decode_event, encode_event
from actors._cluster_tail import Position, Tail, TailRow
from actors._events import BusEvent, RunFailed, StepCompleted, StepLogged
from actors.errors import ClusterUnavailable, ScriptFailed
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio

BIG = "x" * 20_000  # past NOTIFY's 8000-byte payload limit


def chain() -> Workflow:
    wf = Workflow("chain")
    wf.add_step("a", js="A")
    wf.add_step("b", js="B", after=["a"])
    return wf


def runner() -> FakeRunner:
    async def a(s: FakeScript) -> Any:
        return {"n": s.ctx["event"]["n"], "big": BIG}

    async def b(s: FakeScript) -> Any:
        return s.deps["a"]["n"] * 10

    return FakeRunner({"A": a, "B": b})


async def collect(events: Any, runs: int) -> list[BusEvent]:
    """Events until ``runs`` runs have completed."""
    got: list[BusEvent] = []
    with anyio.fail_after(30):
        async for event in events:
            got.append(event)
            if sum(e.topic == "run.completed" for e in got) == runs:
                return got
    raise AssertionError("subscription ended")


@pytest.mark.timeout(60)
async def test_a_cluster_subscriber_sees_another_engines_runs_in_causal_order(
    postgres_dsn: str,
) -> None:
    here = Engine(pool=runner(), store=postgres_dsn)
    there = Engine(pool=runner(), store=postgres_dsn)
    async with (
        here,
        there,
        here.bus.subscribe("*", cluster=True) as everywhere,
        here.bus.subscribe("*") as local,
    ):
        remote = [await there.start(chain(), event={"n": n}) for n in range(5)]
        mine = await here.start(chain(), event={"n": 9})
        got = await collect(everywhere, 6)
        for handle in [*remote, mine]:
            topics = [e.topic for e in got if getattr(e, "run_id", None) == handle.id]
            assert topics == [
                "run.started", "step.started", "step.completed",
                "step.started", "step.completed", "run.completed",
            ]  # fmt: skip
        completed = [e for e in got if isinstance(e, StepCompleted) and e.step == "a"]
        assert all(e.result["big"] == BIG for e in completed)  # 20 kB, read from the table
        local_got = await collect(local, 1)
    assert {getattr(e, "run_id", None) for e in local_got} == {mine.id}


@pytest.mark.timeout(60)
async def test_a_subscriber_without_cluster_sees_only_its_own_engines_runs(
    postgres_dsn: str,
) -> None:
    here = Engine(pool=runner(), store=postgres_dsn)
    there = Engine(pool=runner(), store=postgres_dsn)
    async with (
        here,
        there,
        here.bus.subscribe("run.*") as local,
        there.bus.subscribe("run.completed", cluster=True) as watcher,
    ):
        await (await there.start(chain(), event={"n": 1})).wait()
        mine = await here.start(chain(), event={"n": 2})
        got = await collect(local, 1)
        seen = await collect(watcher, 2)  # here's run, then there's own
    assert {e.run_id for e in got if hasattr(e, "run_id")} == {mine.id}
    assert mine.id in {e.run_id for e in seen if hasattr(e, "run_id")}


async def test_cluster_needs_an_engine_on_a_postgresql_store(tmp_path: Any) -> None:
    with pytest.raises(ClusterUnavailable, match="postgresql"):
        async with EventBus().subscribe("*", cluster=True):
            pass
    async with Engine(pool=runner(), store=str(tmp_path / "runs.db")) as engine:
        with pytest.raises(ClusterUnavailable):
            async with engine.bus.subscribe("*", cluster=True):
                pass
        async with engine.bus.subscribe("*"):  # a plain subscription is unaffected
            pass


@pytest.mark.timeout(60)
async def test_a_cluster_subscription_ends_when_its_engine_stops(postgres_dsn: str) -> None:
    async with Engine(pool=runner(), store=postgres_dsn) as engine:
        cm = engine.bus.subscribe("*", cluster=True)
        events = await cm.__aenter__()
    with anyio.fail_after(10):
        assert [e async for e in events] == []
    await cm.__aexit__(None, None, None)
    with pytest.raises(ClusterUnavailable):
        async with engine.bus.subscribe("*", cluster=True):
            pass


@pytest.mark.timeout(60)
async def test_old_shared_bus_events_are_pruned(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    async with Engine(pool=runner(), store=store) as engine:
        await engine.run(chain(), event={"n": 1})
    async with PostgresStore(postgres_dsn) as again:
        tail = Tail()
        assert len(await again.bus_after(tail, 100)) == 6
        await again.prune_bus(0)
        assert await again.bus_after(tail, 100) == []


def test_events_read_back_as_the_classes_they_were() -> None:
    error = ScriptFailed("a", "TypeError", "boom", attempt=2, stack="at a", line=3)
    failed = RunFailed(run_id="r", workflow="w", error=error, failed=("a",), output={"a": None})
    back = decode_event(encode_event(failed) or "")
    assert isinstance(back, RunFailed) and isinstance(back.error, ScriptFailed)
    assert (back.error.message, back.error.line, back.failed) == ("boom", 3, ("a",))
    logged = StepLogged(run_id="r", workflow="w", step="a", attempt=1, level="warn", text="hi")
    assert decode_event(encode_event(logged) or "") == logged


def test_a_tail_takes_each_row_once_and_moves_over_the_settled_prefix() -> None:
    def row(xid: int, id_: int, settled: bool) -> TailRow:
        return TailRow(Position(xid, id_), settled, ())

    tail = Tail()
    assert [r.position.id for r in tail.take([row(5, 1, True), row(7, 3, False)])] == [1, 3]
    assert tail.cursor == Position(5, 1) and tail.seen_ids() == [3]
    # id 2 committed late, in a transaction older than id 3's: still taken, once
    assert [r.position.id for r in tail.take([row(6, 2, True), row(7, 3, True)])] == [2]
    assert tail.cursor == Position(7, 3) and tail.seen_ids() == []


@pytest.mark.timeout(60)
async def test_an_event_committed_after_a_later_one_still_starts_its_run(
    postgres_dsn: str,
) -> None:
    import asyncpg

    insert = "INSERT INTO actors_events (topic, payload, created_at) VALUES ($1, $2, $3)"
    worker = Engine(pool=runner(), store=postgres_dsn)
    worker.on("order.*", chain())
    async with worker:
        slow = await asyncpg.connect(postgres_dsn)
        try:
            late = slow.transaction()
            await late.start()
            await slow.execute(insert, "order.late", '{"n": 1}', 0.0)  # the smaller id
            # a later id, committed first, looking old (the former 10 s window let it
            # move the reader past the uncommitted smaller id)
            other = await asyncpg.connect(postgres_dsn)
            try:
                await other.execute(insert, "order.early", '{"n": 2}', 0.0)
                await other.execute("NOTIFY actors_events")
            finally:
                await other.close()
            await wait_completed(worker, 1)
            await late.commit()
            await slow.execute("NOTIFY actors_events")
        finally:
            await slow.close()
        runs = await wait_completed(worker, 2)
    assert sorted(r.output for r in runs) == [10, 20]


async def wait_completed(engine: Engine, count: int) -> list[Any]:
    with anyio.fail_after(30):
        while True:
            runs = await engine.runs(status="completed", limit=100)
            if len(runs) >= count:
                return runs
            await anyio.sleep(0.05)
