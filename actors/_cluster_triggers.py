"""Triggers across engines: events published on any engine of a shared store.

On a shared store (PostgreSQL), ``bus.publish`` records the event durably before
it returns (``TriggerTable.recorder``) and starts the publishing engine's matching
triggers at once. Every engine also reads the recorded events (woken by the
store's notification, with a slow fallback poll) and starts its matching
triggers for them. Each such run has a key naming the event and the trigger (or
the trigger's own ``key(payload)``), so exactly one run starts per event and
trigger, whichever engine gets there first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from actors._cluster_tail import Tail, TailRow
from actors._log import get_logger
from actors._run import RunHandle
from actors._subscription import topic_matches
from actors._trigger import Trigger, trigger_key
from actors._workflow import Workflow
from actors.errors import ActorsError, StoreError, UnknownRun

__all__ = ("EventStore", "event_store", "serve_triggers")

logger = get_logger(__name__)

_BATCH = 500
_FALLBACK_POLL = 2.0  # seconds between looks when no notification comes

Start = Callable[..., Awaitable[RunHandle]]


@runtime_checkable
class EventStore(Protocol):
    """A store that shares published events between engines."""

    async def record_event(self, topic: str, payload: Any) -> int: ...

    async def events_after(self, tail: Tail, limit: int) -> list[TailRow]: ...

    async def wait_for_events(self, timeout: float) -> None: ...

    async def known_keys(self, keys: Sequence[str]) -> set[str]: ...


def event_store(store: object) -> EventStore | None:
    """``store`` when it shares events (and may be written), else ``None``."""
    if isinstance(store, EventStore) and not getattr(store, "read_only", False):
        return store
    return None


async def serve_triggers(store: EventStore, triggers: Sequence[Trigger], start: Start) -> None:
    """Start this engine's matching ``triggers`` for every recorded event, for ever
    (from the first event recorded: keys skip those started before)."""
    tail = Tail()
    while True:
        after = Tail(tail.cursor, tail.seen)  # kept only once the runs are started
        try:
            rows = await store.events_after(tail, _BATCH)
            todo = []
            for row in after.take(rows):
                topic, payload = row.data
                event_id = row.position.id
                todo += [(t, payload, event_id) for t in tuple(triggers) if _fires(t, str(topic))]
            await _start_all(store, start, todo)
            tail = after
        except StoreError as exc:  # the next look reads these events again
            logger.warning("trigger_events_not_read", error=str(exc))
            rows = []
        if len(rows) < _BATCH:
            await store.wait_for_events(_FALLBACK_POLL)


def _fires(trigger: Trigger, topic: str) -> bool:
    return trigger.active and topic_matches(trigger.pattern, topic)


async def _start_all(store: EventStore, start: Start, todo: list[tuple[Trigger, Any, int]]) -> None:
    """Start the runs of ``todo`` but those another engine started already."""
    keyed = []
    for trigger, payload, event_id in todo:
        try:
            keyed.append((trigger, payload, event_id, trigger_key(trigger, payload, event_id)))
        except Exception as exc:  # the user's key function failed
            logger.error("trigger_not_started", event_id=event_id, error=repr(exc))
    known = await store.known_keys([key for *_, key in keyed if key is not None])
    for trigger, payload, event_id, key in keyed:
        if key not in known:
            await _start(start, trigger, payload, event_id, key)


async def _start(start: Start, trigger: Trigger, payload: Any, event_id: int, key: Any) -> None:
    workflow: Workflow = trigger.workflow
    try:
        await start(workflow, event=payload, key=key)
    except UnknownRun:
        pass  # another engine started it and runs it
    except ActorsError as exc:
        logger.error(
            "trigger_not_started", event_id=event_id, workflow=workflow.name, error=str(exc)
        )
