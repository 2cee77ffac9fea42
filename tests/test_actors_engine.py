"""Engine semantics with a fake runner (scheduling, retries, timeouts, cancellation)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Engine, Retry, StepRetrying, Workflow
from actors.errors import (
    EngineNotRunning,
    SandboxFailed,
    ScriptFailed,
    StepTimedOut,
    UnknownDependency,
    WorkflowFrozen,
)
from actors.testing import FakeRunner, FakeScript
from runtime_pool.errors import InvalidValue, SandboxCrashed, ScriptError

pytestmark = pytest.mark.anyio

SEED_EVENT = {"source_a": "a", "source_b": "b", "user_id": 123}


async def fetch_data(source: str) -> list[int]:
    await anyio.sleep(0.01)
    return [1, 2, 3, 4, 5] if source == "a" else [10, 20, 30]


def seed_workflow() -> Workflow:
    wf = Workflow("seed")

    @wf.step()
    def fetch_a() -> None:
        """
        const source = ctx.event.source_a || 'foo';
        return await fetch_data(source);
        """

    @wf.step()
    def fetch_b() -> None:
        """
        const source = ctx.event.source_b || 'bar';
        return await fetch_data(source);
        """

    @wf.step(after=[fetch_a, fetch_b])
    def combine() -> None:
        """
        const a = deps.fetch_a;
        const b = deps.fetch_b;
        const multiplier = ctx.config.multiplier;
        return [...a, ...b].map(x => x * multiplier);
        """

    @wf.step(after=[combine])
    def aggregate() -> None:
        """
        const data = deps.combine;
        return {sum: data.reduce((a, b) => a + b, 0), count: data.length, event: ctx.event};
        """

    return wf


def seed_runner() -> FakeRunner:
    """Python stand-ins for the seed's four scripts."""
    wf = seed_workflow()

    async def combine(s: FakeScript) -> Any:
        data = s.deps["fetch_a"] + s.deps["fetch_b"]
        return [x * s.ctx["config"]["multiplier"] for x in data]

    async def aggregate(s: FakeScript) -> Any:
        data = s.deps["combine"]
        return {"sum": sum(data), "count": len(data), "event": s.ctx["event"]}

    async def fetch_a(s: FakeScript) -> Any:
        return await s.call("fetch_data", s.ctx["event"].get("source_a") or "foo")

    async def fetch_b(s: FakeScript) -> Any:
        return await s.call("fetch_data", s.ctx["event"].get("source_b") or "bar")

    js = {name: step.js for name, step in wf.steps.items()}
    return FakeRunner(
        {
            js["fetch_a"]: fetch_a,
            js["fetch_b"]: fetch_b,
            js["combine"]: combine,
            js["aggregate"]: aggregate,
        }
    )


def engine_with(runner: FakeRunner, **kwargs: Any) -> Engine:
    return Engine(pool=runner, api={"fetch_data": fetch_data}, **kwargs)


async def test_seed_example_gives_the_seed_output() -> None:
    async with engine_with(seed_runner(), context={"config": {"multiplier": 2}}) as engine:
        result = await engine.run(seed_workflow(), event=SEED_EVENT)
    assert result.status == "completed"
    assert result.output == {"sum": 150, "count": 8, "event": SEED_EVENT}
    assert result.workflow == "seed"
    assert [s.status for s in result.steps.values()] == ["completed"] * 4
    assert result.steps["combine"].result == [2, 4, 6, 8, 10, 20, 40, 60]
    assert all(s.attempts == 1 and s.duration >= 0 for s in result.steps.values())


async def test_diamond_runs_its_shared_upstream_once() -> None:
    wf = Workflow("diamond")
    wf.add_step("top", js="return 1;")
    wf.add_step("left", js="left", after=["top"])
    wf.add_step("right", js="right", after=["top"])
    wf.add_step("bottom", js="bottom", after=["left", "right"])

    async def left(s: FakeScript) -> Any:
        return s.deps["top"] + 10

    async def right(s: FakeScript) -> Any:
        return s.deps["top"] + 20

    async def bottom(s: FakeScript) -> Any:
        return [s.deps["left"], s.deps["right"], sorted(s.deps)]

    runner = FakeRunner({"left": left, "right": right, "bottom": bottom})
    async with Engine(pool=runner) as engine:
        result = await engine.run(wf)
    assert result.output == [11, 21, ["left", "right"]]
    assert [name for name, _ in runner.started].count("top") == 1
    assert len(runner.started) == 4


