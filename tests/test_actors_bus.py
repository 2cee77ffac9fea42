"""The event bus: patterns, slow-subscriber policies, isolation, causal order, triggers."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from actors import (
    Engine,
    EventBus,
    LifecycleEvent,
    Published,
    RunCompleted,
    StepCompleted,
    Workflow,
)
from actors._subscription import topic_matches
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


def test_topic_patterns_are_globs() -> None:
    assert topic_matches("step.*", "step.completed")
    assert not topic_matches("step.*", "run.completed")
    assert topic_matches("*", "order.created")
    assert topic_matches("run.c*", "run.cancelled")
    assert not topic_matches("Step.*", "step.failed")


async def test_subscribers_receive_matching_publishes_only() -> None:
    bus = EventBus()
    async with bus.subscribe("order.*") as orders, bus.subscribe("*") as everything:
        await bus.publish("order.created", {"id": 1})
        await bus.publish("user.deleted", {"id": 2})
        first = await orders.receive()
        assert isinstance(first, Published)
        assert (first.topic, first.payload) == ("order.created", {"id": 1})
        assert [(await everything.receive()).topic for _ in range(2)] == [
            "order.created",
            "user.deleted",
        ]
        assert orders.statistics().queued == 0
    assert bus.statistics().published == 2
    assert bus.statistics().subscribers == ()


async def test_drop_oldest_keeps_the_newest_and_counts_and_logs_drops() -> None:
    bus = EventBus()
    with capture_logs() as logs:
        async with bus.subscribe("t", max_buffer=2, policy="drop_oldest") as events:
            for n in range(5):
                await bus.publish("t", n)
            received = [(await events.receive()) for _ in range(2)]
            assert [e.payload for e in received if isinstance(e, Published)] == [3, 4]
            assert events.statistics().dropped == 3
            assert bus.statistics().dropped == 3
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warnings[0]["event"] == "subscriber_dropping_events"
    assert warnings[0]["pattern"] == "t"
    assert warnings[-1]["event"] == "subscriber_closed_with_drops"
    assert bus.statistics().dropped == 3


async def test_block_policy_waits_up_to_the_timeout_then_drops() -> None:
    bus = EventBus()
    async with bus.subscribe("t", max_buffer=1, policy="block", block_timeout=0.05) as events:
        await bus.publish("t", 1)
        before = anyio.current_time()
        with anyio.fail_after(5):
            await bus.publish("t", 2)
        assert anyio.current_time() - before >= 0.04
        assert events.statistics().dropped == 1
        assert (await events.receive()).topic == "t"


async def test_block_policy_applies_backpressure_without_losing_events() -> None:
    bus = EventBus()
    got: list[Any] = []
    async with bus.subscribe("t", max_buffer=2, policy="block", block_timeout=math.inf) as sub:

        async def slow_reader() -> None:
            async for event in sub:
                assert isinstance(event, Published)
                got.append(event.payload)
                await anyio.sleep(0.001)
                if len(got) == 20:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_reader)
            for n in range(20):
                await bus.publish("t", n)
    assert got == list(range(20))
    assert bus.statistics().dropped == 0


async def test_a_failing_subscriber_does_not_disturb_others_or_publishers() -> None:
    bus = EventBus()
    received: list[Any] = []

    async def crashing() -> None:
        async with bus.subscribe("*", policy="block", block_timeout=math.inf) as events:
            await events.receive()
            raise RuntimeError("subscriber bug")

    async with bus.subscribe("*", max_buffer=100) as healthy:
        with pytest.raises(ExceptionGroup):
            async with anyio.create_task_group() as tg:
                tg.start_soon(crashing)
                await anyio.wait_all_tasks_blocked()
                for n in range(10):
                    await bus.publish("t", n)
        async for event in healthy:
            assert isinstance(event, Published)
            received.append(event.payload)
            if len(received) == 10:
                break
    assert received == list(range(10))


async def test_a_cancelled_subscriber_releases_a_blocked_publisher() -> None:
    bus = EventBus()
    async with anyio.create_task_group() as tg:
        subscribed = anyio.Event()

        async def stuck_subscriber() -> None:
            async with bus.subscribe("*", max_buffer=1, policy="block", block_timeout=math.inf):
                subscribed.set()
                await anyio.sleep_forever()

        tg.start_soon(stuck_subscriber)
        await subscribed.wait()
        await bus.publish("t", 1)  # fills the queue

        async def cancel_soon() -> None:
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()

        tg.start_soon(cancel_soon)
        with anyio.fail_after(5), anyio.CancelScope(shield=True):
            await bus.publish("t", 2)  # blocks until the subscriber is gone
    assert bus.statistics().subscribers == ()


async def test_each_run_s_events_arrive_in_causal_order() -> None:
    async def jitter(s: FakeScript) -> Any:
        await anyio.sleep(0.001 * (hash(s.step) % 5))
        return s.step

    wf = Workflow("diamond")
    wf.add_step("top", js="jitter")
    wf.add_step("left", js="jitter", after=["top"])
    wf.add_step("right", js="jitter", after=["top"])
    wf.add_step("bottom", js="jitter", after=["left", "right"])
    upstream = {"top": [], "left": ["top"], "right": ["top"], "bottom": ["left", "right"]}
    async with (
        Engine(pool=FakeRunner({"jitter": jitter})) as engine,
        engine.bus.subscribe("*", max_buffer=10_000) as events,
    ):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(engine.run, wf)
        assert events.statistics().dropped == 0
        per_run: dict[str, list[LifecycleEvent]] = {}
        for _ in range(20 * 10):
            event = await events.receive()
            assert isinstance(event, LifecycleEvent)
            per_run.setdefault(event.run_id, []).append(event)
    assert len(per_run) == 20
    for run_events in per_run.values():
        topics = [(e.topic, e.step) for e in run_events]
        assert topics[0] == ("run.started", None)
        assert topics[-1] == ("run.completed", None)
        for step, deps in upstream.items():
            started = topics.index(("step.started", step))
            assert topics.index(("step.completed", step)) > started
            for dep in deps:
                assert topics.index(("step.completed", dep)) < started


async def test_lifecycle_events_carry_their_fields() -> None:
    async def logging_step(s: FakeScript) -> Any:
        s.log("hello")
        return [1, 2]

    wf = Workflow("w")
    wf.add_step("s", js="log")
    async with (
        Engine(pool=FakeRunner({"log": logging_step})) as engine,
        engine.bus.subscribe("*") as events,
    ):
        result = await engine.run(wf)
        seen = [await events.receive() for _ in range(4)]
    assert [e.topic for e in seen] == [
        "run.started",
        "step.started",
        "step.completed",
        "run.completed",
    ]
    completed = seen[2]
    assert isinstance(completed, StepCompleted)
    assert (completed.run_id, completed.workflow, completed.step, completed.attempt) == (
        result.id,
        "w",
        "s",
        1,
    )
    assert completed.result == [1, 2] and completed.duration >= 0
    assert [line.text for line in completed.logs] == ["hello"]
    final = seen[3]
    assert isinstance(final, RunCompleted) and final.output == [1, 2]
    with pytest.raises(AttributeError):
        final.output = None  # type: ignore[misc]


async def test_a_publish_matching_a_trigger_starts_a_run() -> None:
    async def echo(s: FakeScript) -> Any:
        return s.ctx["event"]

    wf = Workflow("on_order")
    wf.add_step("echo", js="echo")
    engine = Engine(pool=FakeRunner({"echo": echo}))
    engine.on("order.*", wf)  # before the engine starts
    async with engine, engine.bus.subscribe("run.*") as events:
        await engine.bus.publish("user.created", {"ignored": True})
        await engine.bus.publish("order.created", {"id": 7})
        with anyio.fail_after(5):
            started, finished = await events.receive(), await events.receive()
    assert started.topic == "run.started"
    assert isinstance(finished, RunCompleted)
    assert finished.output == {"id": 7}


async def test_triggers_registered_while_running_serve_every_publish() -> None:
    wf = Workflow("count")
    wf.add_step("one", js="return 1;")
    async with Engine(pool=FakeRunner()) as engine:
        engine.on("tick", wf)
        async with engine.bus.subscribe("run.completed", max_buffer=100) as done:
            for _ in range(30):
                await engine.bus.publish("tick", {})
            with anyio.fail_after(5):
                finished = [await done.receive() for _ in range(30)]
    assert len({e.run_id for e in finished if isinstance(e, RunCompleted)}) == 30


async def test_a_slow_subscriber_does_not_hold_up_runs_with_drop_oldest() -> None:
    wf = Workflow("w")
    for n in range(50):
        wf.add_step(f"s{n}", js="return 1;", after=[f"s{n - 1}"] if n else [])
    async with (
        Engine(pool=FakeRunner()) as engine,
        engine.bus.subscribe("*", max_buffer=4, policy="drop_oldest") as never_read,
    ):
        with anyio.fail_after(5):
            result = await engine.run(wf)
        assert result.status == "completed"
        assert never_read.statistics().dropped > 0


async def test_publish_nowait_publishes_nothing_while_a_blocking_subscriber_is_full() -> None:
    bus = EventBus()
    first, second, third = (Published(topic="t", payload=n) for n in range(3))
    async with (
        bus.subscribe("t", policy="drop_oldest", max_buffer=1) as dropping,
        bus.subscribe("t", policy="block", max_buffer=1) as blocking,
    ):
        assert bus.publish_event_nowait(first)
        assert not bus.publish_event_nowait(second)  # `blocking` is full: nobody gets it
        assert (await blocking.receive()).payload == 0
        assert bus.publish_event_nowait(third)  # `dropping` drops `first` for it
        assert [(await s.receive()).payload for s in (dropping, blocking)] == [2, 2]
        assert (dropping.statistics().dropped, blocking.statistics().dropped) == (1, 0)
    assert bus.statistics().published == 2
