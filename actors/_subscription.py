"""One subscriber of the event bus: a bounded queue with a slow-subscriber policy.

``"block"``: a publisher waits up to ``block_timeout`` seconds for room (``math.inf``:
forever); past it the event is dropped *for this subscriber* and counted.
``"drop_oldest"``: a publisher never waits; the oldest queued event is evicted
and counted. Drops show in :meth:`Subscription.statistics` and are logged as a
warning when a subscriber starts falling behind: never silent.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Literal

import anyio

from actors._events import BusEvent
from actors._log import get_logger

__all__ = ("Policy", "SubscriberStatistics", "Subscription", "topic_matches")

logger = get_logger(__name__)

Policy = Literal["block", "drop_oldest"]
_POLICIES = ("block", "drop_oldest")


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """Glob match of ``topic`` against ``pattern`` (``*``, ``?``, ``[...]``), case-sensitive."""
    return fnmatchcase(topic, pattern)


@dataclass(frozen=True, slots=True)
class SubscriberStatistics:
    pattern: str
    policy: Policy
    max_buffer: int
    queued: int
    delivered: int
    dropped: int


class Subscription:
    """The receiving end of ``bus.subscribe(pattern)``: an async iterator of events."""

    def __init__(
        self,
        pattern: str,
        *,
        policy: Policy,
        max_buffer: int,
        block_timeout: float,
        on_close: Callable[[Subscription], None],
    ) -> None:
        if policy not in _POLICIES:
            raise ValueError(f"policy must be one of {_POLICIES}, got {policy!r}")
        if not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer must be a positive integer, got {max_buffer!r}")
        if not block_timeout >= 0:
            raise ValueError(f"block_timeout must be >= 0, got {block_timeout!r}")
        self.pattern = pattern
        self.policy: Policy = policy
        self._timeout = block_timeout
        self._max_buffer = max_buffer
        self._send, self._receive = anyio.create_memory_object_stream[BusEvent](max_buffer)
        # drop_oldest evicts through its own receiving clone
        self._evict = self._receive.clone() if policy == "drop_oldest" else None
        self._on_close = on_close
        self._delivered = 0
        self._dropped = 0
        self._behind = False
        self._waiting: deque[anyio.Event] = deque()  # blocked publishers, first come first
        self.closed = False
        self.internal = False  # the engine's own (left out of the bus's statistics)

    def __repr__(self) -> str:
        return f"<Subscription {self.pattern!r} policy={self.policy}>"

    def matches(self, topic: str) -> bool:
        return topic_matches(self.pattern, topic)

    # -- publisher side --------------------------------------------------------------

    async def offer(self, event: BusEvent) -> None:
        """Queue ``event`` according to the policy; a closed subscription ignores it."""
        if self.can_take_nowait():
            self.offer_nowait(event)
        else:
            await self._send_blocking(event)

    def can_take_nowait(self) -> bool:
        """Whether :meth:`offer_nowait` can take an event now (room, a drop policy, closed)."""
        if self._evict is not None or self.closed:
            return True
        return self._send.statistics().current_buffer_used < self._max_buffer

    def offer_nowait(self, event: BusEvent) -> None:
        """Queue ``event`` without waiting; only when :meth:`can_take_nowait` said so."""
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            assert self._evict is not None, "offer_nowait on a full blocking subscription"
            self._evict.receive_nowait()
            self._count_drop(event)
            self._send.send_nowait(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        self._delivered += 1

    async def _send_blocking(self, event: BusEvent) -> None:
        """Wait for room up to the timeout, then queue or drop ``event``.

        Not ``send()`` under a deadline: an event a reader takes just as the deadline
        passes would be both delivered and counted as dropped. Here the event is
        queued only by ``send_nowait``, which does not wait, so it is exactly one.
        """
        timeout = None if math.isinf(self._timeout) else self._timeout
        with anyio.move_on_after(timeout):
            while True:
                try:
                    self._send.send_nowait(event)
                except anyio.WouldBlock:
                    await self._wait_for_room()
                    continue
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                self._delivered += 1
                return
        self._count_drop(event)

    async def _wait_for_room(self) -> None:
        """Wait in line until a reader takes an event (or the subscription closes).

        Each event taken wakes one publisher: waking every waiting publisher at once
        kept hundreds of them runnable, so their timeouts were never delivered (a
        publish waited 22 s past a 1 s ``block_timeout`` with 1000 runs).
        """
        room = anyio.Event()
        self._waiting.append(room)
        try:
            await room.wait()
        except BaseException:
            if room.is_set():
                self._wake_one()  # it was given room it will not use: pass it on
            else:
                self._waiting.remove(room)
            raise

    def _wake_one(self) -> None:
        if self._waiting:
            self._waiting.popleft().set()

    def _count_drop(self, event: BusEvent) -> None:
        self._dropped += 1
        if not self._behind:
            self._behind = True
            logger.warning(
                "subscriber_dropping_events",
                pattern=self.pattern,
                policy=self.policy,
                max_buffer=self._max_buffer,
                topic=event.topic,
                dropped=self._dropped,
            )

    # -- subscriber side -------------------------------------------------------------

    async def receive(self) -> BusEvent:
        """The next event; raises :class:`anyio.EndOfStream` once closed."""
        try:
            event = await self._receive.receive()
            self._wake_one()
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None
        if self._behind and self._receive.statistics().current_buffer_used == 0:
            self._behind = False
        return event

    def receive_nowait(self) -> BusEvent:
        """The next queued event; raises :class:`anyio.WouldBlock` if none is."""
        event = self._receive.receive_nowait()
        self._wake_one()
        return event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> BusEvent:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def statistics(self) -> SubscriberStatistics:
        return SubscriberStatistics(
            pattern=self.pattern,
            policy=self.policy,
            max_buffer=self._max_buffer,
            queued=self._receive.statistics().current_buffer_used if not self.closed else 0,
            delivered=self._delivered,
            dropped=self._dropped,
        )

    def close(self) -> None:
        """Stop receiving; publishers skip this subscription from now on."""
        if self.closed:
            return
        self.closed = True
        while self._waiting:
            self._waiting.popleft().set()
        self._send.close()
        self._receive.close()
        if self._evict is not None:
            self._evict.close()
        if self._dropped:
            logger.warning(
                "subscriber_closed_with_drops", pattern=self.pattern, dropped=self._dropped
            )
        self._on_close(self)
