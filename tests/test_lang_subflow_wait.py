"""Sub-workflows and waiting steps together: a child run that waits, through the real
pool and engine (and a store), and a step that would do both, refused."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Engine, EventBus, StepWaiting, Subscription, Workflow
from actors.errors import InvalidOption
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

WAIT = 60  # seconds: generous, the machine may be loaded


def approval() -> Workflow:
    """A child workflow that waits for an approval of its order, then naps a little."""
    wf = Workflow("approval")
    wf.add_step("ask", js="return ctx.event.order;")
    wf.add_step("ok", after=["ask"], wait_for={"topic": "approved", "match": "order"})
    wf.add_step("nap", after=["ok"], sleep=0.01)
    wf.add_step("by", after=["ok", "nap"], js="return deps.ok.by;")
    return wf


def order() -> Workflow:
    wf = Workflow("order")
    wf.add_step("order", js="return ctx.event.order;")
    wf.add_step("approve", after=["order"], workflow="approval", js="return ctx.event;")
    wf.add_step("done", after=["order", "approve"], js="return `${deps.order} by ${deps.approve}`;")
    return wf


async def waiting_step(events: Subscription, step: str) -> StepWaiting:
    with anyio.fail_after(WAIT):
        while True:
            event = await events.receive()
            if isinstance(event, StepWaiting) and event.step == step:
                return event


@pytest.mark.parametrize(
    "wait",
    [{"sleep": 1}, {"sleep_until": "'2030-01-01T00:00:00Z'"}, {"wait_for": {"topic": "t"}}],
)
def test_a_step_cannot_both_wait_and_run_a_sub_workflow(wait: dict[str, Any]) -> None:
    wf = Workflow("both")
    with pytest.raises(InvalidOption) as caught:
        wf.add_step("x", workflow="child", **wait)
    assert (caught.value.option, caught.value.step) == ("workflow", "x")
    assert next(iter(wait)) in caught.value.reason
    data = {"name": "both", "steps": {"x": {"workflow": "child", **wait}}}
    with pytest.raises(InvalidOption) as from_data:
        Workflow.from_dict(data)
    assert from_data.value.option == "steps.x.workflow"


async def test_a_child_that_waits_completes_in_an_engine_with_one_place() -> None:
    # The parent holds the only place while its child runs; the child lends its own
    # place while it waits and must take one back without waiting for the parent's.
    engine = Engine(pool=RuntimePool(size=1), workflows=[approval()], max_active_runs=1)
    async with engine, engine.bus.subscribe("step.waiting") as events:
        handle = await engine.start(order(), event={"order": "A-1"})
        waiting = await waiting_step(events, "ok")
        assert waiting.run_id != handle.id and waiting.value == "A-1"
        await engine.send(waiting.run_id, "approved", {"by": "ops"})
        with anyio.fail_after(WAIT):
            result = await handle.wait()
        statistics = engine.statistics()
    assert result.status == "completed", result.steps
    assert result.output == "A-1 by ops"
    assert (statistics.active, statistics.completed) == (0, 2)


async def test_a_waiting_child_resumes_under_its_parent_after_a_restart(
    store_address: str,
) -> None:
    async with RuntimePool(size=1) as pool:
        bus = EventBus()
        engine = Engine(pool=pool, store=store_address, bus=bus, workflows=[approval()])
        async with bus.subscribe("step.waiting") as events, engine:
            handle = await engine.start(order(), event={"order": "B-2"})
            before = await waiting_step(events, "ok")
        bus = EventBus()
        engine = Engine(pool=pool, store=store_address, bus=bus, workflows=[approval()])
        async with bus.subscribe("step.waiting") as events, engine:
            after = await waiting_step(events, "ok")  # the child waits again, not anew
            await engine.bus.publish("approved", {"order": "B-2", "by": "eve"})
            with anyio.fail_after(WAIT):
                result = await engine.wait(handle.id)
            stored_child = await engine.get_run(after.run_id)
            children = await engine.runs(workflow="approval")
    assert (after.run_id, after.until) == (before.run_id, before.until)
    assert result.status == "completed" and result.output == "B-2 by eve"
    assert stored_child.parent_run_id == handle.id and stored_child.status == "completed"
    assert [c.id for c in children] == [before.run_id]
