"""Bus events as JSON text, for the events engines share through a store.

:func:`encode_event` turns a lifecycle event (or a published message) into JSON
text, :func:`decode_event` reads it back as the same class with the same fields:
errors as the :class:`~actors.errors.StepError` class they were (without their
``cause``), console lines as ``(level, text)`` records. A published payload that
is not JSON data is not shared (``encode_event`` returns ``None``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from actors import _events as ev
from actors._store_codec import StoredLog, error_from_data, error_to_data
from actors._values import first_non_json
from actors.errors import StepError

__all__ = ("decode_event", "encode_event")

_KINDS: tuple[type[ev.LifecycleEvent], ...] = (
    ev.RunStarted, ev.StepStarted, ev.StepLogged, ev.HostCalled, ev.StepCompleted,
    ev.StepFailed, ev.StepRetrying, ev.StepSkipped, ev.StepCancelled, ev.RunCompleted,
    ev.RunFailed, ev.RunCancelled,
)  # fmt: skip
_CLASSES = {cls.__dataclass_fields__["topic"].default: cls for cls in _KINDS}


def encode_event(event: ev.BusEvent) -> str | None:
    """``event`` as JSON text, or ``None`` for a payload that is not JSON data."""
    if isinstance(event, ev.Published):
        if first_non_json(event.payload, "payload") is not None:
            return None
        data = {"topic": event.topic, "payload": event.payload, "timestamp": event.timestamp}
        return json.dumps({"published": data}, separators=(",", ":"))
    fields = {}
    for field in dataclasses.fields(event):
        if field.name != "topic":
            fields[field.name] = _plain(getattr(event, field.name))
    return json.dumps({event.topic: fields}, separators=(",", ":"), default=repr)


def decode_event(text: str) -> ev.BusEvent | None:
    """The event :func:`encode_event` wrote (``None`` for an unknown kind)."""
    ((kind, data),) = json.loads(text).items()
    if kind == "published":
        return ev.Published(**data)
    cls = _CLASSES.get(kind)
    if cls is None:
        return None
    known = {f.name for f in dataclasses.fields(cls)} - {"topic"}
    values = {name: value for name, value in data.items() if name in known}
    if isinstance(values.get("error"), dict):
        values["error"] = error_from_data(values["error"])
    if "logs" in values:
        values["logs"] = tuple(StoredLog(level, text) for level, text in values["logs"])
    if isinstance(values.get("arguments"), list):
        values["arguments"] = tuple(values["arguments"])
    if isinstance(values.get("failed"), list):
        values["failed"] = tuple(values["failed"])
    return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, StepError):
        return error_to_data(value)
    if isinstance(value, tuple) and value and hasattr(value[0], "level"):
        return [[entry.level, entry.text] for entry in value]
    return value
