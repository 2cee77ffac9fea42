"""The worker process: the only module that talks to jsrun.

Run as ``python -m runtime_pool._sandbox CONFIG_JSON``. It owns one hardened
jsrun runtime whose glue runs a dispatch loop (one long-lived call: jsrun runs
calls on a runtime one after another, awaits included), so many runs share the
runtime at once and interleave at ``await``. It moves frames over stdin/stdout,
forwards host calls to the pool, and enforces each run's deadline and the
worker's memory cap itself. The pool supervises it from outside.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import json
import os
import signal
import struct
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsrun import JavaScriptError, Runtime, RuntimeConfig

from . import _protocol
from ._priority import JsPriority

_GLUE = resources.files(__package__).joinpath("_glue.js").read_text()
_RANDOM = resources.files(__package__).joinpath("_random.js").read_text()
_PAGE = os.sysconf("SC_PAGE_SIZE")
_JSRUN_GUARD = 1.0  # a jsrun call that blocks longer than this ends the process
_TERMINATE_GRACE = 0.5  # a starved worker can need more than 0.15 s; past it, the worker ends
_CHECK_GUARD = 10.0  # creating, compiling in and closing a throwaway runtime (~15 ms)
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
    max_host_calls: int
    max_host_bytes: int
    js_nice: int
    js_idle: bool = True


@contextmanager
def _guarded(seconds: float) -> Iterator[None]:
    """End this process if the jsrun call inside does not return in ``seconds``.

    jsrun can block in ``terminate()``, ``close()`` or ``get_stats()`` (for example
    while JS holds its thread); then the pool sees the worker exit and replaces it.
    """
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


class _Sandbox:
    """One hardened runtime plus the dispatch loop function the glue returned."""

    def __init__(
        self, config: SandboxConfig, ops: Callable[[], dict[str, Callable[..., Awaitable[Any]]]]
    ):
        self._config = config
        self._ops = ops  # the host ops for each new runtime
        self.runs = 0  # runs started on this runtime
        self._terminated = False
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        self.priority = JsPriority(config.js_nice, config.js_idle)
        self._runtime, self._serve = self._create()
        self._fresh_rss = _rss(self._statm)
        with self.priority.awake():
            self._fresh_heap = self._runtime.get_stats().heap_used_bytes

    def _create(self) -> tuple[Runtime, Any]:
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
        ids = [runtime.register_op(name, fn, mode="async") for name, fn in self._ops().items()]
        runtime.eval(_RANDOM)(list(struct.unpack("8I", os.urandom(32))))  # Math.random's key
        factory = runtime.eval(_GLUE)
        serve = factory(ids, c.max_value_bytes, c.max_depth, c.max_log_lines, c.max_log_chars)
        self.priority.new_runtime()  # the glue above ran at the host's priority
        return runtime, serve

    async def serve(self) -> None:
        """Run the dispatch loop until it is told to stop (raises if the runtime fails)."""
        await self._serve.call_async()

    def terminate(self) -> None:
        """Stop the JS in progress; the runtime is dead afterwards."""
        # terminate() can deadlock with jsrun's own thread while a host call's result
        # is being handed over; then this process exits and the pool replaces it.
        if not self._terminated:
            self._terminated = True
            with self.priority.awake(), _guarded(_TERMINATE_GRACE), suppress(Exception):
                self._runtime.terminate()  # dead already is fine

    def heap_exhausted(self, exc: BaseException | None) -> bool:
        """A heap breach shows in the error only when the runtime is probed."""
        try:
            with self.priority.awake(), _guarded(_JSRUN_GUARD):
                self._runtime.get_stats()
        except Exception as probe:
            exc = probe
        return "heap limit" in str(exc).lower()

    def closed(self) -> bool:
        """True once the runtime died on its own (heap limit) or was terminated; never blocks."""
        return bool(self._runtime.is_closed())

    def alive(self) -> bool:
        try:
            with self.priority.awake(), _guarded(_JSRUN_GUARD):
                self._runtime.get_stats()
        except Exception:
            return False
        return True

    def needs_recycle(self, pending_async: int) -> bool:
        """Whether to replace the runtime now that no run is in flight."""
        if self._config.isolation == "fresh" or self.runs >= self._config.max_runs:
            return True
        if pending_async > 0:
            return True
        with self.priority.awake(), _guarded(_JSRUN_GUARD):
            stats = self._runtime.get_stats()
        busy = stats.active_timers + stats.active_intervals
        # Heap a run left behind (e.g. data in a private field stamped on a frozen
        # intrinsic, which nothing can remove) would count against the next runs.
        heap = stats.heap_used_bytes - self._fresh_heap
        return busy > 0 or heap > self._config.heap_limit // 4 or self.memory_left_behind()

    def memory_left_behind(self) -> bool:
        """Resident memory stays far above this runtime's fresh level (never blocks).

        Memory a run left behind (e.g. a typed array or a big array in a private field
        stamped on a frozen intrinsic) would count against the next runs. The heap shows
        in resident memory too, so a quarter of the smaller limit is the bound.
        """
        bound = min(self._config.memory_limit, self._config.heap_limit) // 4
        return _rss(self._statm) - self._fresh_rss > bound

    def recycle(self, *, idle: bool) -> None:
        """Close this runtime and make a new one.

        ``idle``: its dispatch loop returned, so no JS runs and ``close()`` is safe
        without ``terminate()`` (which can hang while host calls are settling).
        """
        if not idle:
            self.terminate()
        with self.priority.awake(), _guarded(_JSRUN_GUARD), suppress(Exception):
            self._runtime.close()
        self.runs = 0
        self._terminated = False
        self._runtime, self._serve = self._create()
        self._fresh_rss = _rss(self._statm)
        with self.priority.awake():
            self._fresh_heap = self._runtime.get_stats().heap_used_bytes


def syntax_position(source: str, heap_limit: int) -> tuple[str, int, int] | None:
    """V8's message, line and column for ``source`` compiled as a top-level script in a
    throwaway runtime (closed at once: an idle runtime spins a core), or ``None``.

    ``source`` must only define a function: nothing in it runs.
    """
    with _guarded(_CHECK_GUARD):
        runtime = Runtime(RuntimeConfig(max_heap_size=heap_limit))
        try:
            runtime.eval(source)
        except JavaScriptError as exc:
            frame = exc.frames[0] if exc.frames else {}
            line, column = frame.get("line_number"), frame.get("column_number")
            if exc.name == "SyntaxError" and line is not None and column is not None:
                return str(exc.message), line, column
        finally:
            runtime.close()
    return None


def _rss(statm: int) -> int:
    """Resident memory in bytes, from an open /proc/self/statm."""
    return int(os.pread(statm, 128, 0).split()[1]) * _PAGE


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
    from ._worker import Worker

    config = SandboxConfig(**json.loads(sys.argv[1]))
    _die_with_parent(config.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray writes to stdout must not corrupt the frame stream
    try:
        asyncio.run(Worker(config, out_fd).serve())
    finally:
        sys.stderr.flush()
        os._exit(0)  # skip interpreter teardown: jsrun can segfault there


if __name__ == "__main__":
    main()
