"""The worker process: the only module that talks to jsrun.

Run as ``python -m runtime_pool._sandbox CONFIG_JSON``. It owns one hardened
jsrun runtime, serves one run at a time over frames on stdin/stdout, forwards
host calls to the pool, and enforces the run's deadline and memory cap itself
(``rt.terminate()`` on its own loop). The pool supervises it from outside.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import itertools
import json
import os
import signal
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsrun import JavaScriptError, Runtime, RuntimeConfig

from . import _protocol

_GLUE = resources.files(__package__).joinpath("_glue.js").read_text()
_RANDOM = resources.files(__package__).joinpath("_random.js").read_text()
_PAGE = os.sysconf("SC_PAGE_SIZE")
_SAMPLE_EVERY = 0.005
_TERMINATE_GRACE = 0.15
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Limits and policy for one worker, sent by the pool as JSON."""

    parent: int
    heap_limit: int
    memory_limit: int
    max_value_bytes: int
    max_depth: int
    max_log_lines: int
    max_log_chars: int
    isolation: str
    max_runs: int


class _Sandbox:
    """One hardened runtime plus the runner function the glue returned."""

    def __init__(
        self, config: SandboxConfig, host_call: Any, announce_stop: Callable[[str], None]
    ) -> None:
        self._config = config
        self._host_call = host_call
        self._announce_stop = announce_stop
        self.stop_reason: str | None = None
        self.runs = 0
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        self._runtime, self._run, self._finish = self._create()
        self._fresh_rss = _rss(self._statm)
        self._fresh_heap = self._runtime.get_stats().heap_used_bytes

    def _create(self) -> tuple[Runtime, Any, Any]:
        c = self._config
        runtime = Runtime(
            RuntimeConfig(
                max_heap_size=c.heap_limit,
                max_serialization_bytes=_protocol.frame_limit(
                    c.max_value_bytes, c.max_log_chars, c.max_log_lines
                ),
                max_serialization_depth=16,
            )
        )
        op_id = runtime.register_op("host_call", self._host_call, mode="async")
        runtime.eval(_RANDOM)(list(struct.unpack("8I", os.urandom(32))))  # Math.random's key
        factory = runtime.eval(_GLUE)
        run, finish = factory(
            op_id, c.max_value_bytes, c.max_depth, c.max_log_lines, c.max_log_chars
        )
        return runtime, run, finish

    def stop(self, reason: str) -> None:
        """Terminate the JS in progress; the runtime is dead afterwards."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._announce_stop(reason)
            # terminate() can deadlock with jsrun's own thread while a host call's
            # result is being handed over; then this process exits and the pool
            # replaces it (the run still ends in time).
            faulthandler.dump_traceback_later(_TERMINATE_GRACE, exit=True)
            try:
                self._runtime.terminate()
            finally:
                faulthandler.cancel_dump_traceback_later()

    async def run(self, header: dict[str, Any], inputs: str) -> tuple[str, Any, str, bool]:
        """Return (kind, payload, logs JSON, runtime still clean)."""
        self.runs += 1
        try:
            kind, payload = await self._run.call_async(
                header["id"], header["code"], header["globals"], header["api"], inputs
            )
            logs, clean = self._finish()  # after the microtasks the run left have drained
        except Exception as exc:
            return self._failed(exc)
        if self.stop_reason is not None:  # stopped while its leftover microtasks ran
            return self.stop_reason, "stopped", logs, False
        return kind, payload, logs, bool(clean)

    def _failed(self, exc: Exception) -> tuple[str, Any, str, bool]:
        if self.stop_reason is not None:
            return self.stop_reason, _protocol.clip(str(exc)), "[]", False
        if self._alive() and isinstance(exc, JavaScriptError):
            # An error that escaped the run's own promise: an unhandled rejection or
            # a throwing timer callback. The script failed; the runtime is replaced.
            logs, _ = self._finish()
            detail = {
                "name": _protocol.clip(exc.name or "Error", 200),
                "message": _protocol.clip(exc.message or ""),
                "stack": exc.stack and _protocol.clip(exc.stack, _protocol.MAX_STACK),
            }
            return "error", json.dumps(detail), logs, False
        self.stop_reason = "heap" if self._heap_exhausted(exc) else "crashed"
        return self.stop_reason, _protocol.clip(str(exc)), "[]", False

    def _alive(self) -> bool:
        try:
            self._runtime.get_stats()
        except Exception:
            return False
        return True

    def _heap_exhausted(self, exc: Exception) -> bool:
        """A heap breach shows in the error only when the runtime is probed."""
        try:
            self._runtime.get_stats()
        except Exception as probe:
            exc = probe
        return "heap limit" in str(exc).lower()

    def needs_recycle(self, clean: bool) -> bool:
        if not clean or self.stop_reason is not None or self._config.isolation == "fresh":
            return True
        if self.runs >= self._config.max_runs:
            return True
        stats = self._runtime.get_stats()
        busy = stats.active_timers + stats.active_intervals + stats.active_async_ops
        if busy > 0:
            return True
        # Memory a run left behind (e.g. data in a private field stamped on a frozen
        # intrinsic, which nothing can remove) would count against the next run: keep
        # the runtime only within a quarter of each limit of its fresh level.
        heap = stats.heap_used_bytes - self._fresh_heap
        rss = _rss(self._statm) - self._fresh_rss
        return heap > self._config.heap_limit // 4 or rss > self._config.memory_limit // 4

    def recycle(self) -> None:
        if self.stop_reason is None:
            self._runtime.terminate()
        self._runtime.close()
        self.stop_reason = None
        self.runs = 0
        self._runtime, self._run, self._finish = self._create()
        self._fresh_rss = _rss(self._statm)
        self._fresh_heap = self._runtime.get_stats().heap_used_bytes


def _rss(statm: int) -> int:
    """Resident memory in bytes, from an open /proc/self/statm."""
    return int(os.pread(statm, 128, 0).split()[1]) * _PAGE


class _Worker:
    """Reads frames from the pool, runs scripts, writes results and host calls."""

    def __init__(self, config: SandboxConfig, out_fd: int) -> None:
        self._config = config
        self._out = out_fd
        self._token: int | None = None
        self._calls: dict[int, asyncio.Future[list[str]]] = {}
        self._call_ids = itertools.count()
        self._sandbox = _Sandbox(config, self._host_call, self._announce_stop)
        self._peak = 0
        self._sampler: asyncio.TimerHandle | None = None
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)

    def _send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        view = memoryview(_protocol.encode(header, payload))
        while view:
            view = view[os.write(self._out, view) :]

    def _announce_stop(self, reason: str) -> None:
        # Sent before terminate(): if that hangs and this process exits, the pool
        # still knows why the run ended.
        self._send({"op": "stopping", "id": self._token, "reason": reason})

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16)
        stdin = os.fdopen(0, "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
        self._send({"op": "ready", "pid": os.getpid()})
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    prefix = await reader.readexactly(_protocol.PREFIX_SIZE)
                    head_len, payload_len = _protocol.decode_prefix(prefix)
                    header = _protocol.decode_header(await reader.readexactly(head_len))
                    payload = await reader.readexactly(payload_len)
                except asyncio.IncompleteReadError:
                    return
                if not self._dispatch(header, payload, tg):
                    return

    def _dispatch(self, header: dict[str, Any], payload: bytes, tg: asyncio.TaskGroup) -> bool:
        op = header["op"]
        if op == "run":
            tg.create_task(self._run(header, payload.decode()))
        elif op == "reply":
            future = self._calls.pop(header["call"], None)
            if future is not None and not future.done():
                future.set_result([header["kind"], payload.decode()])
        elif op == "cancel":
            if header["id"] == self._token:
                self._sandbox.stop("cancelled")
        elif op == "exit":
            return False
        return True

    async def _host_call(self, token: int, name: str, args_json: str) -> list[str]:
        if token != self._token:
            return ["error", f"host function {name}() called after its run ended"]
        call = next(self._call_ids)
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._calls[call] = future
        self._send({"op": "call", "id": token, "call": call, "name": name}, args_json.encode())
        return await future

    async def _run(self, header: dict[str, Any], inputs: str) -> None:
        loop = asyncio.get_running_loop()
        self._token = header["id"]
        self._peak = 0
        started = time.perf_counter()
        deadline = loop.call_later(header["timeout"], self._sandbox.stop, "timeout")
        self._sample()
        try:
            kind, payload, logs, clean = await self._sandbox.run(header, inputs)
        finally:
            deadline.cancel()
            if self._sampler is not None:
                self._sampler.cancel()
            self._token = None
        pending = [f for f in self._calls.values() if not f.done()]
        for future in pending:
            future.set_result(["error", "run ended"])
        self._calls.clear()
        recycle = self._sandbox.needs_recycle(clean) or bool(pending)
        retire = kind == "memory"
        result = {
            "op": "result",
            "id": header["id"],
            "kind": kind,
            "logs": json.loads(logs) if logs != "[]" else [],
            "duration": time.perf_counter() - started,
            "ready": not (recycle or retire),
            "retire": retire,
            "memory": self._peak,
        }
        value = payload.encode() if kind == "ok" else b""
        if kind != "ok":
            result["detail"] = json.loads(payload) if kind == "error" else payload
        self._send(result, value)
        if retire:
            os._exit(0)
        if recycle:
            self._sandbox.recycle()
            self._send({"op": "ready", "pid": os.getpid()})

    def _sample(self) -> None:
        if self._token is None:
            return
        rss = int(os.pread(self._statm, 128, 0).split()[1]) * _PAGE
        self._peak = max(self._peak, rss)
        if rss > self._config.memory_limit:
            self._breach()
        self._sampler = asyncio.get_running_loop().call_later(_SAMPLE_EVERY, self._sample)

    def _breach(self) -> None:
        """Answer MemoryLimitExceeded and exit at once.

        A breached runtime retires anyway, and terminate() cannot stop a native
        call already running (one huge ``fill``): waiting for it let memory grow
        to ~2x the limit. Exiting now bounds the overshoot to one sampling period.
        """
        result: dict[str, Any] = {"op": "result", "id": self._token, "kind": "memory", "logs": []}
        result.update(duration=0.0, ready=False, retire=True, memory=self._peak)
        self._send(result)
        os._exit(0)


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when the pool's process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def main() -> None:
    config = SandboxConfig(**json.loads(sys.argv[1]))
    _die_with_parent(config.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray writes to stdout must not corrupt the frame stream
    try:
        asyncio.run(_Worker(config, out_fd).serve())
    finally:
        sys.stderr.flush()
        os._exit(0)  # skip interpreter teardown: jsrun can segfault there


if __name__ == "__main__":
    main()
