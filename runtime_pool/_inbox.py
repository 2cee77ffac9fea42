"""One run's inbox: the frames its worker sent it, from the worker's reader to the run's driver.

A bounded queue with one producer (the reader) and one consumer (the driver), lighter
than a memory object stream: :meth:`RunInbox.receive` returns a frame that is
already there without a trip through the event loop, and waiting costs one event.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio

__all__ = ("Frame", "RunInbox")

Frame = tuple[dict[str, Any], bytes]


class RunInbox:
    """Frames for one run. The reader calls :meth:`send_nowait`/:meth:`send` and
    :meth:`finish` (no more frames); the driver calls :meth:`receive` (``EndOfStream``
    once finished and empty) and :meth:`close` (it reads no more: frames are dropped)."""

    __slots__ = ("_arrived", "_finished", "_frames", "_room", "_size", "closed")

    def __init__(self, size: int) -> None:
        self._frames: deque[Frame] = deque()
        self._size = size
        self._finished = False
        self.closed = False
        self._arrived: anyio.Event | None = None  # the driver waits for a frame or the end
        self._room: anyio.Event | None = None  # the reader waits for room

    def send_nowait(self, frame: Frame) -> None:
        """Queue ``frame``; raise ``WouldBlock`` if full. Dropped once closed or finished."""
        if self.closed or self._finished:
            return
        if len(self._frames) >= self._size:
            raise anyio.WouldBlock
        self._frames.append(frame)
        self._wake_driver()

    async def send(self, frame: Frame) -> None:
        """Queue ``frame``, waiting for room while the inbox is full."""
        while True:
            try:
                return self.send_nowait(frame)
            except anyio.WouldBlock:
                self._room = anyio.Event()
                await self._room.wait()

    def finish(self) -> None:
        """No more frames will come: the driver gets ``EndOfStream`` after the queued ones."""
        self._finished = True
        self._wake_driver()
        self._wake_reader()  # a send waiting for room drops its frame

    async def receive(self) -> Frame:
        """The next frame, waiting while none is queued; ``EndOfStream`` at the end."""
        while not self._frames:
            if self._finished or self.closed:
                raise anyio.EndOfStream
            self._arrived = arrived = anyio.Event()
            await arrived.wait()
        frame = self._frames.popleft()
        self._wake_reader()
        return frame

    def close(self) -> None:
        """The driver reads no more: queued and later frames are dropped."""
        self.closed = True
        self._frames.clear()
        self._wake_reader()
        self._wake_driver()

    def __aiter__(self) -> RunInbox:
        return self

    async def __anext__(self) -> Frame:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def _wake_driver(self) -> None:
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    def _wake_reader(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None
