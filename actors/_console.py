"""A step's console lines, live: ``step.log`` events while the step runs.

Used when the runner can stream console lines (its ``execute`` takes ``on_log=``,
a synchronous callback called with each line as the script writes it). A line is
published at once when the bus can take it without waiting; once one cannot (a
blocking subscriber is full, or the attempt's ``step.started`` is still on its
way), that line and every later one of the attempt go through a bounded queue to
a task of the run that publishes them in order, so a chatty script never blocks
the runner. The queue holds every line up to the cap: at most
``MAX_STREAMED_LINES`` lines per attempt are published, and a final line says how
many were dropped past that. When the step is stopped (cancelled), lines already
queued still go out, for at most ``FLUSH_TIMEOUT`` seconds more. The attempt's
``host.called`` events (``_audit``) go the same way, in order with its lines.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors._events import LifecycleEvent, StepLogged

__all__ = (
    "FLUSH_TIMEOUT",
    "MAX_STREAMED_LINES",
    "Announcement",
    "AttemptConsole",
    "OnLog",
    "can_stream_logs",
    "runner_accepts",
)

# Above the pool's own cap (max_log_lines, 1000 by default, plus its marker), so a
# default pool's marker, which counts what it dropped, is published too.
MAX_STREAMED_LINES = 10_000
FLUSH_TIMEOUT = 1.0  # how long a cancelled step's queued lines may take to be published

OnLog = Callable[[Any], None]
Emit = Callable[[LifecycleEvent], Awaitable[None]]
EmitNowait = Callable[[LifecycleEvent], bool]
Spawn = Callable[..., object]


def can_stream_logs(runner: Any) -> bool:
    """Whether ``runner.execute`` accepts ``on_log=`` (the optional streaming capability)."""
    return runner_accepts(runner, "on_log")


def runner_accepts(runner: Any, option: str) -> bool:
    """Whether ``runner.execute`` takes the optional keyword ``option``."""
    key = (type(runner), option)
    known = _ACCEPTS.get(key)
    if known is None:
        execute = getattr(type(runner), "execute", None)
        try:
            known = execute is not None and option in inspect.signature(execute).parameters
        except (TypeError, ValueError):
            known = False
        _ACCEPTS[key] = known
    return known


_ACCEPTS: dict[tuple[type[Any], str], bool] = {}  # a cache: signatures do not change


class AttemptConsole:
    """The ``step.log`` events of one attempt: :meth:`on_log` takes each line.

    ``announcement`` is the attempt's ``step.started``: lines are published after it.
    ``spawn`` starts a task of the run (used only when a line has to wait). The
    first ``MAX_STREAMED_LINES`` lines are also appended to ``keep``; ``index`` is the
    for_each element the lines belong to. :meth:`aclose`
    publishes what is queued and the count of dropped lines; if the attempt is
    stopped instead, :meth:`stop` publishes what is queued within ``FLUSH_TIMEOUT``.
    """

    def __init__(
        self,
        emit: Emit,
        emit_nowait: EmitNowait,
        spawn: Spawn,
        announcement: Announcement,
        *,
        run_id: str,
        workflow: str,
        step: str,
        attempt: int,
        keep: list[Any] | None = None,
        index: int | None = None,
    ) -> None:
        self._emit, self._emit_nowait, self._spawn, self._announcement = (
            emit,
            emit_nowait,
            spawn,
            announcement,
        )
        self.ids: dict[str, Any] = {
            "run_id": run_id,
            "workflow": workflow,
            "step": step,
            "attempt": attempt,
            "index": index,
        }
        self._queue: MemoryObjectSendStream[LifecycleEvent] | None = None
        self._drained: anyio.Event | None = None
        self._keep = keep
        # shielded, so lines queued when the step is stopped still go out; bounded then
        # (made with the publisher: most attempts never need one)
        self._shield: anyio.CancelScope | None = None
        self.taken = self.dropped = 0

    def on_log(self, line: Any) -> None:
        if self._keep is not None and len(self._keep) < MAX_STREAMED_LINES:
            self._keep.append(line)
        if self.taken >= MAX_STREAMED_LINES:
            self.dropped += 1
            return
        event = StepLogged(
            level=str(getattr(line, "level", "log")),
            text=str(getattr(line, "text", line)),
            timestamp=float(getattr(line, "timestamp", None) or time.time()),
            **self.ids,
        )
        if self.publish(event):
            self.taken += 1
        else:
            self.dropped += 1

    def publish(self, event: LifecycleEvent) -> bool:
        """Publish an event of the attempt after its ``step.started`` and every event
        taken before, without waiting; False (nothing done) when the queue is full."""
        if self._queue is None:
            if self._announcement.published and self._emit_nowait(event):
                return True
            self._queue = self._start_publisher()
        try:
            self._queue.send_nowait(event)
        except anyio.WouldBlock:
            return False
        return True

    def _start_publisher(self) -> MemoryObjectSendStream[LifecycleEvent]:
        # Room for every line up to the cap (and as many host calls, see _audit): a
        # burst waits here rather than being dropped.
        room = 2 * MAX_STREAMED_LINES
        send, receive = anyio.create_memory_object_stream[LifecycleEvent](room)
        self._drained = anyio.Event()
        self._shield = anyio.CancelScope(shield=True)
        self._spawn(self._publish, receive, self._drained, self._shield)
        return send

    async def _publish(
        self,
        receive: MemoryObjectReceiveStream[LifecycleEvent],
        drained: anyio.Event,
        shield: anyio.CancelScope,
    ) -> None:
        try:
            with shield, receive:
                await self._announcement.wait()  # console lines follow step.started
                async for event in receive:
                    await self._emit(event)
        finally:
            drained.set()

    def close(self) -> None:
        """Take no more lines; the publisher ends once it has published what is queued."""
        if self._queue is not None:
            self._queue.close()

    async def stop(self) -> None:
        """The attempt was stopped: give queued lines ``FLUSH_TIMEOUT`` s to go out."""
        self.close()
        if self._drained is not None and self._shield is not None:
            self._shield.deadline = anyio.current_time() + FLUSH_TIMEOUT
            with anyio.move_on_after(FLUSH_TIMEOUT + 1.0, shield=True):  # bounded regardless
                await self._drained.wait()

    async def aclose(self) -> None:
        """Close, wait until every taken line is published, then say how many were dropped."""
        self.close()
        if self._drained is not None:
            await self._drained.wait()
        if self.dropped:
            dropped = self.dropped
            text = f"[{dropped} console line{'s' * (dropped != 1)} dropped]"
            await self._emit(StepLogged(level="warn", text=text, **self.ids))


class Announcement:
    """An attempt's ``step.started``: published at once when the bus can take it
    without waiting, else by a task of the run; :meth:`wait` returns once it is out."""

    def __init__(self, emit: Emit, emit_nowait: EmitNowait, spawn: Spawn) -> None:
        self._emit, self._emit_nowait, self._spawn = emit, emit_nowait, spawn
        self.published = False
        self._out: anyio.Event | None = None

    def publish(self, event: LifecycleEvent) -> None:
        """Publish ``event`` now if the bus can take it, else start a task that does."""
        if self._emit_nowait(event):
            self.published = True
            return
        self._out = anyio.Event()
        self._spawn(self._publish, event, self._out)

    async def _publish(self, event: LifecycleEvent, out: anyio.Event) -> None:
        try:
            await self._emit(event)
        finally:
            self.published = True
            out.set()

    async def wait(self) -> None:
        """Return once the event is published (at once if none was or it went out)."""
        if self._out is not None:
            await self._out.wait()
