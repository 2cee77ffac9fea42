"""The CPU priority of a worker's JS threads (inside the worker).

jsrun's runtime thread spins while its JS only waits. Every thread of the worker
but the main one (the runtime thread and V8's helpers) runs at nice ``js_nice``,
below the worker's main thread and the host. With ``js_idle`` the runtime thread is
also ``SCHED_IDLE``: it takes only CPU no other thread wants, and a thread woken on
its core runs at once. (At nice 10, the worker's own main thread, woken with a
frame or a host op to serve, could wait for the spinner up to a scheduler tick,
~4 ms.) A ``SCHED_IDLE`` thread gets almost no CPU while other programs keep every
core busy, so while runs are in flight the worker reads how long the thread waited
for a core and how long it ran (``/proc``'s schedstat): waiting more than half of
the time since the last look while running less than a fifth of it (the spin of a
thread that only loses its core to the worker's own threads runs far more) puts it
back at nice ``js_nice`` for ``_STARVED_HOLD`` seconds. Leaving
``SCHED_IDLE`` needs ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` that allows nice
``js_nice``; a worker that could not leave it never enters it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ("JsPriority",)

_STARVED_WAIT = 0.5  # at least this share of the time since the last look waiting for a core
_STARVED_RUN = 0.2  # and less than this share running
_STARVED_HOLD = 1.0  # seconds at the nice value before SCHED_IDLE is tried again
_GAP = 0.05  # looks further apart than this only set the baseline


class JsPriority:
    """Sets the JS threads' priority for each runtime; watches the runtime thread starve."""

    def __init__(self, nice: int, idle: bool) -> None:
        self._nice = nice
        self.idle = idle and _can_leave_idle(nice)  # SCHED_IDLE is used at all
        self._thread: int | None = None  # the runtime thread
        self._stat: int | None = None  # its open schedstat
        self._idle_now = False
        self._held_until = 0.0
        self._looked = (0.0, 0, 0)  # (when, ns run, ns waited for a core until then)
        self.starved = 0  # times the runtime thread was put back at its nice value

    def new_runtime(self) -> None:
        """Lower the new runtime's threads (call once it is made; its thread is new)."""
        main = os.getpid()
        newest = None
        for name in os.listdir("/proc/self/task"):
            tid = int(name)
            if tid == main:
                continue
            with suppress(OSError):  # a thread that just ended
                if os.getpriority(os.PRIO_PROCESS, tid) < self._nice:  # never raise one
                    os.setpriority(os.PRIO_PROCESS, tid, self._nice)
                if _name(tid).startswith("jsrun") and (newest is None or tid > newest):
                    newest = tid
        self._follow(newest)

    def _follow(self, thread: int | None) -> None:
        if self._stat is not None:
            os.close(self._stat)
        self._thread, self._stat, self._idle_now = thread, None, False
        self._looked = (0.0, 0, 0)
        if not self.idle or thread is None:
            return
        with suppress(OSError):
            self._stat = os.open(f"/proc/self/task/{thread}/schedstat", os.O_RDONLY)
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
            self._idle_now = True

    @contextmanager
    def awake(self) -> Iterator[None]:
        """The runtime thread at its nice value while the worker waits for it in a jsrun
        call (``close``, ``terminate``, ``get_stats``): starved, it could outlast the
        call's guard."""
        thread = self._thread if self._idle_now else None
        if thread is not None:
            self._policy(thread, os.SCHED_OTHER)
        try:
            yield
        finally:
            if thread is not None and thread == self._thread and self._idle_now:
                self._policy(thread, os.SCHED_IDLE)

    @staticmethod
    def _policy(thread: int, policy: int) -> None:
        with suppress(OSError):  # the thread ended with its runtime
            os.sched_setscheduler(thread, policy, os.sched_param(0))

    def check(self, now: float) -> None:
        """Called while runs are in flight: a starved runtime thread leaves SCHED_IDLE."""
        if self._stat is None or self._thread is None:
            return
        try:
            ran, waited, _ = (int(field) for field in os.pread(self._stat, 64, 0).split())
            then, ran_before, waited_before = self._looked
            self._looked = (now, ran, waited)
            span = (now - then) * 1e9
            if not self._idle_now:
                if now >= self._held_until:
                    os.sched_setscheduler(self._thread, os.SCHED_IDLE, os.sched_param(0))
                    self._idle_now = True
            elif (
                span < _GAP * 1e9
                and waited - waited_before > _STARVED_WAIT * span
                and ran - ran_before < _STARVED_RUN * span
            ):
                os.sched_setscheduler(self._thread, os.SCHED_OTHER, os.sched_param(0))
                self._idle_now = False
                self._held_until = now + _STARVED_HOLD
                self.starved += 1
        except OSError:  # the thread ended with its runtime
            self._follow(None)


def _name(tid: int) -> str:
    with open(f"/proc/self/task/{tid}/comm") as f:
        return f.read()


def _can_leave_idle(nice: int) -> bool:
    """Whether a thread of this process at nice ``nice`` may leave SCHED_IDLE again."""
    allowed: list[bool] = []

    def probe() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            allowed.append(True)
        except (OSError, AttributeError):
            allowed.append(False)

    thread = threading.Thread(target=probe, name="priority-probe")
    thread.start()
    thread.join()
    return allowed == [True]
