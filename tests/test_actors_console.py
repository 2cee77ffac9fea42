"""Console lines: once per attempt on the bus and in the CLI, live when streamed, counted
when truncated."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

import actors._console
from actors import (
    Engine,
    LifecycleEvent,
    Retry,
    StepCompleted,
    StepLogged,
    StepRetrying,
    Workflow,
    log_lifecycle_events,
)
from actors._cli_run import _log_event
from actors._logging import event_fields
from actors.testing import FakeLogLine, FakeRunner, FakeScript
from runtime_pool import RuntimePool
from runtime_pool.errors import ScriptError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.anyio


async def test_each_event_carries_its_own_attempts_lines_and_the_result_all() -> None:
    async def flaky(s: FakeScript) -> Any:
        s.log(f"try {s.attempt}")
        if s.attempt < 3:
            raise ScriptError("Error", "not yet")
        return s.attempt

    wf = Workflow("w")
    wf.add_step("f", js="flaky", retry=Retry(attempts=3, delay=0))
    async with (
        Engine(pool=FakeRunner({"flaky": flaky})) as engine,
        engine.bus.subscribe("step.*") as events,
    ):
        result = await engine.run(wf)
        seen: list[Any] = []
        with anyio.fail_after(2):
            while not seen or not isinstance(seen[-1], StepCompleted):
                seen.append(await events.receive())
    lines = {
        (type(e).__name__, e.attempt): [line.text for line in e.logs]
        for e in seen
        if isinstance(e, StepRetrying | StepCompleted)
    }
    assert lines == {
        ("StepRetrying", 1): ["try 1"],
        ("StepRetrying", 2): ["try 2"],
        ("StepCompleted", 3): ["try 3"],
    }
    assert [line.text for line in result.steps["f"].logs] == ["try 1", "try 2", "try 3"]


@pytest.mark.timeout(60)
def test_the_cli_prints_each_console_line_once_with_its_attempt(tmp_path: Path) -> None:
    js = "console.log(`try ${ctx.run.attempt}`); throw new Error('always');"
    wf = tmp_path / "wf.json"
    retry = {"attempts": 3, "delay": 0.01}
    wf.write_text(json.dumps({"name": "t", "steps": {"f": {"js": js, "retry": retry}}}))
    proc = subprocess.run(
        [sys.executable, "-m", "actors", "run", str(wf)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 1
    console = re.findall(r"step_console +step=f attempt=(\d) line='log: try (\d)'", proc.stderr)
    assert console == [("1", "1"), ("2", "2"), ("3", "3")]


def test_a_log_line_says_how_many_console_lines_it_left_out() -> None:
    lines = tuple(FakeLogLine("log", f"line {n}") for n in range(25))
    event = StepCompleted(run_id="r", workflow="w", step="s", attempt=1, logs=lines)
    _, _, fields = event_fields(event)
    assert len(fields["console"]) == 21
    assert fields["console"][-1] == "[5 more console lines not shown]"
    assert fields["console"][19] == "log: line 19"


def test_durations_in_log_lines_are_rounded_to_the_millisecond() -> None:
    event = StepCompleted(run_id="r", workflow="w", step="s", attempt=1, duration=0.123456789)
    assert event_fields(event)[2]["duration"] == 0.123


# -- live console lines (a runner that streams them) ----------------------------------------


@dataclass(frozen=True)
class StampedLine:
    level: str
    text: str
    timestamp: float


@dataclass(frozen=True)
class Execution:
    value: Any
    logs: tuple[StampedLine, ...]
    duration: float


Script = Callable[[Callable[[str], None]], Any]


class StreamingRunner:
    """A fake runner with the optional ``on_log=`` capability: each script gets a
    ``log(text)`` that reports the line at once."""

    def __init__(self, scripts: Mapping[str, Script]) -> None:
        self.scripts = scripts
        self.is_open = False

    async def __aenter__(self) -> StreamingRunner:
        self.is_open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.is_open = False

    async def execute(
        self,
        code: str,
        *,
        globals: Mapping[str, Any] | None = None,
        api: Mapping[str, Callable[..., Any]] | None = None,
        timeout: float | None = None,
        on_log: Callable[[Any], None] | None = None,
    ) -> Execution:
        written: list[StampedLine] = []

        def log(text: str) -> None:
            line = StampedLine("log", text, time.time())
            written.append(line)
            if on_log is not None:
                on_log(line)

        value = await self.scripts[code](log)
        return Execution(value, tuple(written), 0.0)


async def test_console_lines_reach_the_bus_while_the_step_runs() -> None:
    gate = anyio.Event()

    async def slow(log: Callable[[str], None]) -> int:
        log("working")
        await gate.wait()
        log("done")
        return 1

    wf = Workflow("w")
    wf.add_step("slow", js="slow")
    async with (
        Engine(pool=StreamingRunner({"slow": slow})) as engine,
        engine.bus.subscribe("step.*") as events,
    ):
        handle = await engine.start(wf)
        with anyio.fail_after(2):
            started, first = await events.receive(), await events.receive()
            assert isinstance(first, StepLogged) and not handle.done  # still running
            gate.set()
            second, completed = await events.receive(), await events.receive()
    assert started.topic == "step.started"
    assert (first.topic, first.text, first.attempt) == ("step.log", "working", 1)
    assert isinstance(second, StepLogged) and second.text == "done"
    assert first.timestamp <= second.timestamp <= completed.timestamp
    assert isinstance(completed, StepCompleted)


async def test_lines_wait_for_their_step_started_held_up_by_a_full_blocking_subscriber() -> None:
    async def chatty(log: Callable[[str], None]) -> int:
        for n in range(3):
            log(f"line {n}")
        return 1

    async def quiet(log: Callable[[str], None]) -> int:
        return 2

    wf = Workflow("w")
    wf.add_step("first", js="chatty")
    wf.add_step("second", js="chatty", after=["first"])
    wf.add_step("third", js="quiet", after=["second"])
    engine = Engine(pool=StreamingRunner({"chatty": chatty, "quiet": quiet}))
    async with (
        engine,
        engine.bus.subscribe(
            "step.started", policy="block", max_buffer=1, block_timeout=math.inf
        ) as starts,  # first: a publish waits here before it reaches `seen`
        engine.bus.subscribe("step.*") as seen,
    ):
        handle = await engine.start(wf)
        with anyio.fail_after(5):
            for step in ("first", "second"):  # the next step.started waits for room
                await anyio.wait_all_tasks_blocked()
                assert not handle.done
                assert (await starts.receive()).step == step
            await handle.wait()
            got = [await seen.receive() for _ in range(12)]
    lines = [("step.log", f"line {n}") for n in range(3)]
    assert [(e.topic, getattr(e, "text", e.step)) for e in got] == [
        ("step.started", "first"),
        *lines,
        ("step.completed", "first"),
        ("step.started", "second"),
        *lines,
        ("step.completed", "second"),
        ("step.started", "third"),
        ("step.completed", "third"),
    ]


async def test_streamed_lines_are_capped_and_the_drop_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actors._console, "MAX_STREAMED_LINES", 3)

    async def chatty(log: Callable[[str], None]) -> int:
        for n in range(10):
            log(f"line {n}")
        return 1

    wf = Workflow("w")
    wf.add_step("chatty", js="chatty")
    async with (
        Engine(pool=StreamingRunner({"chatty": chatty})) as engine,
        engine.bus.subscribe("step.log") as events,
    ):
        await engine.run(wf)
        with anyio.fail_after(2):
            texts = [(await events.receive()).text for _ in range(4)]  # type: ignore[union-attr]
    assert texts == ["line 0", "line 1", "line 2", "[7 console lines dropped]"]


def test_the_cli_prints_a_streamed_line_once() -> None:
    line = FakeLogLine("log", "hello")
    ids: dict[str, Any] = {"run_id": "r", "workflow": "w", "step": "s", "attempt": 1}
    events: list[LifecycleEvent] = [
        StepLogged(level="log", text="hello", **ids),
        StepCompleted(logs=(line,), **ids),
    ]
    streamed: set[tuple[str | None, int | None]] = set()
    with capture_logs() as logs:
        for event in events:
            _log_event(event, streamed)
    assert [e["line"] for e in logs if e["event"] == "step_console"] == ["log: hello"]


class RecordingLogger:
    """A logger for ``log_lifecycle_events``: keeps each line; ``ended`` after run_completed."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.ended = anyio.Event()

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, **fields})
        if event == "run_completed":
            self.ended.set()

    warning = error = info


