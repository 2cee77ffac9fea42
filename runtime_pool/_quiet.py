"""Inside a worker: telling the pool when it may stop the process.

A jsrun runtime spins a core for as long as its process runs, even while every
run in it only waits (for a host call's reply, a timer, or nothing at all). So,
after a quiet moment, the worker asks its dispatch loop whether the JS is idle
(``probeIdle`` in ``_glue.js``). If it is, the worker sends ``{"op": "idle",
"seen": N, "wake": T}``: "I have read N frames and have nothing to do until a
frame comes or the clock reaches T" (T, on the machine's monotonic clock: the
earliest JS timer or run deadline). The pool stops the process (SIGSTOP) only if
it has written no frame after those N, wakes it (SIGCONT) before every frame it
writes, and at T. With no run in flight the worker says so once its runtime is
checked (``wake`` is null); the pool parks it after its own short delay.

The JS is idle when, across a timer turn, nothing happened in it, and
every host op it called has started here and every reply it was sent (host-call
replies) has been taken in there. Counts are per runtime (its epoch).
The worker itself must not enter a guarded jsrun call after its report unless
woken by a frame or a timer it reported: it reports only while it accepts runs
and is not recycling.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ("Quiet",)

_QUIET = 0.001  # no frame or op this long: ask the JS whether it is idle
_QUIET_MAX = 0.05  # probes that find work back off up to this
_MIN_PARK = 0.004  # a wake-up due sooner than this is not worth a park
_AFTER_WAKE = 0.001  # probe again this long after the wake-up the pool was asked for
# A worker with runs is parked at most this long at a time: woken, it looks at its
# runtime again (``_sample``), so a death it missed costs a second, not a deadline.
_MAX_PARK = 1.0


@dataclass(frozen=True, slots=True)
class _Probe:
    id: int
    seen: int
    pushes: int


class Quiet:
    """Counts what the worker and its runtime did; reports idle moments to the pool.

    ``send`` writes a frame to the pool, ``push`` gives the dispatch loop a
    command, and ``parkable`` returns the earliest run deadline (monotonic
    seconds) while every run may be waiting, else None (recycling, draining, ...).
    """

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        push: Callable[[list[Any]], None],
        parkable: Callable[[], float | None],
    ) -> None:
        self._send, self._push, self._parkable = send, push, parkable
        self.seen = 0  # frames read from the pool
        self._pushes = 0  # commands the worker gave the dispatch loop on its own
        self.epoch = 0  # the current runtime
        self._started = 0  # host ops the runtime called that started here
        self._done = 0  # of those, calls answered (the JS counts them)
        self._ids = itertools.count()
        self._probe: _Probe | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires (monotonic, as the loop's clock)
        self._touched = 0.0
        self._wait = _QUIET

    # ---- counting ------------------------------------------------------------------

    def new_runtime(self) -> int:
        """A new runtime starts counting from zero; return its epoch."""
        self.epoch += 1
        self._started = self._done = 0
        self._probe = None
        return self.epoch

    def loop_restarted(self) -> None:
        """A new dispatch loop: a probe given to the old one is lost."""
        self._probe = None
        self.touch()

    def frame(self) -> None:
        self.seen += 1
        self._wait = _QUIET
        self.touch()

    def pushed(self) -> None:
        self._pushes += 1
        self.touch()

    def started(self, epoch: int) -> None:
        if epoch == self.epoch:
            self._started += 1
        self.touch()

    def answered(self, epoch: int) -> None:
        if epoch == self.epoch:
            self._done += 1
        self.touch()

    # ---- probing -----------------------------------------------------------------

    def touch(self) -> None:
        """Something happened: probe once nothing has happened for a while."""
        now = self._touched = time.monotonic()
        if self._timer is None or self._timer_at > now + self._wait:
            self._arm(self._wait)

    def _arm(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._fire), when

    def _fire(self) -> None:
        self._timer = None
        left = self._touched + self._wait - time.monotonic()
        if left > 0:
            self._arm(left)
        elif self._probe is None and self._parkable() is not None:
            self._probe = _Probe(next(self._ids), self.seen, self._pushes)
            self._push(["idle", self._probe.id])

    async def op_idle(
        self, epoch: int, probe: int, idle: bool, called: int, answered: int, timer_ms: float
    ) -> None:
        mine = self._probe
        if mine is None or mine.id != probe or epoch != self.epoch:
            return
        self._probe = None
        deadline = self._parkable()
        quiet = (
            idle
            and deadline is not None
            and (called, answered) == (self._started, self._done)
            and (self.seen, self._pushes) == (mine.seen, mine.pushes)
        )
        if not quiet or deadline is None:
            self._wait = min(self._wait * 2, _QUIET_MAX)
            self.touch()
            return
        now = time.monotonic()
        wake = deadline if timer_ms < 0 else min(deadline, now + timer_ms / 1000)
        wake = min(wake, now + _MAX_PARK)
        if wake - now >= _MIN_PARK:
            self._send({"op": "idle", "seen": mine.seen, "wake": wake})
            self._wait = _QUIET
        # A timer wakes the JS without a word to this side: look again after it.
        self._arm(max(wake - now, 0.0) + _AFTER_WAKE)

    def alone(self) -> None:
        """No run in flight and the runtime checked: the pool may park this worker."""
        self._send({"op": "idle", "seen": self.seen, "wake": None})
