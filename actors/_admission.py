"""Admission control: at most ``max_active_runs`` runs at once; later starts wait their turn.

A run holds its place from the moment it is admitted until it ends, except while
its steps only wait (``sleep``, ``wait_for``: the place is lent out meanwhile, see
``actors._waiters``). A start that
finds the engine full waits (first come, first served); when a run ends its place
goes straight to the oldest waiter. The counts behind
:meth:`actors.Engine.statistics` live here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from actors._results import RunStatus

if TYPE_CHECKING:
    from actors._run import Run

__all__ = ("Admission", "EngineStatistics", "run_admitted")


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """What the engine is doing: runs ``active`` (admitted, not ended), ``waiting``
    (``start`` calls waiting for a place) and ``finished`` (ended, by status)."""

    max_active_runs: int
    active: int
    waiting: int
    finished: int
    completed: int
    failed: int
    cancelled: int
    peak_active: int
    peak_waiting: int


class Admission:
    """Places for runs: :meth:`enter` waits for one, :meth:`leave` hands it on."""

    def __init__(self, max_active_runs: int) -> None:
        self.max_active_runs = max_active_runs
        self._active = 0
        self._waiters: deque[anyio.Event] = deque()
        self._ended: dict[RunStatus, int] = {"completed": 0, "failed": 0, "cancelled": 0}
        self._peak_active = 0
        self._peak_waiting = 0
        self._freed = anyio.Event()

    def room(self) -> int:
        """Places free now that no waiting start is owed."""
        return 0 if self._waiters else max(0, self.max_active_runs - self._active)

    async def wait_for_room(self) -> int:
        """Wait until :meth:`room` is positive; return it."""
        while not self.room():
            await self._freed.wait()
        return self.room()

    async def enter(self) -> None:
        """Wait for a place (cancellation-safe: a place handed over meanwhile goes on)."""
        if self._active < self.max_active_runs and not self._waiters:
            self._take()
            return
        waiter = anyio.Event()
        self._waiters.append(waiter)
        self._peak_waiting = max(self._peak_waiting, len(self._waiters))
        try:
            await waiter.wait()
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self._signal_freed()
            else:
                self.abandon()  # a place was handed to us as we were cancelled
            raise

    def enter_nowait(self) -> None:
        """Take a place now, even past the bound: a child run, whose parent holds a
        place and waits for it (waiting could deadlock a full engine)."""
        self._take()

    def leave(self, status: RunStatus, *, held: bool = True) -> None:
        """A run ended with ``status``: count it and hand its place on (if it ``held``
        one: not a run that ended while its place was lent)."""
        self._ended[status] += 1
        if held:
            self.abandon()

    def abandon(self) -> None:
        """Give a place back without a run having ended in it."""
        self._active -= 1
        self._signal_freed()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.is_set():
                self._take()
                waiter.set()
                return

    def _signal_freed(self) -> None:
        self._freed.set()
        self._freed = anyio.Event()

    def _take(self) -> None:
        self._active += 1
        self._peak_active = max(self._peak_active, self._active)

    def statistics(self) -> EngineStatistics:
        ended = self._ended
        return EngineStatistics(
            max_active_runs=self.max_active_runs,
            active=self._active,
            waiting=len(self._waiters),
            finished=sum(ended.values()),
            completed=ended["completed"],
            failed=ended["failed"],
            cancelled=ended["cancelled"],
            peak_active=self._peak_active,
            peak_waiting=self._peak_waiting,
        )


async def run_admitted(
    admission: Admission,
    run: Run,
    *,
    lent: Callable[[str], bool] = lambda run_id: False,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Execute ``run`` (already admitted) and give its place back when it ends (unless
    ``lent(run.id)``: it ended while its place was lent out)."""
    try:
        await run.execute(task_status=task_status)
    finally:
        status = run.result.status if run.result is not None else "cancelled"
        admission.leave(status, held=not lent(run.id))
