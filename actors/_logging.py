"""A structlog subscriber: one structured log line per lifecycle event."""

from __future__ import annotations

from typing import Any

import anyio
import structlog
from anyio.abc import TaskStatus

from actors._bus import EventBus
from actors._events import BusEvent, Published

__all__ = ("event_fields", "log_lifecycle_events")

_LEVELS = {"step.failed": "error", "run.failed": "error", "step.retrying": "warning"}
_MAX_VALUE_CHARS = 200
_OPTIONAL = ("step", "attempt", "duration", "delay", "reason", "failed")


async def log_lifecycle_events(
    bus: EventBus,
    *,
    pattern: str = "*",
    logger: Any = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Log each event matching ``pattern`` until cancelled.

    Start it in a task group: ``await tg.start(log_lifecycle_events, engine.bus)``.
    Uses ``structlog.get_logger("actors.events")`` unless ``logger`` is given. Its
    queue blocks publishers for at most a second, then drops (and says so).
    """
    log = logger if logger is not None else structlog.get_logger("actors.events")
    async with bus.subscribe(pattern, policy="block", block_timeout=1.0) as events:
        task_status.started()
        async for event in events:
            level, name, fields = event_fields(event)
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
    if error is not None:
        fields["error_name"] = error.name
        fields["error"] = error.message
    for key in ("result", "output"):
        if hasattr(event, key):
            fields[key] = _short(getattr(event, key))
    logs = getattr(event, "logs", ())
    if logs:
        fields["console"] = [f"{line.level}: {line.text}" for line in logs][:20]
    return _LEVELS.get(event.topic, "info"), name, fields


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."