async def test_independent_sources_start_before_either_finishes() -> None:
    both_started = anyio.Event()
    started: list[str] = []

    async def source(s: FakeScript) -> Any:
        started.append(s.step)
        if len(started) == 2:
            both_started.set()
        with anyio.fail_after(5):
            await both_started.wait()  # deadlocks (and fails) if sources ran one by one
        return s.step

    wf = Workflow("w")
    wf.add_step("a", js="source")
    wf.add_step("b", js="source")
    wf.add_step("join", js="return 0;", after=["a", "b"])
    runner = FakeRunner({"source": source})
    async with Engine(pool=runner) as engine:
        result = await engine.run(wf)
    assert result.status == "completed"
    assert runner.started[:2] in ([("a", 1), ("b", 1)], [("b", 1), ("a", 1)])
    assert runner.started[2] == ("join", 1)


async def test_step_fires_only_after_all_upstreams_report() -> None:
    release_slow = anyio.Event()
    order: list[str] = []

    async def fast(s: FakeScript) -> Any:
        order.append("fast")
        release_slow.set()
        return 1

    async def slow(s: FakeScript) -> Any:
        await release_slow.wait()
        await anyio.sleep(0.05)
        order.append("slow")
        return 2

    async def join(s: FakeScript) -> Any:
        order.append("join")
        return s.deps

    wf = Workflow("w")
    wf.add_step("slow", js="slow")
    wf.add_step("fast", js="fast")
    wf.add_step("join", js="join", after=["slow", "fast"])
    async with Engine(pool=FakeRunner({"fast": fast, "slow": slow, "join": join})) as engine:
        result = await engine.run(wf)
    assert order == ["fast", "slow", "join"]
    assert result.output == {"slow": 2, "fast": 1}


async def test_failure_skips_downstream_and_independent_branches_keep_running() -> None:
    async def boom(s: FakeScript) -> Any:
        raise ScriptError("TypeError", "x is undefined", "at step")

    wf = Workflow("w")
    wf.add_step("bad", js="boom")
    wf.add_step("after_bad", js="return 1;", after=["bad"])
    wf.add_step("after_that", js="return 1;", after=["after_bad"])
    wf.add_step("good", js="return 2;")
    wf.add_step("after_good", js="return 3;", after=["good"])
    async with Engine(pool=FakeRunner({"boom": boom})) as engine:
        result = await engine.run(wf)
    steps = result.steps
    assert result.status == "failed"
    assert result.failed_steps == ("bad",)
    error = steps["bad"].error
    assert isinstance(error, ScriptFailed)
    assert (error.name, error.message, error.stack) == ("TypeError", "x is undefined", "at step")
    assert steps["after_bad"].status == "skipped"
    assert "'bad' failed" in (steps["after_bad"].reason or "")
    assert steps["after_that"].status == "skipped"
    assert "'after_bad' was skipped" in (steps["after_that"].reason or "")
    assert steps["after_good"].status == "completed"
    assert result.output == {"after_that": None, "after_good": 3}


async def test_failed_attempts_are_retried_after_the_delay() -> None:
    async def flaky(s: FakeScript) -> Any:
        s.log(f"attempt {s.attempt}")
        if s.attempt < 3:
            raise ScriptError("Error", "try again")
        return "ok"

    wf = Workflow("w")
    wf.add_step("flaky", js="flaky", retry=Retry(attempts=4, delay=0.02, backoff=2.0))
    start = anyio.current_time()
    async with (
        Engine(pool=FakeRunner({"flaky": flaky})) as engine,
        engine.bus.subscribe("step.retrying", max_buffer=10) as events,
    ):
        result = await engine.run(wf)
        retrying = [await events.receive(), await events.receive()]
    step = result.steps["flaky"]
    assert (step.status, step.result, step.attempts) == ("completed", "ok", 3)
    assert [line.text for line in step.logs] == ["attempt 1", "attempt 2", "attempt 3"]
    assert anyio.current_time() - start >= 0.06
    assert [(e.attempt, e.delay) for e in retrying if isinstance(e, StepRetrying)] == [
        (1, 0.02),
        (2, 0.04),
    ]


async def test_non_retryable_error_is_not_retried() -> None:
    async def fatal(s: FakeScript) -> Any:
        raise ScriptError("NonRetryableError", "card declined")

    wf = Workflow("w")
    wf.add_step("pay", js="fatal", retry=Retry(attempts=5))
    async with Engine(pool=FakeRunner({"fatal": fatal})) as engine:
        result = await engine.run(wf)
    step = result.steps["pay"]
    assert (step.status, step.attempts) == ("failed", 1)
    assert step.error is not None and step.error.name == "NonRetryableError"
    assert not step.error.retryable


