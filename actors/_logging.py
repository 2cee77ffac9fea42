"""A structlog subscriber: one structured log line per lifecycle event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors._bus import EventBus
from actors._events import BusEvent, LifecycleEvent, Published, StepLogged
from actors._log import get_logger, round_durations

__all__ = ("event_fields", "log_lifecycle_events")

_LEVELS = {"step.failed": "error", "run.failed": "error", "step.retrying": "warning"}
_MAX_VALUE_CHARS = 200
_MAX_CONSOLE_LINES = 20  # per event; the line after them says how many more there were
_OPTIONAL = (
    *("step", "attempt", "index", "function", "duration", "delay", "reason", "failed"),
    *("waits_for", "match", "until"),  # step.waiting
    "parent_run_id",
)


async def log_lifecycle_events(
    bus: EventBus,
    *,
    pattern: str = "*",
    logger: Any = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Log each event matching ``pattern`` until cancelled.

    Start it in a task group: ``await tg.start(log_lifecycle_events, engine.bus)``.
    Uses the library's ``actors.events`` logger (the application's structlog
    set-up, or warnings only on stderr when there is none) unless ``logger`` is
    given. Its queue blocks publishers for at most a second, then drops (and says so).
    """
    log = logger if logger is not None else get_logger("actors.events")
    streamed: set[tuple[str, str | None, int | None]] = set()
    async with bus.subscribe(pattern, policy="block", block_timeout=1.0) as events:
        task_status.started()
        async for event in events:
            level, name, fields = event_fields(event)
            if isinstance(event, LifecycleEvent):
                attempt_id = (event.run_id, event.step, event.attempt)
                if isinstance(event, StepLogged):
                    streamed.add(attempt_id)
                elif attempt_id in streamed:
                    fields.pop("console", None)  # its lines were logged as they came
            getattr(log, level)(name, **fields)


def event_fields(event: BusEvent) -> tuple[str, str, dict[str, Any]]:
    """``(level, snake_case event name, key-value fields)`` for one bus event."""
    name = event.topic.replace(".", "_")
    if isinstance(event, Published):
        return "info", "bus_message", {"topic": event.topic}
    fields: dict[str, Any] = {"run_id": event.run_id, "workflow": event.workflow}
    for key in _OPTIONAL:
        value = getattr(event, key, None)
        if value is not None:
            fields[key] = value
    error = getattr(event, "error", None)
    if isinstance(error, str):  # host.called: the exception's class name
        fields["error_name"] = error
    elif error is not None:
        fields["error_name"] = error.name
        fields["error"] = error.message
    for key in ("result", "output"):
        if hasattr(event, key):
            fields[key] = _short(getattr(event, key))
    if isinstance(event, StepLogged):
        fields["line"] = f"{event.level}: {event.text}"
    logs = getattr(event, "logs", ())
    if logs:
        fields["console"] = _console_lines(logs)
    return _LEVELS.get(event.topic, "info"), name, round_durations(fields)


def _console_lines(logs: Sequence[Any]) -> list[str]:
    lines = [f"{line.level}: {line.text}" for line in logs[:_MAX_CONSOLE_LINES]]
    if len(logs) > _MAX_CONSOLE_LINES:
        more = len(logs) - _MAX_CONSOLE_LINES
        lines.append(f"[{more} more console line{'s' * (more != 1)} not shown]")
    return lines


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."