async def test_the_log_subscriber_logs_streamed_lines_once() -> None:
    async def talk(log: Callable[[str], None]) -> int:
        log("hi")
        return 1

    wf = Workflow("w")
    wf.add_step("talk", js="talk")
    recorder = RecordingLogger()
    async with (
        Engine(pool=StreamingRunner({"talk": talk})) as engine,
        anyio.create_task_group() as tg,
    ):
        await tg.start(partial(log_lifecycle_events, engine.bus, logger=recorder))
        await engine.run(wf)
        with anyio.fail_after(2):
            await recorder.ended.wait()
        tg.cancel_scope.cancel()
    by_event = {line["event"]: line for line in recorder.lines}
    assert by_event["step_log"]["line"] == "log: hi"
    assert [line["event"] for line in recorder.lines].count("step_log") == 1
    assert "console" not in by_event["step_completed"]


async def test_console_lines_of_real_js_reach_the_bus_while_the_step_awaits() -> None:
    """The same on the real pool: the line is on the bus before the host call returns."""
    gate = anyio.Event()

    async def wait() -> None:
        await gate.wait()

    wf = Workflow("w")
    wf.add_step("slow", js="console.log('working', 1); await wait(); console.warn('done');")
    async with (
        Engine(pool=RuntimePool(size=1), api={"wait": wait}) as engine,
        engine.bus.subscribe("step.*") as events,
    ):
        handle = await engine.start(wf)
        with anyio.fail_after(10):
            started, first = await events.receive(), await events.receive()
            assert isinstance(first, StepLogged) and not handle.done  # still awaiting
            gate.set()
            second, completed = await events.receive(), await events.receive()
    assert started.topic == "step.started"
    assert (first.text, first.attempt) == ("working 1", 1)
    assert isinstance(second, StepLogged) and (second.level, second.text) == ("warn", "done")
    assert isinstance(completed, StepCompleted)
    assert [line.text for line in completed.logs] == ["working 1", "done"]
