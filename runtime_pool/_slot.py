"""The pool's view of one worker: its state, the runs it serves, and when to park it."""

from __future__ import annotations

import math
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from . import errors
from ._inbox import Frame, RunInbox
from ._process import WorkerProcess

__all__ = ("ActiveRun", "Checkout", "Frame", "Slot", "Waiter")

_INBOX_SIZE = 16
_WAKE_EARLY = 0.002  # wake a worker parked while its runs wait this long before its wake-up


@dataclass(eq=False)
class ActiveRun:
    """A run a slot is serving: where its frames go and, if the worker died, why."""

    token: int
    inbox: RunInbox
    solo: bool = False
    heavy: bool = False  # its script is new or computes (see ``_placement``)
    busy: float | None = None  # how long its JS held the thread (ms), once it ended
    called: bool = False  # it made a host call: it had effects outside the sandbox
    error: errors.RuntimePoolError | None = field(default=None)
    evicted: str | None = None  # why its worker stopped while it was innocent


class Slot:
    """One worker process with its bookkeeping. All methods are synchronous except I/O."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.ready_once = False
        self.accepting = False  # ready for runs (not starting, draining or recycling)
        self.dead = False
        self.retiring = False
        self.killed_for: str | None = None  # the pool killed it: its runs are innocent
        self.stopping: str | None = None  # why the worker is stopping its runtime
        self.death: errors.RuntimePoolError | None = None
        self.runs: dict[int, ActiveRun] = {}
        self._solo_runs = 0  # runs in ``runs`` that must be alone (kept, not scanned)
        self.heavy = 0  # runs in ``runs`` whose script is new or computes
        self._generation = 0
        self._changed, self._changes = anyio.create_memory_object_stream[int](1)
        self._changed_at = time.monotonic()  # the last change of runs or readiness
        self._unready_since: float | None = None
        self.idle: tuple[int, float | None] | None = None  # the worker's last idle report
        self._wake_at: float | None = None  # when to wake the parked worker, if ever

    @property
    def load(self) -> int:
        return len(self.runs)

    @property
    def solo(self) -> bool:
        return self._solo_runs > 0

    @property
    def state(self) -> Literal["starting", "idle", "busy"]:
        if self.runs:
            return "busy"
        return "idle" if self.accepting else "starting"

    def fits(self, concurrency: int, solo: bool) -> bool:
        """Whether a new run (alone on its worker if ``solo``) may go here now."""
        if not self.accepting or self.dead or self.solo:
            return False
        return self.load == 0 if solo else self.load < concurrency

    def begin_run(self, token: int, solo: bool, heavy: bool = False) -> tuple[ActiveRun, RunInbox]:
        run = ActiveRun(token, RunInbox(_INBOX_SIZE), solo, heavy)
        self.runs[token] = run
        self._solo_runs += solo
        self.heavy += heavy
        return run, run.inbox

    def end_run(self, token: int) -> None:
        run = self.runs.pop(token, None)
        if run is not None:
            self._solo_runs -= run.solo
            self.heavy -= run.heavy
            run.inbox.finish()
        if not self.runs:
            self._changed_at = time.monotonic()
            # The watcher acts on a run ending only with a fresh idle report to park on
            # or a worker that must say ready; otherwise its next look is not due.
            if self.idle is not None or not self.accepting:
                self._wake_watcher()

    def set_accepting(self, accepting: bool) -> None:
        self.accepting = accepting
        self._notify()

    def _notify(self) -> None:
        self._changed_at = time.monotonic()
        self._wake_watcher()

    def _wake_watcher(self) -> None:
        self._generation += 1
        # WouldBlock: the watcher has a wake-up pending already; closed: the worker ended.
        with suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self._changed.send_nowait(self._generation)

    def on_idle(self, seen: int, wake: float | None) -> None:
        """The worker read ``seen`` frames and has nothing to do until ``wake`` (or a frame)."""
        self.idle = (seen, wake)
        self._wake_watcher()

    def heard(self) -> None:
        """The worker wrote a frame: an idle report before it is stale."""
        if self.idle is not None:
            self.idle = None
            self.process.unpark()  # a worker that writes after its report was not idle

    async def watch(self, park_after: float, ready_within: float) -> None:
        """Park the worker while it is idle; kill it if it is not ready in time.

        Parked only on the worker's own report (see ``_quiet``) that is not stale (no
        frame written after it): with no run in flight, once idle for ``park_after`` s;
        with runs that all wait, until the report's wake-up time. A worker that is
        starting, draining or recycling with no run in flight must say ``ready``
        within ``ready_within`` seconds, or it is stuck.
        """
        async with self._changes:
            while True:
                with anyio.move_on_after(self._supervise(park_after, ready_within)):
                    try:
                        await self._changes.receive()
                    except anyio.EndOfStream:
                        return

    def _supervise(self, park_after: float, ready_within: float, now: float | None = None) -> float:
        """Park, wake or kill the worker as its state asks; return when to look again."""
        now = time.monotonic() if now is None else now
        if self.dead:
            return math.inf
        if self.process.parked:
            return self._keep_parked(now)
        if not self.runs and not self.accepting:
            return self._wait_ready(now, ready_within)
        self._unready_since = None
        idle = self.idle
        if idle is None or idle[0] != self.process.written or not self.accepting:
            return math.inf
        if not self.runs:
            left = self._changed_at + park_after - now
            if left > 0:
                return left
            self._wake_at = None
        elif idle[1] is None or idle[1] - _WAKE_EARLY <= now:
            return math.inf  # no run to wake it for: stale; or due now
        else:
            self._wake_at = idle[1] - _WAKE_EARLY
        self.process.park()
        return math.inf if self._wake_at is None else self._wake_at - now

    def _keep_parked(self, now: float) -> float:
        if self._wake_at is None:
            return math.inf
        if now < self._wake_at:
            return self._wake_at - now
        self._wake_at = self.idle = None  # it has work due: a new report parks it again
        self.process.unpark()
        return math.inf

    def _wait_ready(self, now: float, ready_within: float) -> float:
        if self._unready_since is None:
            self._unready_since = now
        left = self._unready_since + ready_within - now
        if left > 0:
            return left
        self.killed_for = "unresponsive"
        self.process.kill()
        return math.inf

    def close(self) -> None:
        """Release the slot's own streams once its worker has ended."""
        self._changed.close()

    async def deliver(self, header: dict[str, Any], payload: bytes) -> None:
        """Pass a frame to the run it belongs to; drop frames of finished runs."""
        run = self.runs.get(header.get("id", -1))
        if run is None:
            return
        final = header["op"] == "result"
        if header["op"] == "call":
            run.called = True
        try:
            run.inbox.send_nowait((header, payload))  # the usual case: no extra yield
        except anyio.WouldBlock:
            await run.inbox.send((header, payload))
        if final:
            run.inbox.finish()

    def fail_runs(self, crash: errors.RuntimePoolError, cause: str = "crashed") -> None:
        """The worker died: its lone run gets ``crash``; co-resident runs are evicted.

        ``cause`` is why, when neither the pool nor the worker stopped it: ``"crashed"``
        or ``"killed"`` (SIGKILL from outside, which no script can send).
        """
        runs = list(self.runs.values())
        blamed = (len(runs) == 1 and self.killed_for is None) or self.killed_for == "closed"
        for run in runs:
            if blamed:
                run.error = crash
            else:
                run.evicted = self.killed_for or self.stopping or cause
            run.inbox.finish()


Checkout = tuple[Slot, ActiveRun, RunInbox]


class Waiter:
    """A caller waiting for a worker; woken once, with a reserved run or None (pool closed)."""

    def __init__(self, solo: bool, heavy: bool) -> None:
        self.solo = solo
        self.heavy = heavy
        self._event = anyio.Event()
        self._woken = False
        self.checkout: Checkout | None = None

    def wake(self, checkout: Checkout | None) -> None:
        self._woken = True
        self.checkout = checkout
        self._event.set()

    async def wait(self) -> Checkout | None:
        await self._event.wait()
        return self.checkout