async def test_retries_stop_after_the_last_attempt() -> None:
    async def crash(s: FakeScript) -> Any:
        raise SandboxCrashed("worker died", exit_code=-9)

    wf = Workflow("w")
    wf.add_step("s", js="crash", retry=Retry(attempts=3))
    async with Engine(pool=FakeRunner({"crash": crash})) as engine:
        result = await engine.run(wf)
    step = result.steps["s"]
    assert (step.status, step.attempts) == ("failed", 3)
    assert isinstance(step.error, SandboxFailed) and step.error.name == "SandboxCrashed"


async def test_invalid_values_are_not_retried() -> None:
    async def bad_value(s: FakeScript) -> Any:
        raise InvalidValue("functions cannot cross the sandbox boundary")

    wf = Workflow("w")
    wf.add_step("s", js="bad", retry=Retry(attempts=3))
    async with Engine(pool=FakeRunner({"bad": bad_value})) as engine:
        result = await engine.run(wf)
    assert result.steps["s"].attempts == 1
    assert result.steps["s"].status == "failed"


async def test_a_step_past_its_timeout_fails_and_is_retried() -> None:
    async def hang(s: FakeScript) -> Any:
        await anyio.sleep_forever()

    wf = Workflow("w")
    wf.add_step("hang", js="hang", timeout=0.05, retry=Retry(attempts=2))
    async with Engine(pool=FakeRunner({"hang": hang})) as engine:
        result = await engine.run(wf)
    step = result.steps["hang"]
    assert (step.status, step.attempts) == ("failed", 2)
    assert isinstance(step.error, StepTimedOut) and step.error.timeout == 0.05


async def test_the_engine_timeout_is_the_default_step_timeout() -> None:
    async def hang(s: FakeScript) -> Any:
        await anyio.sleep_forever()

    wf = Workflow("w")
    wf.add_step("hang", js="hang")
    wf.add_step("quick", js="return 1;", timeout=5.0)
    runner = FakeRunner({"hang": hang})
    async with Engine(pool=runner, timeout=0.05) as engine:
        result = await engine.run(wf)
    assert isinstance(result.steps["hang"].error, StepTimedOut)
    assert result.steps["quick"].status == "completed"


async def test_a_runner_that_ignores_its_timeout_is_stopped_by_the_backstop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import actors._attempt

    monkeypatch.setattr(actors._attempt, "BACKSTOP_GRACE", 0.05)

    class Deaf(FakeRunner):
        async def execute(self, code: str, **kwargs: Any) -> Any:
            kwargs["timeout"] = None
            return await super().execute(code, **kwargs)

    async def hang(s: FakeScript) -> Any:
        await anyio.sleep_forever()

    wf = Workflow("w")
    wf.add_step("hang", js="hang", timeout=0.05)
    async with Engine(pool=Deaf({"hang": hang})) as engine:
        result = await engine.run(wf)
    assert isinstance(result.steps["hang"].error, StepTimedOut)


async def test_cancelling_a_run_stops_running_steps_and_skips_the_rest() -> None:
    running = anyio.Event()
    stopped = anyio.Event()

    async def hang(s: FakeScript) -> Any:
        running.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    wf = Workflow("w")
    wf.add_step("done", js="return 1;")
    wf.add_step("hang", js="hang")
    wf.add_step("later", js="return 2;", after=["hang", "done"])
    engine = Engine(pool=FakeRunner({"hang": hang}))
    async with engine, engine.bus.subscribe("step.completed") as completed:
        handle = await engine.start(wf)
        with anyio.fail_after(5):
            assert (await completed.receive()).step == "done"
            await running.wait()
            result = await handle.cancel()
    assert stopped.is_set()
    assert result.status == "cancelled"
    assert result.id == handle.id and handle.done and handle.result is result
    assert result.steps["done"].status == "completed"
    assert result.steps["hang"].status == "cancelled"
    assert result.steps["hang"].attempts == 1
    assert result.steps["later"].status == "skipped", result.steps["later"]


async def test_cancelling_a_finished_run_keeps_its_result() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    async with Engine(pool=FakeRunner()) as engine:
        handle = await engine.start(wf)
        first = await handle.wait()
        assert await handle.cancel() is first
    assert first.status == "completed"


async def test_cancelling_the_caller_of_run_cancels_the_run() -> None:
    running = anyio.Event()
    stopped = anyio.Event()

    async def hang(s: FakeScript) -> Any:
        running.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    wf = Workflow("w")
    wf.add_step("hang", js="hang")
    async with Engine(pool=FakeRunner({"hang": hang})) as engine:
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run, wf)
            await running.wait()
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):
            await stopped.wait()


