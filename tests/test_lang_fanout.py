"""Fan-out (``for_each``): one run of the step's JS per element, through the real pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, LifecycleEvent, Retry, StepRetrying, StepStarted, Workflow
from actors.errors import ElementFailed, InvalidOption
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def lines_workflow(**options: Any) -> Workflow:
    wf = Workflow("order")
    wf.add_step("lines", js="return ctx.event.lines;")
    wf.add_step(
        "check_stock",
        js="return {sku: item.sku, index, ok: await in_stock(item.sku)};",
        after=["lines"],
        for_each="deps.lines",
        **options,
    )
    wf.add_step("summary", js="return deps.check_stock.every((c) => c.ok);", after=["check_stock"])
    return wf


async def in_stock(sku: str) -> bool:
    return sku != "none"


async def test_the_step_runs_per_element_and_gives_the_results_in_order() -> None:
    lines = [{"sku": f"s{i}"} for i in range(25)]
    engine = Engine(api={"in_stock": in_stock}, pool=RuntimePool(size=2))
    async with engine, engine.bus.subscribe("step.started") as events:
        result = await engine.run(lines_workflow(), event={"lines": lines})
        started = []
        with anyio.fail_after(5):
            while len(started) < 27:
                event = await events.receive()
                assert isinstance(event, StepStarted)
                started.append(event)
    assert result.status == "completed", result.steps
    assert result.steps["check_stock"].result == [
        {"sku": f"s{i}", "index": i, "ok": True} for i in range(25)
    ]
    assert result.steps["check_stock"].attempts == 25
    assert result.output is True
    indices = sorted(e.index for e in started if e.step == "check_stock")
    assert indices == list(range(25))
    assert {e.index for e in started if e.step != "check_stock"} == {None}


async def test_an_empty_array_gives_an_empty_result() -> None:
    async with Engine(api={"in_stock": in_stock}, pool=RuntimePool(size=1)) as engine:
        result = await engine.run(lines_workflow(), event={"lines": []})
    assert result.steps["check_stock"].status == "completed"
    assert result.steps["check_stock"].result == []
    assert result.output is True


async def test_at_most_max_parallel_elements_run_at_once() -> None:
    now, peak = 0, 0

    async def in_stock(sku: str) -> bool:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await anyio.sleep(0.01)
        now -= 1
        return True

    lines = [{"sku": str(i)} for i in range(30)]
    async with Engine(api={"in_stock": in_stock}, pool=RuntimePool(size=2)) as engine:
        result = await engine.run(lines_workflow(max_parallel=3), event={"lines": lines})
    assert result.status == "completed"
    assert 1 < peak <= 3


async def test_each_element_has_its_own_attempts_and_a_failure_names_its_index() -> None:
    wf = Workflow("w")
    wf.add_step(
        "each",
        js="""
        if (item === 'flaky' && ctx.run.attempt === 1) throw new Error('try again');
        if (item === 'bad') throw new Error('bad item');
        return item;
        """,
        for_each="ctx.event.items",
        retry=Retry(attempts=2, delay=0),
    )
    async with Engine(pool=RuntimePool(size=1)) as engine:
        async with engine.bus.subscribe("step.retrying") as events:
            good = await engine.run(wf, event={"items": ["a", "flaky", "b"]})
            retried = await events.receive()
        bad = await engine.run(wf, event={"items": ["a", "bad", "b"]})
    assert good.steps["each"].result == ["a", "flaky", "b"]
    assert good.steps["each"].attempts == 4
    assert isinstance(retried, StepRetrying) and retried.index == 1
    step = bad.steps["each"]
    assert bad.status == "failed"
    assert isinstance(step.error, ElementFailed)
    assert step.error.index == 1
    assert step.error.message == "item 1: bad item"
    assert step.error.attempt == 2


async def test_an_expression_that_gives_no_array_fails_the_step() -> None:
    wf = Workflow("w")
    wf.add_step("each", js="return item;", for_each="ctx.event.items")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf, event={"items": {"a": 1}})
    error = result.steps["each"].error
    assert error is not None
    assert error.message == "for_each: must give an array, got dict"


TOML = """
name = "order"
[steps.lines]
js = "return ctx.event.lines;"
[steps.doubled]
js = "return item * 2 + index;"
after = ["lines"]
for_each = "deps.lines"
max_parallel = 2
"""


async def test_for_each_works_the_same_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "order.toml"
    path.write_text(TOML)
    wf = Workflow.from_file(path)
    data = wf.to_dict()
    assert data["steps"]["doubled"]["for_each"] == "deps.lines"
    assert data["steps"]["doubled"]["max_parallel"] == 2
    assert Workflow.from_dict(data).to_dict() == data
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf, event={"lines": [1, 2, 3]})
    assert result.output == [2, 5, 8]


def test_max_parallel_needs_for_each_and_a_positive_integer() -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidOption, match="max_parallel: only applies to a step with for_each"):
        wf.add_step("a", js="return 1;", max_parallel=2)
    with pytest.raises(InvalidOption, match="max_parallel: must be a positive integer"):
        wf.add_step("a", js="return 1;", for_each="[]", max_parallel=0)


async def test_elements_share_deps_frozen_and_a_cancel_stops_the_fan_out() -> None:
    async def slow(i: int) -> int:
        await anyio.sleep(0.2)
        return i

    tampering = Workflow("tampering")
    tampering.add_step("a", js="return [1, 2];")
    tampering.add_step("b", js="deps.a.push(3); return item;", after=["a"], for_each="deps.a")
    many = Workflow("many")
    many.add_step("each", js="return await slow(item);", for_each="ctx.event.items", max_parallel=5)
    many.add_step("after", js="return 1;", after=["each"])
    async with Engine(api={"slow": slow}, pool=RuntimePool(size=1)) as engine:
        tampered = await engine.run(tampering)
        cancelled = await engine.run(many, event={"items": list(range(50))}, timeout=0.5)
    error = tampered.steps["b"].error
    assert error is not None and error.name == "TypeError"
    assert error.message.startswith("item 0: ")
    assert cancelled.status == "cancelled"
    each = cancelled.steps["each"]
    assert each.status == "cancelled"
    assert 1 <= each.attempts < 50
    assert cancelled.steps["after"].status == "skipped"


async def test_element_console_lines_and_host_calls_carry_the_index_after_its_start() -> None:
    wf = Workflow("w")
    wf.add_step(
        "each",
        js="console.log('checking', item); return await in_stock(item);",
        for_each="['a', 'b', 'c']",
    )
    engine = Engine(api={"in_stock": in_stock}, pool=RuntimePool(size=1))
    async with engine, engine.bus.subscribe("*") as events:
        result = await engine.run(wf)
        seen: list[tuple[str, int | None]] = []
        with anyio.fail_after(5):
            async for event in events:
                if event.topic in ("step.started", "step.log", "host.called"):
                    assert isinstance(event, LifecycleEvent)
                    seen.append((event.topic, event.index))
                if event.topic == "run.completed":
                    break
    assert result.output == [True, True, True]
    for index in range(3):
        mine = [topic for topic, i in seen if i == index]
        assert mine[0] == "step.started"
        assert sorted(mine[1:]) == ["host.called", "step.log"]
