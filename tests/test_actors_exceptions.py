"""An exception leaving ``async with Engine(...)`` arrives as itself, not in a group."""

from __future__ import annotations

import math
import traceback

import anyio
import pytest

from actors import Engine, EventBus, Workflow
from actors._events import BusEvent
from actors._shutdown import Shutdown
from actors.errors import StepSyntaxError
from actors.testing import FakeRunner
from runtime_pool import RuntimePool
from tests.test_actors_service import Gated

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("shutdown", ["cancel", "drain"])
async def test_the_bodys_exception_leaves_unchanged_and_runs_in_flight_are_cancelled(
    shutdown: Shutdown,
) -> None:
    g = Gated()
    mine = KeyError("mine")
    with pytest.raises(KeyError) as caught:
        async with Engine(pool=g.runner, shutdown=shutdown, drain_timeout=math.inf) as engine:
            handle = await engine.start(g.wf, event={})
            with anyio.fail_after(5):
                await g.started.wait()
            raise mine
    assert caught.value is mine
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[0] == "test_the_bodys_exception_leaves_unchanged_and_runs_in_flight_are_cancelled"
    assert handle.result is not None and handle.result.status == "cancelled"


async def test_a_syntax_error_from_engine_run_leaves_as_itself() -> None:
    wf = Workflow("w")
    wf.add_step("broken", js="return {;")
    with pytest.raises(StepSyntaxError) as caught:
        async with Engine(pool=RuntimePool(size=1)) as engine:
            await engine.run(wf)
    assert caught.value.step == "broken"


class FailingBus(EventBus):
    """A bus whose publishing of ``run.started`` fails: a crash inside the engine's tasks."""

    async def publish_event(self, event: BusEvent) -> None:
        if event.topic == "run.started":
            raise RuntimeError("bus broke")
        await super().publish_event(event)


async def test_a_failure_inside_the_engines_tasks_leaves_as_itself() -> None:
    g = Gated()
    with pytest.raises(RuntimeError, match="bus broke"):
        async with Engine(pool=g.runner, bus=FailingBus()) as engine:
            await engine.start(g.wf, event={})
            with anyio.fail_after(5):
                await anyio.sleep_forever()  # the crash cancels the body


async def test_an_exception_group_raised_by_the_body_is_not_unwrapped() -> None:
    group = ExceptionGroup("the user's own", [KeyError("a"), ValueError("b")])
    with pytest.raises(ExceptionGroup) as caught:
        async with Engine(pool=FakeRunner()):
            raise group
    assert caught.value is group
