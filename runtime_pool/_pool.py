"""The pool: warm sandbox workers, checkout and checkin, supervision, statistics."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from . import _protocol, errors
from ._check import CheckLost, check_request, drive_check, syntax_error
from ._console import StreamedLines
from ._log import get_logger
from ._placement import Costs, pick
from ._process import WorkerProcess
from ._results import Execution, HostCall, LogLine, PoolStatistics
from ._run import (
    Evicted,
    Limits,
    WorkerGone,
    check_name,
    drive_run,
    encode_value,
    prepare_run,
)
from ._shared import Shared, make_shared
from ._slot import Checkout, Slot, Waiter

__all__ = ("RuntimePool",)

logger = get_logger(__name__)

Isolation = Literal["reuse", "fresh"]
Placement = Literal["pack", "spread"]
_RESPAWN_BACKOFF = 1.0
DEFAULT_CONCURRENCY = 256  # measured: see docs/sandbox.md "Many runs per worker"
# jsrun's thread spins while its JS waits; niced, it yields the CPU the host needs
# (measured: ``python -m benchmarks.nice``, docs/performance.md).
DEFAULT_JS_NICE = 10


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class RuntimePool:
    """A warm pool of sandboxed jsrun runtimes, each in its own supervised worker process.

    Use as ``async with RuntimePool() as pool: await pool.run(code, ...)``.
    ``size=None`` means one worker per usable core.
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        heap_limit: int = 64 * 2**20,
        memory_limit: int = 512 * 2**20,
        timeout: float = 30.0,
        max_value_bytes: int = 8 * 2**20,
        max_depth: int = 100,
        isolation: Isolation = "reuse",
        park_after: float = 0.02,
        max_log_lines: int = 1000,
        max_log_chars: int = 64 * 1024,
        max_runs_per_runtime: int = 10_000,
        start_timeout: float = 30.0,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_host_calls: int = 64,
        js_nice: int = DEFAULT_JS_NICE,
        js_idle: bool = True,
        placement: Placement = "pack",
    ) -> None:
        self.size = _usable_cores() if size is None else size
        if self.size < 1:
            raise ValueError("size must be at least 1")
        if heap_limit < 16 * 2**20:
            raise ValueError("heap_limit must be at least 16 MiB (V8 aborts below ~8 MiB)")
        if memory_limit <= heap_limit:
            raise ValueError("memory_limit must be larger than heap_limit")
        if timeout <= 0 or max_value_bytes <= 0 or max_depth <= 0:
            raise ValueError("timeout, max_value_bytes and max_depth must be positive")
        if isolation not in ("reuse", "fresh"):
            raise ValueError("isolation must be 'reuse' or 'fresh'")
        if concurrency < 1 or max_host_calls < 1:
            raise ValueError("concurrency and max_host_calls must be at least 1")
        if not 0 <= js_nice <= 19:
            raise ValueError("js_nice must be between 0 and 19")
        if placement not in ("pack", "spread"):
            raise ValueError("placement must be 'pack' or 'spread'")
        self.placement = placement
        # One run per runtime means one run per worker at a time.
        self.concurrency = 1 if isolation == "fresh" else concurrency
        self.heap_limit = heap_limit
        self.memory_limit = memory_limit
        self.timeout = timeout
        self.max_value_bytes = max_value_bytes
        self.isolation = isolation
        self._park_after = park_after
        self._start_timeout = start_timeout
        self._worker_config = {
            "parent": os.getpid(),
            "heap_limit": heap_limit,
            "memory_limit": memory_limit,
            "max_value_bytes": max_value_bytes,
            "max_depth": max_depth,
            "max_log_lines": max_log_lines,
            "max_log_chars": max_log_chars,
            "isolation": isolation,
            "max_runs": max_runs_per_runtime,
            "max_host_calls": max_host_calls,
            "max_host_bytes": max_value_bytes,
            "js_nice": js_nice,
            "js_idle": js_idle,
        }
        self._limits = Limits(
            heap_limit, memory_limit, max_value_bytes, max_host_calls, max_value_bytes
        )
        self._max_frame = _protocol.frame_limit(max_value_bytes, max_log_chars, max_log_lines)
        self._slots: list[Slot] = []  # in the order started: light runs fill the first
        self._waiters: deque[Waiter] = deque()
        self._tokens = itertools.count(1)
        self._costs = Costs()
        self._task_group: TaskGroup | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._started = anyio.Event()
        self._start_failure: BaseException | None = None
        self._runs = self._waits = self._crashes = self._recycles = self._spawns = 0
        self._reruns = self._evictions = self._unresponsive = 0

    # ---- lifecycle ----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between entering and leaving ``async with``."""
        return self._state == "open"

    async def __aenter__(self) -> RuntimePool:
        if self._state != "new":
            raise errors.PoolClosed("a RuntimePool can be opened only once")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._state = "open"
        try:
            for _ in range(self.size):
                self._task_group.start_soon(self._keep_worker)
            with anyio.fail_after(self._start_timeout):
                await self._started.wait()
            if self._start_failure is not None:
                raise self._start_failure
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        """Wake waiting runs with PoolClosed, stop every worker, and wait for them to end."""
        if self._state == "closed":
            return
        self._state = "closed"
        while self._waiters:
            self._waiters.popleft().wake(None)
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)

    # ---- running scripts ------------------------------------------------------------

    async def run(
        self,
        code: str,
        *,
        globals: Mapping[str, Any] | None = None,
        api: Mapping[str, Callable[..., Any]] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run ``code`` (the body of an async JS function) and return its value."""
        execution = await self.execute(code, globals=globals, api=api, timeout=timeout)
        return execution.value

    async def execute(
        self,
        code: str,
        *,
        globals: Mapping[str, Any] | None = None,
        api: Mapping[str, Callable[..., Any]] | None = None,
        timeout: float | None = None,
        on_start: Callable[[], object] | None = None,
        on_log: Callable[[LogLine], object] | None = None,
        lib: str | None = None,
        on_host_call: Callable[[HostCall], object] | None = None,
        shared: Shared | None = None,
    ) -> Execution:
        """Like :meth:`run`, but return the value with the console lines and the duration.

        ``on_start`` is called (synchronously) when the script has been handed to a
        worker: the moment its ``timeout`` starts counting. Waiting for a free worker
        comes before it and is not part of the timeout. ``on_log`` is called
        (synchronously) with each console line as the script writes it; the lines are
        also in the result, or in the error's ``.logs``. ``lib``: the body of a
        function run once per runtime (cached by its text) whose result, deeply
        frozen, the script sees as ``lib``. ``on_host_call`` is called (synchronously)
        with a :class:`HostCall` as each host function call ends. ``shared``: globals
        from :meth:`share`, sent to each worker once.
        """
        if self._state != "open":
            raise errors.PoolClosed("the pool is not open")
        limit = self.timeout if timeout is None else timeout
        if limit <= 0:
            raise ValueError("timeout must be positive")
        request = prepare_run(
            code,
            globals or {},
            api or {},
            timeout=limit,
            max_value_bytes=self.max_value_bytes,
            lib=lib,
            on_host_call=on_host_call,
            shared=shared,
        )
        self._runs += 1
        streamed = None if on_log is None else StreamedLines(on_log)
        solo = rerun = False
        while True:
            heavy = self.placement == "spread" or self._costs.heavy(code)
            slot, run, inbox = await self._checkout(solo, heavy)
            try:
                start = None if rerun else on_start
                execution = await drive_run(
                    slot, run, inbox, request, self._limits, start, streamed
                )
                if streamed is not None:
                    streamed.finish(execution.logs)
                return execution
            except WorkerGone:
                continue  # it died while idle; its replacement is on the way
            except Evicted as evicted:
                if evicted.called or rerun:
                    self._evictions += 1
                    error = _evicted_error(evicted)
                    if streamed is not None:
                        streamed.fill(error)
                    raise error from None
                # No effect outside yet: run it again, alone this time (which pins a
                # crash on its run), unless the worker was killed from outside.
                self._reruns += 1
                solo, rerun = evicted.reason != "killed", True
                if streamed is not None:
                    streamed.rerun()
            except errors.RuntimePoolError as error:
                if streamed is not None:
                    streamed.finish(error.logs)
                    streamed.fill(error)  # a stopped runtime reports no lines of its own
                raise
            finally:
                if run.busy is not None:
                    self._costs.observe(code, run.busy)
                self._release(slot, run.token)

    def share(self, values: Mapping[str, Any]) -> Shared:
        """Encode ``values`` (globals by name) once, for many :meth:`execute` calls.

        Each worker receives them once and keeps the last few; the scripts see
        them frozen. A name also given as an object in ``globals`` is the shallow
        merge of both (the run's own keys win).
        """
        for name in values:
            check_name(name)
        return make_shared(values, encode_value(dict(values), "shared", self.max_value_bytes))

    async def check(self, code: str, *, names: Iterable[str] = ()) -> None:
        """Compile ``code`` in a worker without running it; raise if it does not compile.

        ``names`` are the globals and api names the script will run with (a body
        that redeclares one with ``let`` does not compile). Raises
        :class:`~runtime_pool.errors.ScriptSyntaxError` with the line and column in
        ``code`` itself. Not counted as a run.
        """
        if self._state != "open":
            raise errors.PoolClosed("the pool is not open")
        code, listed = check_request(code, names)
        for _ in range(3):
            slot, run, inbox = await self._checkout(False, False)
            try:
                outcome = await drive_check(slot, run, inbox, code, listed, self.timeout)
            except (WorkerGone, CheckLost):
                continue
            finally:
                self._release(slot, run.token)
            error = syntax_error(outcome)
            if error is not None:
                raise error
            return
        raise errors.SandboxCrashed("no sandbox worker answered the syntax check")

    @property
    def _closing(self) -> bool:
        return self._state != "open"

    # ---- checkout: a worker with room (see _placement) ------------------------------------

    async def _checkout(self, solo: bool, heavy: bool) -> Checkout:
        checkout = self._reserve(solo, heavy)
        if checkout is not None:
            return checkout
        self._waits += 1
        while True:
            with anyio.move_on_after(self._start_timeout):
                return await self._wait_for_room(solo, heavy)
            # Waiting is bounded while the pool has no worker to serve at all.
            if not any(s.ready_once and not s.dead for s in self._slots):
                raise errors.SandboxCrashed(
                    f"no sandbox worker came back within {self._start_timeout:g} s"
                )

    async def _wait_for_room(self, solo: bool, heavy: bool) -> Checkout:
        waiter = Waiter(solo, heavy)
        self._waiters.append(waiter)
        try:
            checkout = await waiter.wait()
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.checkout is not None:  # woken with room, but cancelled: give it back
                slot, run, inbox = waiter.checkout
                inbox.close()
                self._release(slot, run.token)
            raise
        if checkout is None:
            raise errors.PoolClosed("the pool closed while waiting for a worker")
        return checkout

    def _reserve(self, solo: bool, heavy: bool) -> Checkout | None:
        best = pick(self._slots, self.concurrency, solo, heavy)
        if best is None:
            return None
        run, inbox = best.begin_run(next(self._tokens), solo, heavy)
        return best, run, inbox

    def _release(self, slot: Slot, token: int) -> None:
        slot.end_run(token)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        """Hand freed room to waiting runs, first come first served."""
        while self._waiters and not self._closing:
            waiter = self._waiters[0]
            checkout = self._reserve(waiter.solo, waiter.heavy)
            if checkout is None:
                return
            self._waiters.popleft().wake(checkout)

    # ---- supervision ------------------------------------------------------------------

    async def _keep_worker(self) -> None:
        """Own one worker process for its whole life; replace it when it dies."""
        try:
            # Shielded: a spawn cut short by the pool closing would leave its process behind.
            with anyio.CancelScope(shield=True):
                process = await WorkerProcess.spawn(self._worker_config, max_frame=self._max_frame)
        except OSError as exc:
            if not self._started.is_set():
                self._fail_start(errors.RuntimePoolError(f"cannot start a worker: {exc}"))
                return
            logger.error("worker_spawn_failed", error=str(exc))
            await anyio.sleep(_RESPAWN_BACKOFF)
            assert self._task_group is not None
            self._task_group.start_soon(self._keep_worker)
            return
        self._spawns += 1
        slot = Slot(process)
        self._slots.append(slot)
        spawned = time.perf_counter()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(process.pump_stderr)
                tg.start_soon(slot.watch, self._park_after, self._start_timeout)
                slot.set_accepting(False)  # starts its deadline to say ready
                await self._read_frames(slot, spawned)
                with anyio.move_on_after(1.0):  # its last lines may say why it ended
                    await process.stderr_closed.wait()
                tg.cancel_scope.cancel()
        finally:
            self._slots.remove(slot)
            slot.close()
            await self._bury(slot)
        if not self._closing:
            if not slot.ready_once:
                await anyio.sleep(_RESPAWN_BACKOFF)  # it died while starting: do not spin
            assert self._task_group is not None
            self._task_group.start_soon(self._keep_worker)

    async def _read_frames(self, slot: Slot, spawned: float) -> None:
        process = slot.process
        while True:
            try:
                header, payload = await process.receive()
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                return
            except ValueError as exc:
                slot.death = errors.SandboxCrashed(f"worker broke the protocol: {exc}")
                process.kill()
                return
            op = header["op"]
            if op == "idle":
                slot.on_idle(header["seen"], header["wake"])
                continue
            slot.heard()
            if op in ("call", "log", "result"):
                await slot.deliver(header, payload)
            elif op == "ready":
                self._on_ready(slot, spawned)
            elif op == "draining":
                slot.set_accepting(False)
            elif op == "stopping":
                slot.stopping = header["reason"]
                slot.set_accepting(False)
                if header["reason"] == "memory":
                    slot.retiring = True

    def _on_ready(self, slot: Slot, spawned: float) -> None:
        if not slot.ready_once:
            slot.ready_once = True
            seconds = round(time.perf_counter() - spawned, 3)
            logger.info("worker_started", pid=slot.process.pid, seconds=seconds)
            self._worker_ready()
        else:
            self._recycles += 1
            logger.debug("worker_recycled", pid=slot.process.pid)
        slot.stopping = None
        slot.set_accepting(True)
        self._wake_waiters()

    def _worker_ready(self) -> None:
        if sum(s.ready_once for s in self._slots) >= self.size:
            self._started.set()

    def _fail_start(self, failure: BaseException) -> None:
        if not self._started.is_set():
            self._start_failure = failure
            self._started.set()

    async def _bury(self, slot: Slot) -> None:
        """Reap a worker that ended and fail the run it was serving."""
        slot.dead = True
        with anyio.CancelScope(shield=True):
            if self._closing:
                slot.killed_for = "closed"
                slot.fail_runs(errors.PoolClosed("the pool closed during the run"))
                await slot.process.aclose()
                return
            with anyio.move_on_after(1.0):
                await slot.process.wait()
            await slot.process.aclose()
        code = slot.process.returncode
        tail = list(slot.process.stderr_tail)
        if slot.killed_for is not None:
            self._unresponsive += 1
            logger.warning("worker_killed", pid=slot.process.pid, reason=slot.killed_for)
        elif slot.retiring or slot.stopping:
            self._recycles += 1
            reason = "memory_limit" if slot.retiring else f"terminate_hung:{slot.stopping}"
            logger.info("worker_retired", pid=slot.process.pid, reason=reason)
        else:
            self._crashes += 1
            logger.warning("worker_crashed", pid=slot.process.pid, exit_code=code, stderr=tail[-5:])
        if not slot.ready_once:
            self._fail_start(errors.RuntimePoolError(f"worker failed to start: {tail[-5:]}"))
        cause = "killed" if code == -signal.SIGKILL else "crashed"
        slot.fail_runs(slot.death or _crash_error(code, tail, self.heap_limit), cause)

    # ---- introspection -----------------------------------------------------------------

    def statistics(self) -> PoolStatistics:
        """Return a snapshot of workers and counters."""
        live = [s for s in self._slots if s.ready_once and not s.dead]
        return PoolStatistics(
            size=self.size,
            live=len(live),
            idle=sum(s.state == "idle" for s in live),
            busy=sum(s.state == "busy" for s in live),
            parked=sum(s.process.parked for s in live),
            runs=self._runs,
            waits=self._waits,
            crashes=self._crashes,
            recycles=self._recycles,
            spawns=self._spawns,
            concurrency=self.concurrency,
            in_flight=sum(s.load for s in live),
            reruns=self._reruns,
            evictions=self._evictions,
            unresponsive=self._unresponsive,
        )

    def worker_pids(self, *, state: Literal["idle", "busy"] | None = None) -> tuple[int, ...]:
        """Return the process ids of the live workers, optionally only idle or busy ones."""
        return tuple(
            s.process.pid
            for s in self._slots
            if not s.dead and s.ready_once and (state is None or s.state == state)
        )


_EVICTED_BY = {
    "killed": "this run's worker was killed from outside (SIGKILL)",
    "crashed": "this run's worker died with other runs in it",
    "unresponsive": "this run's worker stopped answering and was killed",
}


def _evicted_error(evicted: Evicted) -> errors.SandboxCrashed:
    what = _EVICTED_BY.get(evicted.reason) or (
        f"another script in this run's worker broke a limit ({evicted.reason}) and its "
        "runtime was stopped"
    )
    if not evicted.called:
        return errors.SandboxCrashed(f"{what}; this run had been run again once already")
    return errors.SandboxCrashed(
        f"{what}; this run had already called a host function, so it was not run again "
        "(retrying it repeats those calls)"
    )


def _crash_error(code: int | None, tail: list[str], heap_limit: int) -> errors.RuntimePoolError:
    text = "\n".join(tail).lower()
    if "out of memory" in text or "heap limit" in text:
        return errors.HeapLimitExceeded(heap_limit)
    detail = f"; last output: {tail[-1]}" if tail else ""
    return errors.SandboxCrashed(f"the worker died (exit code {code}){detail}", exit_code=code)
