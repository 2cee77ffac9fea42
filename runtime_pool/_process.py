"""One sandbox worker process, seen from the pool: the only module that touches processes.

It spawns ``python -m runtime_pool._sandbox``, moves frames over the worker's
stdin/stdout (counting the frames written, so a worker's idle report can be
matched against them), parks the worker with SIGSTOP (a jsrun runtime spins a
core even while it only waits) and wakes it with SIGCONT before every frame,
keeps the tail of its stderr for crash reports, and stops it for good.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from subprocess import PIPE
from typing import Any

import anyio
from anyio.abc import Process

from . import _protocol
from ._log import get_logger

__all__ = ("WorkerProcess",)

logger = get_logger(__name__)

_STDERR_LINES = 40
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXIT_GRACE = 1.0
_READ_SIZE = 65536  # the least asked of the pipe at a time


class WorkerProcess:
    """A spawned worker: framed I/O, parking, and an orderly or forced end."""

    def __init__(self, process: Process, *, max_frame: int) -> None:
        self._process = process
        assert process.stdout is not None and process.stdin is not None
        self._stdin = process.stdin
        # anyio's stream yields to the event loop after every write; with many runs per
        # worker that made each frame wait one loop iteration for the lock (replies
        # queued past their run's deadline on a busy host). Write to the pipe directly.
        writer = getattr(process.stdin, "_stream", None)
        self._writer = writer if isinstance(writer, asyncio.StreamWriter) else None
        self._stdout = process.stdout
        self._received = bytearray()  # read from stdout, not yet taken as frames
        self._send_lock = anyio.Lock(fast_acquire=True)  # no scheduling round trip when free
        self._max_frame = max_frame
        self._frame_end = _protocol.PREFIX_SIZE  # bytes the next frame needs in all
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES)
        self.stderr_closed = anyio.Event()
        self.parked = False
        self.written = 0  # frames written (or being written) to the worker

    @classmethod
    async def spawn(cls, config: Mapping[str, Any], *, max_frame: int) -> WorkerProcess:
        """Start a worker process with ``config`` (see ``_sandbox.SandboxConfig``)."""
        command = [sys.executable, "-m", "runtime_pool._sandbox", json.dumps(dict(config))]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        process = await anyio.open_process(
            command, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=env, start_new_session=True
        )
        return cls(process, max_frame=max_frame)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Write one frame, waking the worker first if it is parked.

        A frame is written whole or not at all: cancellation can interrupt only the
        wait for the pipe, so a cancelled ``send`` never reached the worker.
        """
        frame = _protocol.encode(header, payload)
        if self._can_write_now():  # the usual case: no lock, no cancel scope, no yield
            self._write_now(frame)
            if self._must_drain():
                async with self._send_lock:
                    with anyio.CancelScope(shield=True):
                        await self._drain()
            return
        async with self._send_lock:
            self.unpark()
            self.written += 1
            with anyio.CancelScope(shield=True):
                await self._write(frame)

    async def send_built(self, build: Callable[[], tuple[dict[str, Any], bytes]]) -> None:
        """Write the frame ``build()`` returns, building it only once it can be sent.

        Many host calls may end at once; each reply's bytes exist only while it is
        being written, not while it waits for the pipe.
        """
        if self._can_write_now():
            header, payload = build()
            self._write_now(_protocol.encode(header, payload))
            if self._must_drain():
                async with self._send_lock:
                    await self._drain()
            return
        async with self._send_lock:
            header, payload = build()
            self.unpark()
            self.written += 1
            await self._write(_protocol.encode(header, payload))

    def _can_write_now(self) -> bool:
        """Whether a frame can go to the pipe without waiting: no one is sending or
        waiting to, and the pipe has taken every byte written so far."""
        writer = self._writer
        return (
            writer is not None
            and not self._send_lock.locked()
            and not writer.is_closing()
            and writer.transport.get_write_buffer_size() == 0
        )

    def _write_now(self, frame: bytes) -> None:
        assert self._writer is not None
        self.unpark()
        self.written += 1
        self._writer.write(frame)  # to the pipe at once, or buffered: whole either way

    def _must_drain(self) -> bool:
        """Whether the frame just written needs a wait: the pipe broke (the wait says
        so) or did not take it all."""
        assert self._writer is not None
        return self._writer.is_closing() or self._writer.transport.get_write_buffer_size() > 0

    async def _write(self, frame: bytes) -> None:
        """Write ``frame`` at once; wait only while the pipe is full (never yield else)."""
        if self._writer is None:
            await self._stdin.send(frame)
            return
        if self._writer.is_closing():
            raise anyio.ClosedResourceError
        self._writer.write(frame)
        await self._drain()

    async def _drain(self) -> None:
        assert self._writer is not None
        try:
            await self._writer.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise anyio.BrokenResourceError from exc

    async def receive(self) -> tuple[dict[str, Any], bytes]:
        """Read one frame; raises ``anyio.IncompleteRead`` or ``EndOfStream`` at exit.

        Reads what the pipe has (several frames at once under load) and takes the
        frames from that without waiting while whole ones are there.
        """
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            missing = max(_READ_SIZE, self._frame_end - len(self._received))
            try:
                chunk = await self._stdout.receive(missing)
            except anyio.EndOfStream:
                if self._received:
                    raise anyio.IncompleteRead from None
                raise
            self._received += chunk

    def _take_frame(self) -> tuple[dict[str, Any], bytes] | None:
        """The first whole frame read, or None (and how many bytes it needs in all)."""
        received = self._received
        self._frame_end = _protocol.PREFIX_SIZE
        if len(received) < _protocol.PREFIX_SIZE:
            return None
        head_len, payload_len = _protocol.decode_prefix_from(received)
        if head_len + payload_len > self._max_frame:
            raise ValueError(f"worker sent a frame of {head_len + payload_len} bytes")
        head_end = _protocol.PREFIX_SIZE + head_len
        self._frame_end = end = head_end + payload_len
        if len(received) < end:
            return None
        header = _protocol.decode_header(received[_protocol.PREFIX_SIZE : head_end])
        payload = bytes(received[head_end:end])
        del received[:end]  # cheap from the front of a bytearray
        self._frame_end = _protocol.PREFIX_SIZE
        return header, payload

    async def pump_stderr(self) -> None:
        """Keep the last lines the worker wrote to stderr (V8 fatal errors land here)."""
        assert self._process.stderr is not None
        buffer = b""
        with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in self._process.stderr:
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    self.stderr_tail.append(_line(line))
                buffer = buffer[-4096:]
        if buffer:
            self.stderr_tail.append(_line(buffer))
        self.stderr_closed.set()

    def park(self) -> None:
        """Stop the worker (SIGSTOP): it uses no CPU until :meth:`unpark`.

        Only once the worker said it is idle (see ``_slot``): stopped in the middle
        of its own work, a guarded jsrun call would outlast its guard and end it.
        """
        if not self.parked and self._signal(signal.SIGSTOP):
            self.parked = True

    def unpark(self) -> None:
        if self.parked:
            self.parked = False
            self._signal(signal.SIGCONT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> bool:
        if self._process.returncode is not None:
            return False
        try:
            os.kill(self._process.pid, signum)
        except ProcessLookupError:
            return False
        return True

    async def wait(self) -> int:
        return await self._process.wait()

    async def aclose(self) -> None:
        """End the worker: close its stdin, wait briefly, then SIGKILL. Always reaps it."""
        with anyio.CancelScope(shield=True):
            self.unpark()
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await self._stdin.aclose()
            with anyio.move_on_after(_EXIT_GRACE):
                await self._process.wait()
            if self._process.returncode is None:
                self.kill()
                await self._process.wait()
            await self._process.aclose()


def _line(raw: bytes) -> str:
    """One stderr line as kept for crash reports and logs: at most ~1000 characters."""
    return _protocol.clip(raw.decode(errors="replace"), 1000)
