"""Steps that wait (``sleep``, ``sleep_until``, ``wait_for``), through the real pool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import (
    Engine,
    StepCompleted,
    StepWaiting,
    Subscription,
    WaitFailed,
    WaitTimedOut,
    Workflow,
)
from actors._cli import mermaid
from actors.errors import InvalidOption, StepSyntaxError, UnknownRun, WorkflowFileError
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

APPROVAL = {"topic": "order.approved", "match": "order_id"}


def approval_workflow(**wait: Any) -> Workflow:
    wf = Workflow("approval")
    wf.add_step("ask", js="return {order: ctx.event.order_id};")
    wf.add_step("approval", after=["ask"], wait_for={**APPROVAL, **wait})
    wf.add_step(
        "ship", after=["ask", "approval"], js="return `${deps.ask.order} by ${deps.approval.by}`;"
    )
    return wf


async def waiting(events: Subscription, count: int) -> list[StepWaiting]:
    """The next ``count`` step.waiting events (the steps are registered by then)."""
    found: list[StepWaiting] = []
    with anyio.fail_after(60):
        while len(found) < count:
            event = await events.receive()
            if isinstance(event, StepWaiting):
                found.append(event)
    return found


async def test_wait_for_completes_each_run_with_the_payload_that_matches_its_event() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        async with engine.bus.subscribe("step.waiting") as events:
            one = await engine.start(approval_workflow(), event={"order_id": 1})
            two = await engine.start(approval_workflow(), event={"order_id": 2})
            seen = await waiting(events, 2)
        assert {(e.waits_for, e.match, e.value, e.until) for e in seen} == {
            ("order.approved", "order_id", 1, None),
            ("order.approved", "order_id", 2, None),
        }
        await engine.bus.publish("order.approved", {"order_id": 3, "by": "nobody"})
        await engine.bus.publish("order.approved", {"by": "no order_id"})
        await engine.bus.publish("order.approved", "not an object")
        await engine.bus.publish("order.approved", {"order_id": 2, "by": "bob"})
        with anyio.fail_after(60):
            second = await two.wait()
        assert not one.done
        await engine.bus.publish("order.approved", {"order_id": 1, "by": "alice"})
        with anyio.fail_after(60):
            first = await one.wait()
    assert first.output == "1 by alice" and second.output == "2 by bob"
    assert first.steps["approval"].result == {"order_id": 1, "by": "alice"}
    assert first.steps["approval"].attempts == 1


async def test_without_match_the_first_publish_after_waiting_completes_the_step() -> None:
    wf = Workflow("any")
    wf.add_step("go", wait_for={"topic": "go"})
    async with Engine(pool=RuntimePool(size=1)) as engine:
        async with engine.bus.subscribe("step.waiting") as events:
            handles = [await engine.start(wf, event={"n": n}) for n in range(3)]
            await waiting(events, 3)
        await engine.bus.publish("go", {"first": True})
        await engine.bus.publish("go", {"first": False})
        with anyio.fail_after(60):
            results = [await h.wait() for h in handles]
    assert [r.output for r in results] == [{"first": True}] * 3


async def test_engine_send_reaches_one_run_and_is_kept_until_it_waits() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        async with engine.bus.subscribe("step.waiting") as events:
            one = await engine.start(approval_workflow(), event={"order_id": 7})
            two = await engine.start(approval_workflow(), event={"order_id": 7})
            await waiting(events, 2)
        await engine.send(one.id, "order.approved", {"by": "carol"})  # no order_id needed
        with anyio.fail_after(60):
            first = await one.wait()
        assert first.output == "7 by carol" and not two.done
        await engine.bus.publish("order.approved", {"order_id": 7, "by": "dan"})
        with anyio.fail_after(60):
            assert (await two.wait()).output == "7 by dan"
        # sent before the run reaches its wait_for step (its first step runs first)
        early = await engine.start(approval_workflow(), event={"order_id": 8})
        await engine.send(early.id, "order.approved", {"by": "erin"})
        with anyio.fail_after(60):
            assert (await early.wait()).output == "8 by erin"
        with pytest.raises(UnknownRun):
            await engine.send(early.id, "order.approved", {})  # it has ended


async def test_a_wait_past_its_timeout_fails_with_wait_timed_out() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        with anyio.fail_after(60):
            result = await engine.run(approval_workflow(timeout=0.2), event={"order_id": 1})
    assert result.status == "failed"
    error = result.steps["approval"].error
    assert isinstance(error, WaitTimedOut)
    assert (error.name, error.topic, error.timeout) == ("WaitTimedOut", "order.approved", 0.2)
    assert result.steps["ship"].status == "skipped"


async def test_sleep_and_sleep_until_end_no_earlier_than_their_wake_time() -> None:
    wf = Workflow("naps")
    wf.add_step("nap", sleep=0.2)
    wf.add_step("later", js="return new Date(Date.now() + 200).toISOString();", after=["nap"])
    wf.add_step("until", sleep_until="deps.later", after=["later"])
    engine = Engine(pool=RuntimePool(size=1))
    async with engine, engine.bus.subscribe("step.*") as events:
        with anyio.fail_after(60):
            result = await engine.run(wf)
        seen = [await events.receive() for _ in range(events.statistics().queued)]
    assert result.status == "completed", result.steps
    assert result.steps["nap"].result is None and result.steps["until"].result is None
    for step in ("nap", "until"):
        (wait,) = [e for e in seen if isinstance(e, StepWaiting) and e.step == step]
        (done,) = [e for e in seen if isinstance(e, StepCompleted) and e.step == step]
        assert wait.until is not None and wait.waits_for is None
        assert done.timestamp >= wait.until


@pytest.mark.parametrize(
    ("expression", "says"),
    [("42", "got int"), ("'soon'", "got 'soon'"), ("null", "got null")],
)
async def test_a_sleep_until_that_is_no_iso_time_fails_with_wait_failed(
    expression: str, says: str
) -> None:
    wf = Workflow("bad")
    wf.add_step("until", sleep_until=expression)
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    error = result.steps["until"].error
    assert isinstance(error, WaitFailed) and says in error.message


async def test_a_sleep_until_expression_that_throws_fails_the_step() -> None:
    wf = Workflow("throws")
    wf.add_step("until", sleep_until="deps.none.at")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    error = result.steps["until"].error
    assert error is not None and error.name == "TypeError"
    assert error.message.startswith("sleep_until: ")


async def test_an_event_without_the_match_field_fails_with_wait_failed() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(approval_workflow(), event={"id": 1})
    error = result.steps["approval"].error
    assert isinstance(error, WaitFailed) and "'order_id'" in error.message


async def test_twenty_waiting_runs_hold_no_worker_nor_place_and_cancel_unregisters() -> None:
    wf = Workflow("many")
    wf.add_step("first", js="return ctx.event.n;")
    wf.add_step("go", after=["first"], wait_for={"topic": "go", "match": "n", "timeout": 3600})
    wf.add_step("last", after=["go"], js="return deps.go.n;")
    pool = RuntimePool(size=1)
    # 5 places for 20 runs: a waiting run lends its place, or the 6th start would wait
    async with Engine(pool=pool, max_active_runs=5) as engine:
        async with engine.bus.subscribe("step.waiting") as events:
            handles = [await engine.start(wf, event={"n": n}) for n in range(20)]
            await waiting(events, 20)
        stats = pool.statistics()
        assert (stats.busy, stats.in_flight) == (0, 0)
        assert engine.statistics().active == 0
        assert len(engine.bus.waiters) == 20 and len(engine._waits.timers) == 20
        for n in range(10):
            await engine.bus.publish("go", {"n": n})
        for handle in handles[10:]:
            await handle.cancel()
        with anyio.fail_after(60):
            results = [await h.wait() for h in handles]
        assert len(engine.bus.waiters) == 0 and len(engine._waits.timers) == 0
        assert engine.statistics().active == 0
        assert engine.statistics().peak_active <= 5
    assert [r.status for r in results] == ["completed"] * 10 + ["cancelled"] * 10
    assert [r.output for r in results[:10]] == list(range(10))


async def test_a_wait_step_with_a_false_condition_is_skipped() -> None:
    wf = Workflow("maybe")
    wf.add_step("approval", wait_for=APPROVAL, when="ctx.event.amount > 1000")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf, event={"order_id": 1, "amount": 5})
    assert result.steps["approval"].status == "skipped"


WAIT_TOML = """
name = "approval"
[steps.ask]
js = "return {order: ctx.event.order_id};"
[steps.approval]
after = ["ask"]
wait_for = { topic = "order.approved", match = "order_id", timeout = 600 }
[steps.pause]
after = ["approval"]
sleep = 0.05
[steps.ship]
after = ["ask", "pause", "approval"]
js = "return `${deps.ask.order} by ${deps.approval.by}`;"
"""


@pytest.mark.parametrize("suffix", [".toml", ".json"])
async def test_a_workflow_file_with_waits_runs_and_round_trips(tmp_path: Path, suffix: str) -> None:
    import tomllib

    data = tomllib.loads(WAIT_TOML)
    path = tmp_path / f"approval{suffix}"
    path.write_text(WAIT_TOML if suffix == ".toml" else json.dumps(data))
    wf = Workflow.from_file(path)
    assert wf.to_dict() == data
    assert Workflow.from_dict(wf.to_dict()).to_dict() == data
    async with Engine(pool=RuntimePool(size=1)) as engine:
        async with engine.bus.subscribe("step.waiting") as events:
            handle = await engine.start(wf, event={"order_id": 5})
            await waiting(events, 1)
        await engine.bus.publish("order.approved", {"order_id": 5, "by": "fay"})
        with anyio.fail_after(60):
            assert (await handle.wait()).output == "5 by fay"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"sleep": -1}, "sleep"),
        ({"sleep": True}, "sleep"),
        ({"sleep": 1, "js": "return 1;"}, "js"),
        ({"sleep": 1, "wait_for": {"topic": "t"}}, "wait_for"),
        ({"wait_for": {"match": "id"}}, "wait_for.topic"),
        ({"wait_for": {"topic": "t", "timeout": 0}}, "wait_for.timeout"),
        ({"wait_for": {"topic": "t", "after": 1}}, "wait_for.after"),
        ({"wait_for": "t"}, "wait_for"),
        ({"sleep": 1, "retry": {"attempts": 2}}, "retry"),
        ({"sleep": 1, "timeout": 5}, "timeout"),
        ({"sleep_until": " "}, "sleep_until"),
    ],
)
def test_bad_wait_options_are_refused_naming_the_key(options: dict[str, Any], key: str) -> None:
    data = {"name": "bad", "steps": {"x": options}}
    with pytest.raises(InvalidOption) as caught:
        Workflow.from_dict(data)
    assert caught.value.option == f"steps.x.{key}"


def test_a_bad_wait_option_in_a_file_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[steps.x]\nwait_for = { match = "id" }\n')
    with pytest.raises(WorkflowFileError) as caught:
        Workflow.from_file(path, check=False)
    assert caught.value.key == "steps.x.wait_for.topic"


async def test_graph_draws_waits_and_validate_compiles_sleep_until() -> None:
    wf = approval_workflow(timeout=60)
    wf.add_step("nap", after=["ship"], sleep=2.5)
    drawn = mermaid(wf)
    assert (
        'approval(["approval<br/>wait for: order.approved (match order_id, timeout 60 s)"])'
        in drawn
    )
    assert 'nap(["nap<br/>sleep 2.5 s"])' in drawn
    bad = Workflow("bad")
    bad.add_step("until", sleep_until="deps.a +")
    with pytest.raises(StepSyntaxError) as caught:
        await bad.check()
    assert caught.value.step == "until.sleep_until"
