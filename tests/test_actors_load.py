"""The engine under load (fake runner): step deadlines count from the script's start,
``step.started`` says when a script started, and admission control bounds active runs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Engine, EngineStatistics, Retry, RunCompleted, StepStarted, Workflow
from actors.errors import InvalidOption, StepTimedOut
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


def gated(gate: anyio.Event) -> Any:
    async def script(s: FakeScript) -> Any:
        await gate.wait()
        return s.step

    return script


async def test_a_step_waiting_for_capacity_does_not_time_out() -> None:
    release = anyio.Event()
    wf = Workflow("w")
    wf.add_step("holder", js="hold", timeout=30)
    wf.add_step("queued", js='return "ran";', timeout=0.05, retry=Retry(attempts=1))
    runner = FakeRunner({"hold": gated(release)}, capacity=1)
    async with Engine(pool=runner) as engine:
        handle = await engine.start(wf)
        await anyio.wait_all_tasks_blocked()
        assert runner.waiting == 1
        await anyio.sleep(0.2)  # the queued step waits four times its timeout
        release.set()
        result = await handle.wait()
    assert result.status == "completed", result.steps["queued"].error
    assert (result.steps["queued"].result, result.steps["queued"].attempts) == ("ran", 1)
    assert runner.max_active == 1


async def test_a_step_still_times_out_once_it_has_started() -> None:
    async def hang(s: FakeScript) -> Any:
        await anyio.sleep_forever()

    wf = Workflow("w")
    wf.add_step("hang", js="hang", timeout=0.05, retry=Retry(attempts=2))
    runner = FakeRunner({"hang": hang}, capacity=1)
    async with Engine(pool=runner) as engine:
        result = await engine.run(wf)
    step = result.steps["hang"]
    assert (step.status, step.attempts) == ("failed", 2)
    assert isinstance(step.error, StepTimedOut)


async def test_step_started_is_published_when_the_script_starts_not_while_it_waits() -> None:
    release = anyio.Event()
    wf = Workflow("w")
    wf.add_step("first", js="hold")
    wf.add_step("second", js="return 2;")
    runner = FakeRunner({"hold": gated(release)}, capacity=1)
    engine = Engine(pool=runner)
    async with engine, engine.bus.subscribe("step.*") as events:
        handle = await engine.start(wf)
        with anyio.fail_after(5):
            first = await events.receive()
            await anyio.wait_all_tasks_blocked()
            assert runner.waiting == 1
            assert events.statistics().queued == 0  # the waiting step announced nothing
            release.set()
            await handle.wait()
            rest = [await events.receive() for _ in range(3)]
    assert isinstance(first, StepStarted) and first.step == "first"
    assert [(e.topic, e.step) for e in rest] == [
        ("step.completed", "first"),
        ("step.started", "second"),
        ("step.completed", "second"),
    ]
    assert rest[1].attempt == 1
    assert rest[1].timestamp > first.timestamp


async def test_each_retry_announces_its_own_attempt_when_it_starts() -> None:
    async def flaky(s: FakeScript) -> Any:
        if s.attempt == 1:
            raise TimeoutError  # stands in for a step that overran
        return s.attempt

    wf = Workflow("w")
    wf.add_step("flaky", js="flaky", timeout=5, retry=Retry(attempts=2, delay=0))
    engine = Engine(pool=FakeRunner({"flaky": flaky}, capacity=1))
    async with engine, engine.bus.subscribe("step.*") as events:
        await engine.run(wf)
        got = [await events.receive() for _ in range(4)]
    assert [(e.topic, e.attempt) for e in got] == [
        ("step.started", 1),
        ("step.retrying", 1),
        ("step.started", 2),
        ("step.completed", 2),
    ]


async def test_a_runner_without_on_start_still_announces_each_start() -> None:
    class Plain:
        """A runner written before ``on_start`` existed."""

        def __init__(self) -> None:
            self.inner = FakeRunner()

        @property
        def is_open(self) -> bool:
            return self.inner.is_open

        async def __aenter__(self) -> Plain:
            await self.inner.__aenter__()
            return self

        async def __aexit__(self, *exc_info: Any) -> None:
            await self.inner.__aexit__(*exc_info)

        async def execute(self, code: str, *, globals: Any, api: Any, timeout: Any) -> Any:
            return await self.inner.execute(code, globals=globals, api=api, timeout=timeout)

    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    engine = Engine(pool=Plain())  # type: ignore[arg-type]
    async with engine, engine.bus.subscribe("step.*") as events:
        assert (await engine.run(wf)).output == 1
        got = [await events.receive() for _ in range(2)]
    assert [e.topic for e in got] == ["step.started", "step.completed"]


async def test_a_step_cancelled_while_it_waits_to_start_says_so() -> None:
    release = anyio.Event()
    wf = Workflow("w")
    wf.add_step("holder", js="hold")
    wf.add_step("queued", js="return 1;")
    runner = FakeRunner({"hold": gated(release)}, capacity=1)
    async with Engine(pool=runner) as engine:
        handle = await engine.start(wf)
        await anyio.wait_all_tasks_blocked()
        assert runner.waiting == 1
        result = await handle.cancel()
    queued = result.steps["queued"]
    assert (queued.status, queued.duration) == ("cancelled", 0.0)
    assert queued.reason == "run cancelled while the step waited to start"
    assert result.steps["holder"].reason == "run cancelled while running"


async def test_a_run_s_final_event_waits_for_slow_subscribers_like_any_other() -> None:
    # The block subscriber takes 1.5 s to make room; its block_timeout (3 s) allows it,
    # so the final event must reach it and every subscriber after it, not be cut off.
    wf = _one_step("return 1;")
    engine = Engine(pool=FakeRunner())
    async with (
        engine,
        engine.bus.subscribe("run.*", max_buffer=1, policy="block", block_timeout=3) as slow,
        engine.bus.subscribe("run.*", max_buffer=10) as other,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run, wf)
            await anyio.wait_all_tasks_blocked()  # run.completed waits for room in slow
            await anyio.sleep(1.5)
            assert (await slow.receive()).topic == "run.started"
        assert (await slow.receive()).topic == "run.completed"
        assert [(await other.receive()).topic for _ in range(2)] == [
            "run.started",
            "run.completed",
        ]
        assert slow.statistics().dropped == 0


# ---- admission control ------------------------------------------------------------


def _one_step(js: str) -> Workflow:
    wf = Workflow("w")
    wf.add_step("s", js=js)
    return wf


async def test_start_waits_while_max_active_runs_are_under_way() -> None:
    release = anyio.Event()
    wf = _one_step("hold")
    async with Engine(pool=FakeRunner({"hold": gated(release)}), max_active_runs=2) as engine:
        first, second = await engine.start(wf), await engine.start(wf)
        third: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def start_third() -> None:
                third.append(await engine.start(wf))

            tg.start_soon(start_third)
            await anyio.wait_all_tasks_blocked()
            assert third == []
            stats = engine.statistics()
            assert (stats.active, stats.waiting, stats.finished) == (2, 1, 0)
            release.set()
        results = [await h.wait() for h in (first, second, *third)]
    assert [r.status for r in results] == ["completed"] * 3
    assert engine.statistics() == EngineStatistics(
        max_active_runs=2,
        active=0,
        waiting=0,
        finished=3,
        completed=3,
        failed=0,
        cancelled=0,
        peak_active=2,
        peak_waiting=1,
    )


async def test_finished_runs_are_counted_by_status() -> None:
    hold = anyio.Event()
    wf_ok, wf_bad, wf_hold = _one_step("return 1;"), _one_step("nope"), _one_step("hold")
    async with Engine(pool=FakeRunner({"hold": gated(hold)})) as engine:
        await engine.run(wf_ok)
        await engine.run(wf_bad)
        handle = await engine.start(wf_hold)
        await anyio.wait_all_tasks_blocked()
        await handle.cancel()
    stats = engine.statistics()
    assert (stats.completed, stats.failed, stats.cancelled, stats.finished) == (1, 1, 1, 3)
    assert stats.active == 0


async def test_a_start_cancelled_while_waiting_takes_no_place() -> None:
    release = anyio.Event()
    wf = _one_step("hold")
    async with Engine(pool=FakeRunner({"hold": gated(release)}), max_active_runs=1) as engine:
        holder = await engine.start(wf)
        with anyio.move_on_after(0.05):
            await engine.start(wf)
        assert engine.statistics().waiting == 0
        release.set()
        await holder.wait()
        assert (await engine.run(wf)).status == "completed"
    assert engine.statistics().active == 0


async def test_a_triggering_publish_waits_for_admission_first_come_first_served() -> None:
    release = anyio.Event()
    seen: list[int] = []

    async def hold(s: FakeScript) -> Any:
        seen.append(s.ctx["event"]["n"])
        await release.wait()
        return s.ctx["event"]["n"]

    engine = Engine(pool=FakeRunner({"hold": hold}), max_active_runs=1)
    engine.on("job", _one_step("hold"))
    published: list[int] = []

    async def publish(n: int) -> None:
        handles = await engine.bus.publish("job", {"n": n})
        published.append(len(handles))

    async with engine, engine.bus.subscribe("run.completed", max_buffer=10) as done:
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(publish, n)
            await anyio.wait_all_tasks_blocked()
            stats = engine.statistics()
            assert (stats.active, stats.waiting) == (1, 2)
            assert published == [1]  # the first publish returned; two wait for a place
            release.set()
        with anyio.fail_after(5):
            outputs = [(await done.receive()) for _ in range(3)]
    assert all(isinstance(e, RunCompleted) for e in outputs)
    assert [e.output for e in outputs if isinstance(e, RunCompleted)] == [0, 1, 2]
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "10"])
def test_max_active_runs_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(InvalidOption, match="max_active_runs"):
        Engine(pool=FakeRunner(), max_active_runs=value)


def test_the_default_admits_a_hundred_runs_at_once() -> None:
    assert Engine(pool=FakeRunner()).statistics().max_active_runs == 100
