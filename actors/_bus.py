"""The event bus: in-process publish/subscribe with glob topic patterns.

Publishing delivers to each matching subscriber in turn; a publish returns once
every subscriber has the event queued (or, by its policy, dropped). So when one
publish finishes before another starts, every subscriber sees them in that
order: a run's lifecycle events arrive in causal order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors._events import BusEvent, Published
from actors._subscription import Policy, SubscriberStatistics, Subscription
from actors._trigger import TriggerTable
from actors._waiters import WaiterTable
from actors.errors import ClusterUnavailable

if TYPE_CHECKING:
    from actors._cluster_bus import ClusterFeed
    from actors._run import RunHandle

__all__ = ("BusStatistics", "EventBus")


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """Counters of the bus; ``dropped`` includes subscribers that have left."""

    published: int
    delivered: int
    dropped: int
    subscribers: tuple[SubscriberStatistics, ...]


class EventBus:
    """Publish/subscribe on bounded memory streams.

    The keyword options are the defaults for :meth:`subscribe`: ``max_buffer``
    events per subscriber, the slow-subscriber ``policy`` (``"drop_oldest"`` or
    ``"block"``) and, for ``"block"``, how long a publisher waits (``math.inf``:
    no limit).
    """

    def __init__(
        self, *, max_buffer: int = 1024, policy: Policy = "drop_oldest", block_timeout: float = 1.0
    ) -> None:
        self._defaults = (max_buffer, policy, block_timeout)
        self._subscriptions: list[Subscription] = []
        self._published = 0
        self._gone_delivered = 0
        self._gone_dropped = 0
        self.trigger_table = TriggerTable()
        self.waiters = WaiterTable()  # wait_for steps of the engines on this bus
        self.cluster: ClusterFeed | None = None  # set by an engine on a shared store

    async def publish(self, topic: str, payload: Any = None) -> tuple[RunHandle, ...]:
        """Publish ``payload`` under ``topic``; subscribers receive a :class:`Published`.

        Completes the ``wait_for`` steps it matches. Returns the handles of the runs that
        matching triggers (``engine.on``) started.
        """
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic must be a non-empty string, got {topic!r}")
        await self.publish_event(Published(topic=topic, payload=payload))
        self.waiters.publish(topic, payload)
        return await self.trigger_table.fire(topic, payload)

    async def publish_event(self, event: BusEvent) -> None:
        """Publish an event object as is (lifecycle events are published this way)."""
        self._published += 1
        subscriptions = self._subscriptions
        if not subscriptions:
            return
        for subscription in tuple(subscriptions):
            if subscription.matches(event.topic):
                await subscription.offer(event)

    def publish_event_nowait(self, event: BusEvent) -> bool:
        """Publish ``event`` if no matching subscriber would make the publisher wait.

        Returns False, having published nothing, if one would (a ``"block"``
        subscriber with a full buffer): then :meth:`publish_event` it.
        """
        subscriptions = self._subscriptions
        if subscriptions:
            matching = [s for s in subscriptions if s.matches(event.topic)]
            if not all(s.can_take_nowait() for s in matching):
                return False
            for subscription in matching:
                subscription.offer_nowait(event)
        self._published += 1
        return True

    @asynccontextmanager
    async def subscribe(
        self,
        pattern: str = "*",
        *,
        max_buffer: int | None = None,
        policy: Policy | None = None,
        block_timeout: float | None = None,
        cluster: bool = False,
    ) -> AsyncIterator[Subscription]:
        """``async with bus.subscribe("step.*") as events: async for event in events``.

        ``cluster=True`` (an engine with a PostgreSQL store must be running on this
        bus, else :class:`~actors.errors.ClusterUnavailable`): also the events of the
        other engines on the same database, from now on; it ends when the engine stops.
        """
        feed = self.cluster
        if cluster and (feed is None or feed.closed):
            raise ClusterUnavailable()
        subscription = self.open_subscription(
            pattern, max_buffer=max_buffer, policy=policy, block_timeout=block_timeout
        )
        try:
            if cluster and feed is not None:
                await feed.join(subscription)
            yield subscription
        finally:
            subscription.close()

    def open_subscription(
        self,
        pattern: str = "*",
        *,
        max_buffer: int | None = None,
        policy: Policy | None = None,
        block_timeout: float | None = None,
    ) -> Subscription:
        """Subscribe now, without a context manager; the caller must ``close()`` it."""
        default_buffer, default_policy, default_timeout = self._defaults
        subscription = Subscription(
            pattern,
            policy=policy if policy is not None else default_policy,
            max_buffer=max_buffer if max_buffer is not None else default_buffer,
            block_timeout=block_timeout if block_timeout is not None else default_timeout,
            on_close=self._forget,
        )
        self._subscriptions = [*self._subscriptions, subscription]
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        if self.cluster is not None:
            self.cluster.leave(subscription)
        if subscription in self._subscriptions:
            self._subscriptions = [s for s in self._subscriptions if s is not subscription]
            if subscription.internal:
                return
            stats = subscription.statistics()
            self._gone_delivered += stats.delivered
            self._gone_dropped += stats.dropped

    def statistics(self) -> BusStatistics:
        current = tuple(s.statistics() for s in self._subscriptions if not s.internal)
        return BusStatistics(
            published=self._published,
            delivered=self._gone_delivered + sum(s.delivered for s in current),
            dropped=self._gone_dropped + sum(s.dropped for s in current),
            subscribers=current,
        )
