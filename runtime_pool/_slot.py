"""The pool's view of one worker: its state, the run it serves, and when to park it."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import errors
from ._process import WorkerProcess

__all__ = ("ActiveRun", "Frame", "Slot", "Waiter")

Frame = tuple[dict[str, Any], bytes]
_INBOX_SIZE = 16


@dataclass(eq=False)
class ActiveRun:
    """The run a slot is serving: where its frames go and, if the worker died, why."""

    token: int
    inbox: MemoryObjectSendStream[Frame]
    error: errors.RuntimePoolError | None = field(default=None)


class Slot:
    """One worker process with its bookkeeping. All methods are synchronous except I/O."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.state: Literal["starting", "idle", "busy"] = "starting"
        self.ready_once = False
        self.dead = False
        self.retiring = False
        self.stopping: str | None = None  # why the worker is stopping the current script
        self.death: errors.RuntimePoolError | None = None
        self.run: ActiveRun | None = None
        self._idle_generation = 0
        self._became_idle, self._idle_events = anyio.create_memory_object_stream[int](1)

    def take(self) -> None:
        self.state = "busy"

    def release(self) -> None:
        self.state = "idle"
        self._idle_generation += 1
        with suppress(anyio.WouldBlock):  # else the parker has a wake-up pending already
            self._became_idle.send_nowait(self._idle_generation)

    async def park_when_idle(self, delay: float) -> None:
        """Park the worker once it has stayed idle for ``delay`` seconds."""
        async with self._idle_events:
            async for _ in self._idle_events:
                generation = self._idle_generation
                await anyio.sleep(delay)
                if self.state == "idle" and generation == self._idle_generation and not self.dead:
                    self.process.park()

    def close(self) -> None:
        """Release the slot's own streams once its worker has ended."""
        self._became_idle.close()

    def begin_run(self, token: int) -> tuple[ActiveRun, MemoryObjectReceiveStream[Frame]]:
        send, receive = anyio.create_memory_object_stream[Frame](_INBOX_SIZE)
        self.run = ActiveRun(token, send)
        return self.run, receive

    def end_run(self, token: int) -> None:
        if self.run is not None and self.run.token == token:
            self.run.inbox.close()
            self.run = None

    async def deliver(self, header: dict[str, Any], payload: bytes) -> None:
        """Pass a frame of the current run to its caller; drop frames of finished runs."""
        run = self.run
        if run is None or header.get("id") != run.token:
            return
        final = header["op"] == "result"
        if final:
            self.run = None
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            try:
                run.inbox.send_nowait((header, payload))  # the usual case: no extra yield
            except anyio.WouldBlock:
                await run.inbox.send((header, payload))
        if final:
            run.inbox.close()

    def fail_run(self, error: errors.RuntimePoolError) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.error = error
            run.inbox.close()


class Waiter:
    """A caller waiting for a worker; woken once, with a slot or with None (pool closed)."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._woken = False
        self.slot: Slot | None = None

    def wake(self, slot: Slot | None) -> bool:
        if self._woken:
            return False
        self._woken = True
        self.slot = slot
        self._event.set()
        return True

    async def wait(self) -> Slot | None:
        await self._event.wait()
        return self.slot
