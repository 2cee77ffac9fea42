"""One task for every deadline of an engine: a heap of timers, not a sleeping task each.

:meth:`Timers.add` pushes a deadline (``anyio.current_time()`` clock) and the
callback to call then; :meth:`Timers.serve` (one task in the engine's task group)
sleeps until the earliest deadline, or until an earlier one is added. A cancelled
timer stays in the heap until its time (or until cancelled ones outnumber the live
ones, when the heap is rebuilt).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

__all__ = ("Timer", "Timers")


class Timer:
    """A deadline and its callback; ``cancel()`` before it fires keeps it from firing."""

    __slots__ = ("callback", "deadline", "seq")

    def __init__(self, deadline: float, seq: int, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.callback: Callable[[], None] | None = callback

    def __lt__(self, other: Timer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        self.callback = None


class Timers:
    """The engine's timers (see the module docstring)."""

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._live = 0
        self._changed: anyio.Event | None = None  # set when an earlier deadline arrives

    def __len__(self) -> int:
        """Timers that have neither fired nor been cancelled."""
        return self._live

    def add(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(deadline, next(self._seq), callback)
        earliest = not self._heap or timer < self._heap[0]
        heapq.heappush(self._heap, timer)
        self._live += 1
        if earliest and self._changed is not None:
            self._changed.set()
        return timer

    def cancel(self, timer: Timer) -> None:
        if timer.callback is not None:
            timer.cancel()
            self._live -= 1
            if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
                self._heap = [t for t in self._heap if t.callback is not None]
                heapq.heapify(self._heap)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Fire each timer at its deadline, until cancelled."""
        task_status.started()
        while True:
            self._fire_due(anyio.current_time())
            self._changed = anyio.Event()
            delay = self._heap[0].deadline - anyio.current_time() if self._heap else math.inf
            with anyio.move_on_after(max(0.0, delay)):
                await self._changed.wait()

    def _fire_due(self, now: float) -> None:
        heap = self._heap
        while heap and (heap[0].callback is None or heap[0].deadline <= now):
            timer = heapq.heappop(heap)
            callback, timer.callback = timer.callback, None
            if callback is not None:
                self._live -= 1
                callback()
