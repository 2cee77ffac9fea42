"""Waiting steps survive a restart of the engine on a store (SQLite and PostgreSQL):
the wake time and the timeout recorded when the step began waiting are honoured."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import (
    Engine,
    EventBus,
    PostgresStore,
    SQLiteStore,
    StepCompleted,
    StepFailed,
    StepWaiting,
    Subscription,
    WaitTimedOut,
    Workflow,
)
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def workflow(**wait: Any) -> Workflow:
    wf = Workflow("durable_wait")
    wf.add_step("first", js="return ctx.event.n;")
    wf.add_step("wait", after=["first"], **wait)
    wf.add_step("last", after=["first", "wait"], js="return [deps.first, deps.wait];")
    return wf


async def next_event(events: Subscription, kind: type[Any], step: str) -> Any:
    with anyio.fail_after(60):
        while True:
            event = await events.receive()
            if isinstance(event, kind) and event.step == step:
                return event


async def stored_steps(address: str, run_id: str) -> dict[str, Any]:
    reader = SQLiteStore if "://" not in address else PostgresStore
    async with reader(address, read_only=True) as store:
        return {s.step: (s.status, s.result) for s in await store.get_steps(run_id)}


async def wait_then_stop(pool: RuntimePool, address: str, wf: Workflow) -> tuple[str, StepWaiting]:
    """Start a run, see its step begin waiting, and stop the engine under it."""
    bus = EventBus()
    async with (
        bus.subscribe("step.waiting") as events,
        Engine(pool=pool, store=address, bus=bus) as engine,
    ):
        handle = await engine.start(wf, event={"n": 1})
        waiting = await next_event(events, StepWaiting, "wait")
    return handle.id, waiting


def resuming(pool: RuntimePool, address: str) -> tuple[EventBus, Engine]:
    """An engine that resumes the store's runs, on a bus one can subscribe to first."""
    bus = EventBus()
    return bus, Engine(pool=pool, store=address, bus=bus)


async def test_a_sleeping_run_resumes_and_wakes_at_the_recorded_time(store_address: str) -> None:
    wf = workflow(sleep=1.0)
    async with RuntimePool(size=1) as pool:
        run_id, before = await wait_then_stop(pool, store_address, wf)
        stored = await stored_steps(store_address, run_id)
        assert stored["wait"] == ("waiting", {"until": before.until, "topic": None, "match": None})
        bus, engine = resuming(pool, store_address)
        async with bus.subscribe("step.*") as events, engine:
            after = await next_event(events, StepWaiting, "wait")
            done = await next_event(events, StepCompleted, "wait")
            with anyio.fail_after(60):
                result = await engine.wait(run_id)
    assert after.until == before.until  # the remaining time, not a new second
    assert done.timestamp >= before.until
    assert result.status == "completed" and result.output == [1, None]


async def test_a_waiting_run_resumes_and_takes_an_event_published_after(
    store_address: str,
) -> None:
    wf = workflow(wait_for={"topic": "ok", "match": "n", "timeout": 600})
    async with RuntimePool(size=1) as pool:
        run_id, before = await wait_then_stop(pool, store_address, wf)
        bus, engine = resuming(pool, store_address)
        async with bus.subscribe("step.waiting") as events, engine:
            after = await next_event(events, StepWaiting, "wait")
            await engine.bus.publish("ok", {"n": 1, "yes": True})
            with anyio.fail_after(60):
                result = await engine.wait(run_id)
    assert (after.value, after.until) == (1, before.until)
    assert result.status == "completed" and result.output == [1, {"n": 1, "yes": True}]
    assert (await stored_steps(store_address, run_id))["wait"][0] == "completed"


async def test_a_wait_timeout_counts_across_the_restart(store_address: str) -> None:
    wf = workflow(wait_for={"topic": "never", "timeout": 1.0})
    async with RuntimePool(size=1) as pool:
        run_id, before = await wait_then_stop(pool, store_address, wf)
        bus, engine = resuming(pool, store_address)
        async with bus.subscribe("step.failed") as events, engine:
            failed = await next_event(events, StepFailed, "wait")
            with anyio.fail_after(60):
                result = await engine.wait(run_id)
            stored = await engine.get_run(run_id)  # read back from the store
    assert before.until is not None and failed.timestamp >= before.until
    assert result.status == "failed"
    for error in (result.steps["wait"].error, stored.steps["wait"].error):
        assert isinstance(error, WaitTimedOut)
        assert (error.topic, error.timeout) == ("never", 1.0)
