"""Sub-workflows (``workflow="name"``): a step runs another workflow as a child run,
through the real pool and engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_cli import cli

from actors import Engine, LifecycleEvent, Retry, RunCancelled, RunStarted, Workflow
from actors._cli import mermaid
from actors.errors import (
    DuplicateWorkflow,
    InvalidOption,
    NestingTooDeep,
    SubflowFailed,
    UnknownWorkflow,
    WorkflowCycle,
)
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

WAIT = 60  # seconds: generous, the machine may be loaded


def doubler() -> Workflow:
    wf = Workflow("double")
    wf.add_step("twice", js="return ctx.event.n * 2;")
    return wf


def caller(**options: Any) -> Workflow:
    wf = Workflow("caller")
    wf.add_step("n", js="return ctx.event.n;")
    wf.add_step("call", after=["n"], workflow="double", **options)
    wf.add_step("done", js="return 'got ' + deps.call;", after=["call"])
    return wf


async def started_runs(events: Any, count: int) -> list[RunStarted]:
    found: list[RunStarted] = []
    with anyio.fail_after(WAIT):
        while len(found) < count:
            event = await events.receive()
            if isinstance(event, RunStarted):
                found.append(event)
    return found


async def test_the_js_gives_the_childs_event_and_its_output_is_the_steps_result() -> None:
    wf = caller(js="return {n: deps.n + 1};")
    engine = Engine(pool=RuntimePool(size=1), workflows=[doubler()])
    async with engine, engine.bus.subscribe("run.started") as events:
        result = await engine.run(wf, event={"n": 20})
        parent, child = await started_runs(events, 2)
    assert result.status == "completed", result.steps
    assert result.steps["call"].result == 42
    assert result.output == "got 42"
    assert result.parent_run_id is None and parent.parent_run_id is None
    assert (parent.run_id, parent.workflow) == (result.id, "caller")
    assert (child.workflow, child.parent_run_id) == ("double", result.id)


async def test_without_js_the_child_gets_the_steps_deps() -> None:
    child = Workflow("double")
    child.add_step("twice", js="return {seen: ctx.event, twice: ctx.event.n * 2};")
    engine = Engine(pool=RuntimePool(size=1))
    engine.register(child)
    async with engine:
        result = await engine.run(caller(), event={"n": 4})
    assert result.steps["call"].result == {"seen": {"n": 4}, "twice": 8}
    assert result.steps["call"].attempts == 1


async def test_a_failing_child_fails_the_step_naming_the_child_run_and_its_step() -> None:
    child = Workflow("double")
    child.add_step("check", js="return ctx.event.n;")
    child.add_step("twice", js="throw new Error('no doubles today');", after=["check"])
    engine = Engine(pool=RuntimePool(size=1), workflows=[child])
    async with engine, engine.bus.subscribe("run.*") as events:
        result = await engine.run(caller(), event={"n": 1})
        _, started = await started_runs(events, 2)
    assert result.status == "failed"
    step = result.steps["call"]
    assert step.status == "failed"
    error = step.error
    assert isinstance(error, SubflowFailed)
    assert (error.run_id, error.workflow, error.failed_step) == (started.run_id, "double", "twice")
    assert error.message == (
        f"workflow 'double' run {started.run_id} failed at step 'twice': Error: no doubles today"
    )
    assert error.cause is not None and error.retryable is False
    assert result.steps["done"].status == "skipped"


async def test_an_unknown_workflow_is_refused_at_start_and_can_be_registered_later() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        with pytest.raises(UnknownWorkflow, match="step 'call': no workflow named 'double'"):
            await engine.start(caller())
        engine.register(doubler())
        result = await engine.run(caller(js="return {n: 5};"))
    assert result.output == "got 10"


def test_a_cycle_of_workflows_is_refused_naming_it() -> None:
    a, b = Workflow("a"), Workflow("b")
    a.add_step("call_b", workflow="b")
    b.add_step("call_a", workflow="a")
    engine = Engine(workflows=[a])  # 'b' is not known yet: no cycle so far
    with pytest.raises(WorkflowCycle, match="sub-workflow cycle: b -> a -> b") as caught:
        engine.register(b)
    assert caught.value.workflows == ("b", "a")
    selfish = Workflow("self")
    selfish.add_step("again", workflow="self")
    with pytest.raises(WorkflowCycle, match="self -> self"):
        Engine(workflows=[selfish])
    other = Workflow("a")
    other.add_step("x", js="return 1;")
    with pytest.raises(DuplicateWorkflow, match="workflow 'a': another workflow of this name"):
        engine.register(other)


def chain_of(depth: int) -> list[Workflow]:
    """w0 runs w1, which runs w2 ... w<depth> returns the depth it was reached at."""
    last = Workflow(f"w{depth}")
    last.add_step("leaf", js=f"return ['w{depth}'];")
    chain = [last]
    for n in reversed(range(depth)):
        wf = Workflow(f"w{n}")
        wf.add_step("call", workflow=f"w{n + 1}")
        wf.add_step("mark", js=f"return ['w{n}', ...deps.call];", after=["call"])
        chain.append(wf)
    return chain


async def test_nesting_is_bounded_and_results_flow_up_every_level() -> None:
    *registered, top = chain_of(3)
    async with Engine(pool=RuntimePool(size=1), workflows=registered, max_nesting=3) as engine:
        result = await engine.run(top)
    assert result.status == "completed", result.steps
    assert result.output == ["w0", "w1", "w2", "w3"]
    *registered, top = chain_of(3)
    async with Engine(pool=RuntimePool(size=1), workflows=registered, max_nesting=2) as engine:
        with pytest.raises(NestingTooDeep, match=r"nest 3 deep \(w0 -> w1 -> w2 -> w3\)"):
            await engine.start(top)
    with pytest.raises(NestingTooDeep, match="past the bound of 1"):
        Engine(workflows=chain_of(2), max_nesting=1)
    with pytest.raises(InvalidOption, match="max_nesting"):
        Engine(max_nesting=-1)


def held_child() -> tuple[anyio.Event, Engine, Workflow]:
    """An engine and a parent whose child's one step awaits a host call that never
    returns; the event is set once the call has come in."""
    entered = anyio.Event()

    async def hold() -> None:
        entered.set()
        await anyio.sleep_forever()

    child = Workflow("held")
    child.add_step("wait", js="await hold(); return 1;")
    parent = Workflow("parent")
    parent.add_step("call", workflow="held")
    return entered, Engine(api={"hold": hold}, pool=RuntimePool(size=1), workflows=[child]), parent


async def test_cancelling_the_parent_cancels_the_child() -> None:
    entered, engine, parent = held_child()
    async with engine, engine.bus.subscribe("run.*") as events:
        handle = await engine.start(parent)
        with anyio.fail_after(WAIT):
            await entered.wait()
        result = await handle.cancel()
        cancelled: list[LifecycleEvent] = []
        with anyio.fail_after(WAIT):
            while len(cancelled) < 2:
                event = await events.receive()
                if isinstance(event, RunCancelled):
                    cancelled.append(event)
    assert result.status == "cancelled"
    child_event = next(e for e in cancelled if e.workflow == "held")
    assert isinstance(child_event, RunCancelled) and child_event.parent_run_id == handle.id


async def test_a_cancelled_child_fails_its_step() -> None:
    entered, engine, parent = held_child()
    async with engine, engine.bus.subscribe("run.started") as events:
        handle = await engine.start(parent)
        _, started = await started_runs(events, 2)
        with anyio.fail_after(WAIT):
            await entered.wait()
        assert engine._durable is None
        found = [h for h in engine._active.running() if h.id == started.run_id]
        assert found and found[0].parent_run_id == handle.id
        await found[0].cancel()
        with anyio.fail_after(WAIT):
            result = await handle.wait()
    error = result.steps["call"].error
    assert isinstance(error, SubflowFailed) and error.failed_step is None
    assert error.message == f"workflow 'held' run {started.run_id} was cancelled"


def test_bad_sub_workflow_options_are_refused_naming_the_step() -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidOption, match="step 'a': workflow: must be the name of a workflow"):
        wf.add_step("a", workflow="")
    with pytest.raises(InvalidOption, match="step 'a': workflow: cannot be combined with for_each"):
        wf.add_step("a", workflow="x", for_each="[1]")
    with pytest.raises(InvalidOption, match="step 'a': js: must be a non-empty string"):
        wf.add_step("a")

    @wf.step(workflow="x")
    def call() -> None:
        pass  # no docstring: no JS, the child gets deps

    assert wf.steps["call"].js == "" and wf.steps["call"].workflow == "x"


PARENT_TOML = """
name = "caller"

