"""Lifecycle events across engines: ``bus.subscribe(pattern, cluster=True)``.

On a shared store (PostgreSQL) every engine records its bus events in the store,
in the order its bus published them, in batches (:func:`share_events`). An
engine with cluster subscribers reads the other engines' events back
(:class:`ClusterFeed`), woken by the store's notification with a slow fallback
poll, and offers them to those subscribers; its own events reach them straight
from its bus. So each run's events arrive in causal order (a run moves between
engines only when its owner's lease lapses). Old events are pruned.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskStatus

from actors._cluster_codec import decode_event, encode_event
from actors._cluster_tail import Tail, TailRow
from actors._log import get_logger
from actors.errors import StoreError

if TYPE_CHECKING:
    from actors._bus import EventBus
    from actors._subscription import Subscription

__all__ = ("ClusterFeed", "ClusterStore", "cluster_store", "share_events")

logger = get_logger(__name__)

_BATCH = 500  # events per write and per read
_BUFFER = 4096  # events queued for writing before runs wait
_FALLBACK_POLL = 5.0  # seconds between reads when no notification comes
_PRUNE_EVERY = 60.0  # seconds
_WRITE_LIMIT = 10.0  # seconds a write may take before its events are given up
KEEP = 600.0  # seconds a shared bus event is kept


@runtime_checkable
class ClusterStore(Protocol):
    """A store that shares bus events between engines."""

    async def record_bus_events(self, events: list[tuple[str, str]]) -> None: ...

    async def bus_head(self) -> Tail: ...

    async def bus_after(self, tail: Tail, limit: int) -> list[TailRow]: ...

    async def wait_for_bus(self, timeout: float) -> None: ...

    async def prune_bus(self, keep: float) -> None: ...


def cluster_store(store: object) -> ClusterStore | None:
    """``store`` when it shares bus events (and may be written), else ``None``."""
    if isinstance(store, ClusterStore) and not getattr(store, "read_only", False):
        return store
    return None


async def share_events(
    bus: EventBus, store: ClusterStore, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Record every event of ``bus`` in ``store``, in order, until cancelled (then
    write what is queued, for up to a few seconds)."""
    events = bus.open_subscription("*", max_buffer=_BUFFER, policy="block", block_timeout=math.inf)
    events.internal = True
    task_status.started()
    pruned = anyio.current_time()
    try:
        async for event in events:
            batch = [event, *_queued(events)]
            with anyio.CancelScope(shield=True), anyio.move_on_after(_WRITE_LIMIT):
                await _write(store, batch)  # (a batch taken is written, even on the way out)
            if anyio.current_time() - pruned > _PRUNE_EVERY:
                pruned = anyio.current_time()
                await _prune(store)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_WRITE_LIMIT):
            while batch := _queued(events):
                await _write(store, batch)
        events.close()


def _queued(events: Subscription) -> list[object]:
    batch: list[object] = []
    while len(batch) < _BATCH and events.statistics().queued:
        batch.append(events.receive_nowait())
    return batch


async def _write(store: ClusterStore, batch: list[object]) -> None:
    rows = []
    for event in batch:
        text = encode_event(event)  # type: ignore[arg-type]
        if text is not None:
            rows.append((event.topic, text))  # type: ignore[attr-defined]
    try:
        if rows:
            await store.record_bus_events(rows)
    except StoreError as exc:  # other engines miss these; the runs go on
        logger.warning("bus_events_not_shared", count=len(rows), error=str(exc))


async def _prune(store: ClusterStore) -> None:
    try:
        await store.prune_bus(KEEP)
    except StoreError as exc:
        logger.warning("bus_events_not_pruned", error=str(exc))


class ClusterFeed:
    """Other engines' events for this bus's cluster subscribers (read while any exist)."""

    def __init__(self, store: ClusterStore) -> None:
        self._store = store
        self._subscriptions: list[Subscription] = []
        self._tail: Tail | None = None
        self._wanted = anyio.Event()
        self.closed = False

    async def join(self, subscription: Subscription) -> None:
        """Offer ``subscription`` every other engine's event recorded from now on."""
        if self._tail is None:
            self._tail = await self._store.bus_head()
        self._subscriptions.append(subscription)
        self._wanted.set()

    def leave(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        if not self._subscriptions:
            self._tail = None
            self._wanted = anyio.Event()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read and hand out events while there are cluster subscribers, until cancelled;
        then end the cluster subscriptions."""
        task_status.started()
        try:
            while True:
                await self._wanted.wait()
                if not await self._read_once():
                    await self._store.wait_for_bus(_FALLBACK_POLL)
        finally:
            self.closed = True
            for subscription in tuple(self._subscriptions):
                subscription.close()

    async def _read_once(self) -> bool:
        """Hand out one batch; whether a full batch was read (read again at once)."""
        tail = self._tail
        if tail is None:
            return False
        try:
            rows = await self._store.bus_after(tail, _BATCH)
        except StoreError as exc:
            logger.warning("bus_events_not_read", error=str(exc))
            return False
        if tail is not self._tail:
            return True  # every subscriber left meanwhile
        for row in tail.take(rows):
            event = decode_event(str(row.data[0]))
            for subscription in tuple(self._subscriptions):
                if event is not None and subscription.matches(event.topic):
                    await subscription.offer(event)
        return len(rows) == _BATCH
