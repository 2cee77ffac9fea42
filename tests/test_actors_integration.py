"""The engine on the real runtime pool, used as a new user would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, LifecycleEvent, Retry, RunCompleted, Workflow
from actors.errors import ScriptFailed, StepTimedOut
from examples import seed_workflow as seed_example
from examples.seed_workflow import fetch_data
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SEED_EVENT = {"source_a": "a", "source_b": "b", "user_id": 123}
SEED_OUTPUT = {"sum": 150, "count": 8, "event": SEED_EVENT}
NON_RETRYABLE = """
class NonRetryableError extends Error {
  constructor(message) { super(message); this.name = 'NonRetryableError'; }
}
"""


def seed_workflow() -> Workflow:
    """The seed's workflow exactly as the example ships it (its JS is the guide's)."""
    return seed_example.wf


def seed_engine(**kwargs: Any) -> Engine:
    return Engine(api={"fetch_data": fetch_data}, context={"config": {"multiplier": 2}}, **kwargs)


def children_of_this_process() -> list[int]:
    me, children = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            children.append(int(stat.parent.name))
    return children


async def test_seed_example_runs_unchanged_with_the_seed_output() -> None:
    async with seed_engine() as engine, engine.bus.subscribe("step.*") as events:
        result = await engine.run(seed_workflow(), event=SEED_EVENT)
        lines = []
        for _ in range(8):
            event = await events.receive()
            assert isinstance(event, LifecycleEvent)
            lines.append(("→ " if event.topic == "step.started" else "✓ ") + str(event.step))
    assert result.status == "completed"
    assert result.output == SEED_OUTPUT
    assert lines[4:] == ["→ combine", "✓ combine", "→ aggregate", "✓ aggregate"]
    assert sorted(lines[:4]) == sorted(["→ fetch_a", "→ fetch_b", "✓ fetch_a", "✓ fetch_b"])


async def test_the_two_seed_sources_start_before_either_finishes() -> None:
    async with seed_engine() as engine, engine.bus.subscribe("step.*") as events:
        await engine.run(seed_workflow(), event=SEED_EVENT)
        first_four = [await events.receive() for _ in range(4)]
    assert [e.topic for e in first_four[:2]] == ["step.started", "step.started"]


async def test_diamond_runs_its_shared_upstream_once() -> None:
    calls: list[str] = []

    def record(name: str) -> str:
        calls.append(name)
        return name

    wf = Workflow("diamond")
    wf.add_step("top", js="return await record('top');")
    wf.add_step("left", js="return deps.top + '<';", after=["top"])
    wf.add_step("right", js="return deps.top + '>';", after=["top"])
    wf.add_step("bottom", js="return [deps.left, deps.right];", after=["left", "right"])
    async with Engine(api={"record": record}) as engine:
        result = await engine.run(wf)
    assert result.output == ["top<", "top>"]
    assert calls == ["top"]


async def test_a_js_error_fails_its_step_skips_downstream_and_spares_other_branches() -> None:
    wf = Workflow("w")
    wf.add_step("bad", js="console.log('about to fail'); return missing.value;")
    wf.add_step("after_bad", js="return 1;", after=["bad"])
    wf.add_step("good", js="return 2;")
    async with Engine() as engine:
        result = await engine.run(wf)
    bad = result.steps["bad"]
    assert result.status == "failed"
    assert isinstance(bad.error, ScriptFailed) and bad.error.name == "ReferenceError"
    assert [line.text for line in bad.logs] == ["about to fail"]
    assert result.steps["after_bad"].status == "skipped"
    assert "'bad' failed" in (result.steps["after_bad"].reason or "")
    assert result.steps["good"].result == 2


async def test_retries_and_non_retryable_errors() -> None:
    wf = Workflow("w")
    wf.add_step(
        "flaky",
        js="if (ctx.run.attempt < 3) throw new Error('not yet'); return ctx.run.attempt;",
        retry=Retry(attempts=5, delay=0.01),
    )
    wf.add_step(
        "fatal",
        js=NON_RETRYABLE + "throw new NonRetryableError('card declined');",
        retry=Retry(attempts=5, delay=0.01),
    )
    async with Engine() as engine:
        result = await engine.run(wf)
    assert (result.steps["flaky"].result, result.steps["flaky"].attempts) == (3, 3)
    fatal = result.steps["fatal"]
    assert (fatal.status, fatal.attempts) == ("failed", 1)
    assert fatal.error is not None and fatal.error.name == "NonRetryableError"
    assert fatal.error.message == "card declined"


async def test_a_step_past_its_timeout_is_stopped_and_retried() -> None:
    wf = Workflow("w")
    wf.add_step("spin", js="while (true) {}", timeout=0.3, retry=Retry(attempts=2))
    wf.add_step("fine", js="return 'ok';")
    async with Engine() as engine:
        with anyio.fail_after(10):
            result = await engine.run(wf)
    spin = result.steps["spin"]
    assert (spin.status, spin.attempts) == ("failed", 2)
    assert isinstance(spin.error, StepTimedOut)
    assert result.steps["fine"].result == "ok"


async def test_cancelling_a_run_stops_its_js() -> None:
    wf = Workflow("w")
    wf.add_step("spin", js="while (true) {}", timeout=30)
    wf.add_step("later", js="return 1;", after=["spin"])
    async with Engine() as engine, engine.bus.subscribe("step.started") as started:
        handle = await engine.start(wf)
        await started.receive()
        await anyio.sleep(0.1)
        with anyio.fail_after(10):  # the loop never ends: only a stop ends it
            result = await handle.cancel()
        assert result.status == "cancelled"
        assert result.steps["spin"].status == "cancelled"
        assert result.steps["later"].status == "skipped"
        quick = Workflow("quick")
        quick.add_step("q", js="return 5;")
        assert (await engine.run(quick)).output == 5  # the pool still serves


async def test_a_published_event_triggers_a_run() -> None:
    wf = Workflow("orders")
    wf.add_step("total", js="return ctx.event.items.reduce((a, b) => a + b, 0);")
    async with Engine() as engine, engine.bus.subscribe("run.completed") as done:
        engine.on("order.created", wf)
        await engine.bus.publish("order.created", {"items": [1, 2, 3]})
        with anyio.fail_after(10):
            event = await done.receive()
    assert isinstance(event, RunCompleted) and event.output == 6


@pytest.mark.timeout(120)
async def test_two_hundred_concurrent_runs_are_all_correct() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return ctx.event.n * 2;")
    wf.add_step("b", js="return await triple(ctx.event.n);")
    wf.add_step("sum", js="return deps.a + deps.b;", after=["a", "b"])
    results: dict[int, Any] = {}

    async def triple(n: int) -> int:
        await anyio.sleep(0.001)
        return 3 * n

    async with Engine(api={"triple": triple}) as engine:

        async def one(n: int) -> None:
            results[n] = await engine.run(wf, event={"n": n})

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(one, n)
    assert {n: r.output for n, r in results.items()} == {n: 5 * n for n in range(200)}


async def test_no_child_process_is_left_after_the_engine_exits() -> None:
    before = set(children_of_this_process())
    async with seed_engine() as engine:
        await engine.run(seed_workflow(), event=SEED_EVENT)
        assert set(children_of_this_process()) - before  # the pool's workers
    assert set(children_of_this_process()) - before == set()


async def test_a_pool_passed_in_open_stays_open() -> None:
    async with RuntimePool(size=1) as pool:
        async with seed_engine(pool=pool) as engine:
            assert (await engine.run(seed_workflow(), event=SEED_EVENT)).output == SEED_OUTPUT
        assert pool.is_open
