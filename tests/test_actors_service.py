"""A service's handles: publish returns run handles, triggers stop, run timeouts, drain."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from actors import Engine, Workflow
from actors.errors import InvalidOption
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


@dataclass
class Gated:
    """A workflow whose one step ``wait`` runs until ``gate`` is set, on a fake runner."""

    gate: anyio.Event = field(default_factory=anyio.Event)
    started: anyio.Event = field(default_factory=anyio.Event)
    wf: Workflow = field(default_factory=lambda: Workflow("gated"))

    def __post_init__(self) -> None:
        self.wf.add_step("wait", js="wait")

    @property
    def runner(self) -> FakeRunner:
        async def wait(s: FakeScript) -> Any:
            self.started.set()
            await self.gate.wait()
            return s.ctx["event"]

        return FakeRunner({"wait": wait})


def echo_workflow(name: str = "echo") -> Workflow:
    wf = Workflow(name)
    wf.add_step("echo", js="echo")
    return wf


async def echo(s: FakeScript) -> Any:
    return s.ctx["event"]


# -- publish and triggers ------------------------------------------------------------------


async def test_publish_returns_the_handles_of_the_runs_it_started() -> None:
    async with Engine(pool=FakeRunner({"echo": echo})) as engine:
        engine.on("order.*", echo_workflow("first"))
        engine.on("order.created", echo_workflow("second"))
        assert await engine.bus.publish("user.created", {"id": 1}) == ()
        handles = await engine.bus.publish("order.created", {"id": 7})
        assert [h.workflow for h in handles] == ["first", "second"]
        with anyio.fail_after(2):
            results = [await h.wait() for h in handles]
    assert [r.output for r in results] == [{"id": 7}, {"id": 7}]
    assert {r.id for r in results} == {h.id for h in handles}


async def test_a_handle_from_publish_cancels_its_run() -> None:
    g = Gated()
    async with Engine(pool=g.runner) as engine:
        engine.on("job", g.wf)
        (handle,) = await engine.bus.publish("job", {})
        with anyio.fail_after(2):
            result = await handle.cancel()
    assert result.status == "cancelled"
    assert result.steps["wait"].status == "cancelled"


async def test_trigger_off_stops_new_runs_and_is_idempotent() -> None:
    async with Engine(pool=FakeRunner({"echo": echo})) as engine:
        trigger = engine.on("tick", echo_workflow())
        assert trigger.active and trigger.pattern == "tick"
        assert len(await engine.bus.publish("tick", 1)) == 1
        trigger.off()
        trigger.off()
        assert not trigger.active
        assert await engine.bus.publish("tick", 2) == ()


async def test_a_trigger_is_a_context_manager_sync_and_async() -> None:
    async with Engine(pool=FakeRunner({"echo": echo})) as engine:
        with engine.on("a", echo_workflow()) as sync_trigger:
            assert len(await engine.bus.publish("a")) == 1
        async with engine.on("b", echo_workflow()) as async_trigger:
            assert len(await engine.bus.publish("b")) == 1
        assert not sync_trigger.active and not async_trigger.active
        assert await engine.bus.publish("a") == await engine.bus.publish("b") == ()


async def test_a_trigger_registered_before_start_serves_then_stops_with_the_engine() -> None:
    bus_engine = Engine(pool=FakeRunner({"echo": echo}))
    trigger = bus_engine.on("ping", echo_workflow())
    assert await bus_engine.bus.publish("ping") == ()  # not running yet: nothing starts
    async with bus_engine as engine:
        assert len(await engine.bus.publish("ping")) == 1
    assert await bus_engine.bus.publish("ping") == ()  # the engine left: nothing starts
    assert trigger.active  # still registered: it serves again if the engine restarts


# -- run timeout ---------------------------------------------------------------------------


async def test_run_with_a_timeout_cancels_the_run_and_names_why() -> None:
    g = Gated()
    g.wf.add_step("after", js="return 1;", after=["wait"])
    async with Engine(pool=g.runner) as engine:
        with anyio.fail_after(5):
            result = await engine.run(g.wf, event={}, timeout=0.2)
    assert result.status == "cancelled"
    assert result.steps["wait"].status == "cancelled"
    assert result.steps["wait"].reason == "run timed out after 0.2 s while running"
    assert result.steps["after"].status == "skipped"
    assert result.steps["after"].reason == "run timed out after 0.2 s before the step started"


async def test_run_within_its_timeout_completes() -> None:
    async with Engine(pool=FakeRunner({"echo": echo})) as engine:
        result = await engine.run(echo_workflow(), event={"x": 1}, timeout=5)
    assert result.status == "completed" and result.output == {"x": 1}


@pytest.mark.parametrize("timeout", [0, -1, True, "1"])
async def test_run_rejects_a_bad_timeout(timeout: Any) -> None:
    async with Engine(pool=FakeRunner({"echo": echo})) as engine:
        with pytest.raises(InvalidOption, match="timeout"):
            await engine.run(echo_workflow(), timeout=timeout)


# -- shutdown ------------------------------------------------------------------------------


async def test_drain_lets_runs_in_flight_finish_on_exit() -> None:
    g = Gated()
    engine = Engine(pool=g.runner, shutdown="drain", drain_timeout=10)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with engine:
                handle = await engine.start(g.wf, event={"n": 1})
                await g.started.wait()
                tg.start_soon(_set_later, g.gate)  # the run can end only after exit began
            assert handle.done
    result = handle.result
    assert result is not None and result.status == "completed" and result.output == {"n": 1}


async def _set_later(event: anyio.Event) -> None:
    await anyio.sleep(0.05)
    event.set()


async def test_drain_cancels_what_is_left_after_the_drain_timeout() -> None:
    g = Gated()
    engine = Engine(pool=g.runner, shutdown="drain", drain_timeout=0.1)
    with anyio.fail_after(5):
        async with engine:
            handle = await engine.start(g.wf, event={})
            await g.started.wait()
    assert handle.result is not None and handle.result.status == "cancelled"


async def test_drain_stops_triggers_before_waiting() -> None:
    g = Gated()
    engine = Engine(pool=g.runner, shutdown="drain", drain_timeout=10)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, engine:
            engine.on("job", g.wf)
            (first,) = await engine.bus.publish("job", {})
            await g.started.wait()
            tg.start_soon(_publish_then_open, engine, g.gate)
        assert first.result is not None and first.result.status == "completed"


async def _publish_then_open(engine: Engine, gate: anyio.Event) -> None:
    await anyio.sleep(0.05)  # the engine is draining by now
    assert await engine.bus.publish("job", {}) == ()
    gate.set()


async def test_cancel_is_the_default_shutdown() -> None:
    g = Gated()
    with anyio.fail_after(5):
        async with Engine(pool=g.runner) as engine:
            handle = await engine.start(g.wf, event={})
            await g.started.wait()
    assert handle.result is not None and handle.result.status == "cancelled"


async def test_an_exception_leaving_a_draining_engine_cancels_at_once() -> None:
    g = Gated()
    engine = Engine(pool=g.runner, shutdown="drain", drain_timeout=math.inf)
    with pytest.raises(KeyError), anyio.fail_after(5):
        async with engine:
            handle = await engine.start(g.wf, event={})
            await g.started.wait()
            raise KeyError("boom")
    assert handle.result is not None and handle.result.status == "cancelled"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"shutdown": "wait"}, "shutdown"),
        ({"drain_timeout": -1}, "drain_timeout"),
        ({"drain_timeout": "1"}, "drain_timeout"),
    ],
)
def test_bad_shutdown_options_are_rejected(options: dict[str, Any], option: str) -> None:
    with pytest.raises(InvalidOption, match=option):
        Engine(pool=FakeRunner(), **options)


async def test_cancelling_the_caller_while_draining_cancels_the_runs_and_closes_the_pool() -> None:
    g = Gated()
    runner = g.runner
    engine = Engine(pool=runner, shutdown="drain", drain_timeout=math.inf)
    with anyio.fail_after(5):
        with anyio.move_on_after(0.2) as scope:
            async with engine:
                handle = await engine.start(g.wf, event={})
                await g.started.wait()
        assert scope.cancelled_caught
    assert handle.result is not None and handle.result.status == "cancelled"
    assert runner.state == "closed" and not engine.is_running