[steps.n]
js = "return ctx.event.n;"

[steps.call]
after = ["n"]
workflow = "double"

[steps.shown]
after = ["call"]
workflow = "double"
js = "return {n: deps.call};"
"""


async def test_sub_workflows_work_the_same_from_files(tmp_path: Path) -> None:
    (tmp_path / "caller.toml").write_text(PARENT_TOML)
    (tmp_path / "double.json").write_text(json.dumps(doubler().to_dict()))
    parent = Workflow.from_file(tmp_path / "caller.toml")
    child = Workflow.from_file(tmp_path / "double.json", check=False)
    assert Workflow.from_dict(parent.to_dict()).to_dict() == parent.to_dict()
    assert parent.to_dict()["steps"]["call"] == {"after": ["n"], "workflow": "double"}
    async with Engine(pool=RuntimePool(size=1), workflows=[child]) as engine:
        result = await engine.run(parent, event={"n": 3})
    assert result.steps["call"].result == 6  # its deps: {"n": 3}
    assert result.output == 12  # {n: 6} doubled


async def test_a_resumed_parent_rejoins_its_child_instead_of_starting_another(
    store_address: str,
) -> None:
    db = store_address  # a SQLite file, a PostgreSQL database
    entered = anyio.Event()

    async def hold() -> str:
        entered.set()
        await anyio.sleep_forever()
        return "never"

    async def go() -> str:
        return "went"

    child = Workflow("held")
    child.add_step("wait", js="return await hold();")
    parent = Workflow("parent")
    parent.add_step("call", workflow="held", js="return {from: ctx.run.id};")
    async with Engine(
        api={"hold": hold}, pool=RuntimePool(size=1), workflows=[child], store=db
    ) as engine:
        handle = await engine.start(parent)
        with anyio.fail_after(WAIT):
            await entered.wait()
    # The engine stopped with both runs under way; the next one resumes both.
    again = Workflow("held")
    again.add_step("wait", js="return await hold();")
    async with Engine(
        api={"hold": go}, pool=RuntimePool(size=1), workflows=[again], store=db
    ) as engine:
        with anyio.fail_after(WAIT):
            result = await engine.wait(handle.id)
        children = await engine.runs(workflow="held")
    assert result.status == "completed", result.steps
    assert result.output == "went"
    assert len(children) == 1
    assert children[0].parent_run_id == handle.id and children[0].status == "completed"
    assert children[0].steps["wait"].attempts == 2  # the child resumed on its own


async def test_retrying_a_parent_retries_its_failed_child_under_the_same_id(
    store_address: str,
) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("down")
        return "up"

    child = Workflow("flaky")
    child.add_step("call", js="return await flaky();")
    parent = Workflow("parent")
    parent.add_step("run", workflow="flaky")
    engine = Engine(
        api={"flaky": flaky},
        pool=RuntimePool(size=1),
        retry=Retry(attempts=1),
        workflows=[child],
        store=store_address,
    )
    async with engine:
        first = await engine.run(parent)
        error = first.steps["run"].error
        assert isinstance(error, SubflowFailed)
        stored = await engine.get_run(first.id)
        assert isinstance(stored.steps["run"].error, SubflowFailed)
        again = await (await engine.retry(first.id)).wait()
        children = await engine.runs(workflow="flaky")
    assert again.status == "completed" and again.output == "up"
    assert [c.id for c in children] == [error.run_id]
    assert children[0].status == "completed"


def test_graph_draws_a_sub_workflow_step_as_a_stadium_naming_the_workflow() -> None:
    assert mermaid(caller()).splitlines() == [
        "flowchart TD",
        '    s1(["call<br/>runs workflow: double"])',  # ('call' is a Mermaid keyword)
        "    n --> s1",
        "    s1 --> done",
    ]


@pytest.mark.timeout(120)
def test_the_cli_checks_and_runs_sub_workflows_given_with_files(tmp_path: Path) -> None:
    parent, child = tmp_path / "caller.toml", tmp_path / "double.json"
    parent.write_text(PARENT_TOML)
    child.write_text(json.dumps(doubler().to_dict()))
    looping = tmp_path / "loop.json"
    looping.write_text(json.dumps({"name": "double", "steps": {"back": {"workflow": "caller"}}}))
    alone = cli("validate", str(parent))
    assert alone.returncode == 0, alone.stderr
    assert "runs workflow(s) 'double'; give their files with --with" in alone.stderr
    assert cli("validate", str(parent), "--with", str(child)).returncode == 0
    cycle = cli("validate", str(parent), "--with", str(looping))
    assert cycle.returncode == 2
    assert "sub-workflow cycle: caller -> double -> caller" in cycle.stderr
    unknown = cli("run", str(parent), "-q", "--event", '{"n": 2}')
    assert unknown.returncode == 2
    assert "step 'call': no workflow named 'double'" in unknown.stderr
    ran = cli("run", str(parent), "-q", "--event", '{"n": 2}', "--with", str(child))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == 8  # call: {"n": 2} doubled; shown: {n: 4} doubled


async def test_a_child_that_cannot_start_fails_the_step_saying_why() -> None:
    broken = Workflow("double")
    broken.add_step("twice", js="return (;")
    async with Engine(pool=RuntimePool(size=1), workflows=[broken]) as engine:
        result = await engine.run(caller(js="return {n: 1};"))
    error = result.steps["call"].error
    assert result.status == "failed" and error is not None
    assert error.name == "StepSyntaxError" and not error.retryable
    assert "workflow 'double': step 'twice' line 1" in error.message
