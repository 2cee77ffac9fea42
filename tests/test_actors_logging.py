"""The structlog subscriber: one structured line per lifecycle event."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from actors import Engine, EventBus, Retry, StepFailed, Workflow, log_lifecycle_events
from actors._logging import event_fields
from actors.errors import ScriptFailed
from actors.testing import FakeRunner, FakeScript
from runtime_pool.errors import ScriptError

pytestmark = pytest.mark.anyio


def test_event_fields_are_snake_case_with_bound_ids() -> None:
    error = ScriptFailed("s", "TypeError", "boom", attempt=2)
    event = StepFailed(run_id="r1", workflow="w", step="s", attempt=2, error=error, duration=0.5)
    level, name, fields = event_fields(event)
    assert (level, name) == ("error", "step_failed")
    assert fields == {
        "run_id": "r1",
        "workflow": "w",
        "step": "s",
        "attempt": 2,
        "duration": 0.5,
        "error_name": "TypeError",
        "error": "boom",
    }


async def test_engine_logs_each_lifecycle_event_as_one_line() -> None:
    async def flaky(s: FakeScript) -> Any:
        if s.attempt == 1:
            raise ScriptError("Error", "first try fails")
        return "x" * 1000

    wf = Workflow("w")
    wf.add_step("flaky", js="flaky", retry=Retry(attempts=2))
    with capture_logs() as logs:
        async with Engine(pool=FakeRunner({"flaky": flaky}), log_events=True) as engine:
            result = await engine.run(wf)
            await anyio.wait_all_tasks_blocked()  # the logger drains its queue
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [
        ("run_started", "info"),
        ("step_started", "info"),
        ("step_retrying", "warning"),
        ("step_started", "info"),
        ("step_completed", "info"),
        ("run_completed", "info"),
    ]
    assert all(e["run_id"] == result.id for e in logs)
    assert len(logs[4]["result"]) < 300  # long values are shortened


async def test_the_subscriber_can_run_in_any_task_group() -> None:
    bus = EventBus()
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(log_lifecycle_events, bus)
            await bus.publish("order.created", {"id": 1})
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert logs == [{"event": "bus_message", "topic": "order.created", "log_level": "info"}]