async def test_leaving_the_engine_cancels_what_still_runs() -> None:
    running = anyio.Event()

    async def hang(s: FakeScript) -> Any:
        running.set()
        await anyio.sleep_forever()

    wf = Workflow("w")
    wf.add_step("hang", js="hang")
    runner = FakeRunner({"hang": hang})
    with anyio.fail_after(5):
        async with Engine(pool=runner) as engine:
            handle = await engine.start(wf)
            await running.wait()
        result = await handle.wait()
    assert result.status == "cancelled"
    assert runner.state == "closed"


async def test_several_sinks_give_a_dict_output_and_one_sink_its_result() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    wf.add_step("b", js="return 2;", after=["a"])
    wf.add_step("c", js="return 3;", after=["a"])
    single = Workflow("single")
    single.add_step("only", js='return {"x": [1, 2]};')
    async with Engine(pool=FakeRunner()) as engine:
        assert (await engine.run(wf)).output == {"b": 2, "c": 3}
        assert (await engine.run(single)).output == {"x": [1, 2]}


async def test_a_step_sees_deps_ctx_and_the_api() -> None:
    seen: dict[str, Any] = {}

    async def inspect(s: FakeScript) -> Any:
        seen.update(deps=s.deps, ctx=s.ctx, api=sorted(s.api))
        return await s.call("double", 21)

    wf = Workflow("w")
    wf.add_step("up", js="return 5;")
    wf.add_step("mid", js="return 6;", after=["up"])
    wf.add_step("look", js="inspect", after=["mid"])
    runner = FakeRunner({"inspect": inspect})
    engine = Engine(pool=runner, api={"double": lambda x: 2 * x}, context={"config": {"k": 1}})
    async with engine:
        result = await engine.run(wf, event={"order": 7})
    assert result.output == 42
    assert seen["deps"] == {"mid": 6}
    assert seen["ctx"] == {
        "event": {"order": 7},
        "config": {"k": 1},
        "run": {"id": result.id, "workflow": "w", "step": "look", "attempt": 1},
    }
    assert seen["api"] == ["double"]


async def test_event_defaults_to_an_empty_object() -> None:
    async def event(s: FakeScript) -> Any:
        return s.ctx["event"]

    wf = Workflow("w")
    wf.add_step("e", js="event")
    async with Engine(pool=FakeRunner({"event": event})) as engine:
        assert (await engine.run(wf)).output == {}


async def test_run_validates_the_workflow_and_freezes_it() -> None:
    broken = Workflow("broken")
    broken.add_step("a", js="return 1;", after=["missing"])
    ok = Workflow("ok")
    ok.add_step("a", js="return 1;")
    async with Engine(pool=FakeRunner()) as engine:
        with pytest.raises(UnknownDependency):
            await engine.run(broken)
        await engine.run(ok)
    with pytest.raises(WorkflowFrozen):
        ok.add_step("b", js="return 2;")


async def test_using_the_engine_outside_its_block_is_an_error() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    with pytest.raises(EngineNotRunning):
        await Engine(pool=FakeRunner()).run(wf)


async def test_an_unopened_pool_is_opened_and_closed_by_the_engine() -> None:
    runner = FakeRunner()
    async with Engine(pool=runner):
        assert runner.state == "open"
    assert runner.state == "closed"


async def test_an_open_pool_is_left_open() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    async with FakeRunner() as runner:
        async with Engine(pool=runner) as engine:
            await engine.run(wf)
        assert runner.is_open
        async with Engine(pool=runner) as engine:
            assert (await engine.run(wf)).output == 1


async def test_many_concurrent_runs_share_one_engine_correctly() -> None:
    async def double(s: FakeScript) -> Any:
        await anyio.sleep(0.01)
        return s.ctx["event"]["n"] * 2

    async def add(s: FakeScript) -> Any:
        return s.deps["a"] + s.deps["b"]

    wf = Workflow("w")
    wf.add_step("a", js="double")
    wf.add_step("b", js="double")
    wf.add_step("sum", js="add", after=["a", "b"])
    runner = FakeRunner({"double": double, "add": add})
    results: dict[int, Any] = {}
    async with Engine(pool=runner) as engine:

        async def one(n: int) -> None:
            results[n] = await engine.run(wf, event={"n": n})

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(one, n)
    assert {n: r.output for n, r in results.items()} == {n: 4 * n for n in range(200)}
    assert len({r.id for r in results.values()}) == 200
    assert runner.max_active > 100


@pytest.mark.parametrize("context", [{"event": 1}, {"run": 1}])
def test_reserved_context_keys_are_refused(context: dict[str, Any]) -> None:
    from actors.errors import InvalidOption

    (key,) = context
    with pytest.raises(InvalidOption, match=f"the engine sets ctx.{key}"):
        Engine(pool=FakeRunner(), context=context)
