"""Console lines survive every way a run stops: cancellation, heap and memory breaches,
eviction with a rerun (each line passed on once), in the pool, the engine and the CLI;
past the cap, the streamed lines end with the marker's final count."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, Retry, RunResult, StepCancelled, StepLogged, Workflow
from runtime_pool import LogLine, RuntimePool, errors
from tests.pool_helpers import assert_pool_works

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.anyio

GROWTH = "const a = []; for (;;) a.push({ i: a.length, s: 'x' + a.length });"
OUTSIDE_THE_HEAP = (
    "const keep = []; for (let i = 0; i < 64; i++) keep.push(new Uint8Array(32 * 2**20).fill(1));"
)


class SlowCall:
    """An async host function that says it was called, then waits to be cancelled."""

    def __init__(self) -> None:
        self.called = anyio.Event()

    async def __call__(self) -> None:
        self.called.set()
        await anyio.sleep(30)


# -- the pool ------------------------------------------------------------------------------


async def test_a_cancelled_run_hands_on_log_every_line_written_before_the_stop() -> None:
    lines: list[tuple[str, str]] = []
    slow = SlowCall()
    # The second line is written after the host call went out, racing the cancel.
    code = "console.log('before'); const p = slow(); console.warn('while waiting'); await p;"
    async with RuntimePool(size=1) as pool:
        async with anyio.create_task_group() as tg:
            run = partial(
                pool.execute,
                code,
                api={"slow": slow},
                on_log=lambda line: lines.append((line.level, line.text)),
            )
            tg.start_soon(run)
            with anyio.fail_after(10):
                await slow.called.wait()
            tg.cancel_scope.cancel()
        assert lines == [("log", "before"), ("warn", "while waiting")]
        await assert_pool_works(pool)


@pytest.mark.parametrize(
    ("script", "error", "options"),
    [
        (GROWTH, errors.HeapLimitExceeded, {"heap_limit": 32 * 2**20}),
        (OUTSIDE_THE_HEAP, errors.MemoryLimitExceeded, {"memory_limit": 256 * 2**20}),
        ("for (;;) {}", errors.ScriptTimeout, {"timeout": 0.3}),
    ],
    ids=["heap", "memory", "loop_past_its_deadline"],
)
async def test_a_run_whose_runtime_was_stopped_keeps_its_streamed_lines(
    script: str, error: type[errors.RuntimePoolError], options: dict[str, Any]
) -> None:
    streamed: list[LogLine] = []
    async with RuntimePool(size=1, **options) as pool:
        with pytest.raises(error) as caught:
            code = "console.log('first'); console.error('second'); " + script
            await pool.execute(code, timeout=options.get("timeout", 20), on_log=streamed.append)
        await assert_pool_works(pool)
    assert streamed == [LogLine("log", "first"), LogLine("error", "second")]
    assert caught.value.logs == tuple(streamed)


async def test_a_rerun_after_an_eviction_passes_each_line_on_once() -> None:
    victim_logged = anyio.Event()
    victim_lines: list[str] = []

    def on_victim_log(line: LogLine) -> None:
        victim_lines.append(line.text)
        victim_logged.set()

    async def when_the_victim_logged() -> None:
        with anyio.fail_after(10):
            await victim_logged.wait()

    victim = "console.log('victim'); await new Promise((r) => setTimeout(r, 800)); return 'ok'"
    breaker = "console.log('breaker'); await go(); " + GROWTH
    outcomes: dict[str, Any] = {}

    async def run(name: str, code: str, **options: Any) -> None:
        try:
            outcomes[name] = await pool.execute(code, **options)
        except errors.RuntimePoolError as exc:
            outcomes[name] = exc

    async with RuntimePool(size=1, concurrency=4, heap_limit=32 * 2**20) as pool:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(run, "victim", victim, on_log=on_victim_log))
            api = {"go": when_the_victim_logged}
            tg.start_soon(partial(run, "breaker", breaker, api=api, on_log=lambda _: None))
        assert pool.statistics().reruns >= 1  # the victim ran again, alone
    assert outcomes["victim"].value == "ok"
    assert victim_lines == ["victim"]
    assert [line.text for line in outcomes["victim"].logs] == ["victim"]
    assert isinstance(outcomes["breaker"], errors.RuntimePoolError)
    assert [line.text for line in outcomes["breaker"].logs] == ["breaker"]


async def test_a_capped_stream_ends_with_the_markers_final_count() -> None:
    streamed: list[LogLine] = []
    async with RuntimePool(size=1) as pool:
        execution = await pool.execute(
            "for (let i = 0; i < 1500; i++) console.log('line', i);", on_log=streamed.append
        )
    assert len(streamed) == 1001
    assert streamed[-1] == LogLine("warn", "[console output truncated: 500 lines dropped]")
    assert tuple(streamed) == execution.logs


# -- the engine ----------------------------------------------------------------------------


async def cancel_once_called(wf: Workflow, slow: SlowCall) -> tuple[RunResult, list[Any]]:
    """Run ``wf``, cancel it once it called ``slow``; its result and every event of it."""
    seen: list[Any] = []
    async with Engine(api={"slow": slow}) as engine, engine.bus.subscribe("*") as events:
        handle = await engine.start(wf)
        with anyio.fail_after(10):
            await slow.called.wait()
        result = await handle.cancel()
        with anyio.fail_after(5):
            while not seen or seen[-1].topic != "run.cancelled":
                seen.append(await events.receive())
    return result, seen


async def test_a_cancelled_step_keeps_its_lines_in_its_result_and_events() -> None:
    slow = SlowCall()
    wf = Workflow("w")
    wf.add_step("slow", js="console.log('one'); const p = slow(); console.warn('two'); await p;")
    result, seen = await cancel_once_called(wf, slow)
    step = result.steps["slow"]
    assert (step.status, step.attempts) == ("cancelled", 1)
    assert [(line.level, line.text) for line in step.logs] == [("log", "one"), ("warn", "two")]
    assert [e.text for e in seen if isinstance(e, StepLogged)] == ["one", "two"]
    cancelled = [e for e in seen if isinstance(e, StepCancelled)]
    assert len(cancelled) == 1
    assert cancelled[0].step == "slow"
    assert cancelled[0].reason == "run cancelled while running"
    assert [line.text for line in cancelled[0].logs] == ["one", "two"]
    topics = [e.topic for e in seen]
    assert topics.index("step.cancelled") > max(i for i, t in enumerate(topics) if t == "step.log")


async def test_a_step_cancelled_on_a_retry_keeps_every_attempts_lines() -> None:
    slow = SlowCall()
    wf = Workflow("w")
    js = "console.log(`try ${ctx.run.attempt}`); if (ctx.run.attempt < 2) throw new Error('x');"
    wf.add_step("f", js=js + " await slow();", retry=Retry(attempts=2, delay=0))
    result, seen = await cancel_once_called(wf, slow)
    [event] = [e for e in seen if isinstance(e, StepCancelled)]
    assert [line.text for line in result.steps["f"].logs] == ["try 1", "try 2"]
    assert (event.attempt, [line.text for line in event.logs]) == (2, ["try 2"])


async def test_a_chatty_steps_lines_are_all_published_up_to_the_pools_marker() -> None:
    wf = Workflow("w")
    wf.add_step("chatty", js="for (let i = 0; i < 1500; i++) console.log('line', i);")
    async with Engine() as engine, engine.bus.subscribe("step.*", max_buffer=2000) as events:
        await engine.run(wf)
        texts: list[str] = []
        with anyio.fail_after(5):
            while (event := await events.receive()).topic != "step.completed":
                if isinstance(event, StepLogged):
                    texts.append(event.text)
    assert texts == [f"line {i}" for i in range(1000)] + [
        "[console output truncated: 500 lines dropped]"
    ]


async def test_a_step_that_broke_the_heap_limit_keeps_its_lines() -> None:
    wf = Workflow("w")
    wf.add_step("grow", js="console.log('growing'); " + GROWTH, retry=Retry(attempts=1))
    async with Engine(pool=RuntimePool(size=1, heap_limit=32 * 2**20)) as engine:
        result = await engine.run(wf)
    step = result.steps["grow"]
    assert step.error is not None and step.error.name == "HeapLimitExceeded"
    assert [line.text for line in step.logs] == ["growing"]


# -- the CLI -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_cli_prints_a_cancelled_steps_lines_once(tmp_path: Path) -> None:
    (tmp_path / "slowhost.py").write_text(
        "import anyio\nasync def slow():\n    await anyio.sleep(30)\nAPI = {'slow': slow}\n"
    )
    js = "console.log('one'); const p = slow(); console.warn('two'); await p;"
    (tmp_path / "wf.json").write_text(f'{{"name": "t", "steps": {{"s": {{"js": "{js}"}}}}}}')
    command = ["run", "wf.json", "--api", "slowhost:API", "--timeout", "1.5"]
    proc = subprocess.run(
        [sys.executable, "-m", "actors", *command],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 1, proc.stderr
    console = re.findall(r"step_console +step=s attempt=1 line='(\w+: \w+)'", proc.stderr)
    assert console == ["log: one", "warn: two"]
    assert re.search(
        r"step_cancelled +step=s attempt=1 .*reason='run timed out after 1.5 s", proc.stderr
    )
    assert "still running: 's' (attempt 1" in proc.stderr
