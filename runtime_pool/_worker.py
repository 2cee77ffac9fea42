"""Inside a worker process: many runs in one runtime, and every way a run ends.

Frames from the pool become commands for the glue's dispatch loop (start a run,
abandon one); the loop's host ops come back here (next batch, host call, outcome).
Each run has its own deadline: a run that is only waiting is abandoned in place;
if the JS does not take the abandon within a short probe, a script holds the
thread and the runtime is terminated, failing or evicting the runs it held.
While every run only waits, the worker tells the pool it may be parked (``_quiet``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import _protocol
from ._position import locate
from ._quiet import Quiet
from ._sandbox import SandboxConfig, _Sandbox, syntax_position
from ._shared import KeptKeys, take_shared

__all__ = ("Worker",)

_PAGE = os.sysconf("SC_PAGE_SIZE")
_SAMPLE_EVERY = 0.005
_PROBE_EVERY = 0.1  # how often a run past its deadline checks that the JS is still taking commands
# The dispatch loop has not come back for commands this long after a run was abandoned:
# a script holds the thread. (0.1 s mistook a starved worker for a held one.)
_HELD_AFTER = 0.5
_STOP_GRACE = 0.5  # time for the dispatch loop to return when asked to stop
_IDLE_CHECK = 0.005  # a worker with no run in flight this long checks its runtime


@dataclass(eq=False, slots=True)
class _Run:
    token: int
    started: float
    deadline: asyncio.TimerHandle
    calls: set[int] = field(default_factory=set)
    held: int = 0  # bytes of host-call arguments in flight
    ending: str | None = None  # "timeout" or "cancelled" once the worker gave up on it
    given_up: float = 0.0  # when the worker gave up on it


class Worker:
    """Reads frames from the pool, feeds the dispatch loop, writes results and host calls."""

    def __init__(self, config: SandboxConfig, out_fd: int) -> None:
        self._config = config
        self._out = out_fd
        self._runs: dict[int, _Run] = {}
        self._replies: dict[int, asyncio.Future[list[str]]] = {}
        self._call_ids = itertools.count()
        self._commands: list[list[Any]] = []
        self._poll: asyncio.Future[None] | None = None
        self._generation = 0  # bumped for each new dispatch loop
        self._cycled = 0.0  # when the dispatch loop last came back for commands
        self._backlog: list[tuple[dict[str, Any], str]] = []
        self._shared = KeptKeys()  # shared globals sent by the host (see _shared.py)
        self._accepting = False
        self._breaking = False
        self._recycling = False
        self._pending_async = 0
        self._peak = 0
        self._sampler: asyncio.TimerHandle | None = None
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        self._loop_task: asyncio.Task[None] | None = None
        self._idle_check: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._checks: dict[int, tuple[str, list[str]]] = {}  # syntax checks in flight
        self._quiet = Quiet(self._send, self._push, self._parkable)
        self._sandbox = _Sandbox(config, self._ops)

    def _ops(self) -> dict[str, Callable[..., Awaitable[Any]]]:
        """The host ops of a new runtime, each bound to that runtime's epoch."""
        epoch = self._quiet.new_runtime()
        self._checks.clear()  # a check in flight on the old runtime is lost (the pool asks again)
        ops: dict[str, Callable[..., Awaitable[Any]]] = {
            "next": self._op_next,
            "call": self._op_call,
            "report": self._op_report,
            "log": self._op_log,
            "checked": self._op_checked,
            "idle": self._quiet.op_idle,
            "reports": self._op_reports,
        }
        return {name: functools.partial(op, epoch) for name, op in ops.items()}

    # ---- frames ------------------------------------------------------------------

    def _send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        self._write(_protocol.encode(header, payload))

    def _write(self, frames: bytes) -> None:
        view = memoryview(frames)
        while view:
            view = view[os.write(self._out, view) :]

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16)
        stdin = os.fdopen(0, "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
        self._open()
        while True:
            try:
                prefix = await reader.readexactly(_protocol.PREFIX_SIZE)
                head_len, payload_len = _protocol.decode_prefix(prefix)
                header = _protocol.decode_header(await reader.readexactly(head_len))
                payload = await reader.readexactly(payload_len)
            except asyncio.IncompleteReadError:
                break
            self._quiet.frame()
            if not self._dispatch(header, payload):
                break
        sys.stderr.flush()
        os._exit(0)  # no teardown: the dispatch loop's call never returns, and jsrun can
        # segfault at interpreter exit

    def _dispatch(self, header: dict[str, Any], payload: bytes) -> bool:
        op = header["op"]
        if op in ("run", "check"):
            text = payload.decode()
            if "shared" in header:  # in arrival order, as the host sent them
                text = take_shared(self._shared, header, text)
            self._start(header, text)
        elif op == "reply":
            future = self._replies.pop(header["call"], None)
            if future is not None and not future.done():
                future.set_result([header["kind"], payload.decode()])
        elif op == "cancel":
            self._give_up(header["id"], "cancelled")
        elif op == "exit":
            return False
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the dispatch loop and its host ops ---------------------------------------------

    def _open(self) -> None:
        """Accept runs on the (new) runtime; start the ones that waited for it."""
        self._start_loop()
        self._accepting, self._breaking, self._recycling = True, False, False
        self._send({"op": "ready", "pid": os.getpid()})
        self._start_backlog()

    def _start_loop(self) -> None:
        self._quiet.loop_restarted()
        self._generation += 1
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(None)  # wakes the old loop's poll, which then returns nothing
        self._poll = None
        self._commands = []
        self._loop_task = asyncio.get_running_loop().create_task(self._keep_loop(self._generation))

    def _start_backlog(self) -> None:
        backlog, self._backlog = self._backlog, []
        for header, inputs in backlog:
            self._start(header, inputs)
        if self._alone():
            self._quiet.alone()

    def _alone(self) -> bool:
        """No run or check in flight or waiting, and the runtime is ready."""
        busy = self._runs or self._checks or self._backlog or self._idle_check
        return not busy and self._accepting and not self._recycling and not self._breaking

    def _parkable(self) -> float | None:
        """The earliest run deadline while runs may all be waiting; else None."""
        if not self._runs or self._backlog or self._checks or self._loop_task is None:
            return None
        if not self._accepting or self._recycling or self._breaking:
            return None
        if self._sandbox.closed():
            # The heap limit ended a run without a word, and the dispatch loop went on
            # to answer an idle probe: parked now, the worker would not notice the death
            # (``_sample``) until the pool woke it at the run's deadline.
            return None
        earliest = float("inf")
        for run in self._runs.values():
            if run.ending is not None:
                return None  # its abandon is under way
            earliest = min(earliest, run.deadline.when())
        return earliest

    async def _keep_loop(self, generation: int) -> None:
        try:
            await self._sandbox.serve()
        except Exception as exc:
            if generation != self._generation or self._breaking:
                return
            if self._sandbox.alive():  # an error escaped the loop; its runs live on
                self._start_loop()
                return
            self._runtime_died(exc)

    def _runtime_died(self, exc: BaseException | None = None) -> None:
        reason = "heap" if self._sandbox.heap_exhausted(exc) else "crashed"
        detail = _protocol.clip(str(exc or reason))
        self._break(reason, self._single_culprit(), terminated=True, detail=detail)

    def _push(self, command: list[Any]) -> None:
        self._commands.append(command)
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(None)

    async def _op_next(self, epoch: int) -> list[list[Any]]:
        generation = self._generation
        self._cycled = time.perf_counter()  # the JS ran every command it was given so far
        if not self._commands:
            self._poll = asyncio.get_running_loop().create_future()
            await self._poll
        if generation != self._generation:
            return [["stop"]]  # a loop left over from before a restart ends here
        batch, self._commands = self._commands, []
        return batch

    async def _op_log(self, epoch: int, token: int, level: str, text: str) -> None:
        self._quiet.started(epoch)
        if token in self._runs:
            self._send({"op": "log", "id": token, "level": level, "text": text})

    async def _op_checked(self, epoch: int, token: int, outcome: str) -> None:
        self._quiet.started(epoch)
        code, names = self._checks.pop(token, ("", []))
        heap = self._config.heap_limit
        syntax = locate(json.loads(outcome), code, names, lambda s: syntax_position(s, heap))
        self._send({"op": "result", "id": token, "kind": "checked", "syntax": syntax})
        self._when_idle()

    async def _op_call(self, epoch: int, token: int, name: str, args_json: str) -> list[str]:
        self._quiet.started(epoch)
        try:
            return await self._call(token, name, args_json)
        finally:
            self._quiet.answered(epoch)

    async def _call(self, token: int, name: str, args_json: str) -> list[str]:
        run = self._runs.get(token)
        if run is None or run.ending is not None:
            return ["error", f"host function {name}() called after its run ended"]
        limit, budget = self._config.max_host_calls, self._config.max_host_bytes
        if len(run.calls) >= limit:
            return ["error", f"{name}() refused: {limit} host calls of this run are in flight"]
        size = len(args_json)
        if run.held + size > budget:
            return ["error", f"{name}() refused: arguments in flight would pass {budget} bytes"]
        call = next(self._call_ids)
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        run.calls.add(call)
        run.held += size
        self._replies[call] = future
        try:
            self._send({"op": "call", "id": token, "call": call, "name": name}, args_json.encode())
            return await future
        finally:
            run.calls.discard(call)
            run.held -= size
            self._replies.pop(call, None)

    async def _op_report(
        self,
        epoch: int,
        token: int,
        kind: str,
        payload: str,
        logs: str,
        pending_async: int,
        busy: int,
    ) -> None:
        self._quiet.started(epoch)
        self._pending_async = int(pending_async)
        run = self._runs.pop(token, None)
        if run is None:
            return
        if kind == "abandoned":
            kind, payload = run.ending or "timeout", ""
        self._close_run(run)
        self._write(self._result_frame(run, kind, payload, logs, busy=int(busy)))
        self._after_run()

    async def _op_reports(self, epoch: int, settled: list[list[Any]], pending_async: int) -> None:
        """Successes, [token, result JSON, logs JSON, busy ms] each, reported at once: one write."""
        self._quiet.started(epoch)
        self._pending_async = int(pending_async)
        frames = []
        for token, payload, logs, busy in settled:
            run = self._runs.pop(int(token), None)
            if run is not None:
                self._close_run(run)
                frames.append(self._result_frame(run, "ok", payload, logs, busy=int(busy)))
        self._write(b"".join(frames))
        self._after_run()

    # ---- runs ---------------------------------------------------------------------------

    def _start(self, header: dict[str, Any], inputs: str) -> None:
        if not self._accepting or self._recycling:
            self._backlog.append((header, inputs))  # starts once the runtime is ready
            return
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
        if self._loop_task is None:  # stopped by the idle check
            self._start_loop()
        if header["op"] == "check":  # compiled, never run: not a run of the runtime
            self._checks[header["id"]] = (header["code"], header["names"])
            self._push(["check", header["id"], header["code"], header["names"]])
            return
        loop = asyncio.get_running_loop()
        token = header["id"]
        deadline = loop.call_later(header["timeout"], self._give_up, token, "timeout")
        self._runs[token] = _Run(token, time.perf_counter(), deadline)
        self._sandbox.runs += 1
        stream = bool(header.get("stream_logs"))
        command = ["run", token, header["code"], header["globals"], header["api"], inputs, stream]
        shared = None
        if "shared" in header:
            shared = [header["shared"], header["shared_names"], header["shared_json"]]
        self._push([*command, header.get("lib"), shared])
        if self._sampler is None:
            self._sample()

    def _give_up(self, token: int, reason: str) -> None:
        """Abandon a run in place; if the JS cannot take that, a script holds the thread."""
        run = self._runs.get(token)
        if run is None:
            self._drop_waiting(token, reason)
            return
        if run.ending is not None:
            return
        run.ending = reason
        run.given_up = time.perf_counter()
        self._push(["abandon", token])
        self._quiet.pushed()
        asyncio.get_running_loop().call_later(_PROBE_EVERY, self._probe, token)

    def _drop_waiting(self, token: int, reason: str) -> None:
        """A run still waiting for the runtime (a recycle) never starts: answer at once.

        Ignoring it left the pool waiting for an answer to its cancel, and the worker
        was killed as unresponsive with every run in it.
        """
        for index, (header, _) in enumerate(self._backlog):
            if header["id"] == token and header["op"] == "run":
                del self._backlog[index]
                header = {"op": "result", "id": token, "kind": reason, "logs": [], "detail": ""}
                self._send({**header, "duration": 0.0, "memory": self._peak})
                return

    def _probe(self, token: int) -> None:
        """The run is still not reported: the JS is slow (wait), or held, or dead."""
        run = self._runs.get(token)
        if run is None or self._breaking:
            return
        if self._sandbox.closed():
            self._runtime_died()
        elif time.perf_counter() - max(self._cycled, run.given_up) < _HELD_AFTER:
            asyncio.get_running_loop().call_later(_PROBE_EVERY, self._probe, token)
        else:
            culprits = {t for t, r in self._runs.items() if r.ending is not None}
            self._break("timeout", culprits)

    def _close_run(self, run: _Run) -> None:
        run.deadline.cancel()
        for call in run.calls:
            future = self._replies.pop(call, None)
            if future is not None and not future.done():
                future.set_result(["error", "run ended"])

    def _result_frame(
        self,
        run: _Run,
        kind: str,
        payload: str,
        logs: str,
        reason: str | None = None,
        busy: int | None = None,
    ) -> bytes:
        """The result frame; ``busy``: the run's JS time in ms, when the glue measured it."""
        header: dict[str, Any] = {
            "op": "result",
            "id": run.token,
            "kind": kind,
            "logs": json.loads(logs) if logs != "[]" else [],
            "duration": time.perf_counter() - run.started,
            "memory": self._peak,
        }
        if reason is not None:
            header["reason"] = reason
        if busy is not None:
            header["busy"] = busy
        if kind == "error":
            header["detail"] = json.loads(payload)
        elif kind != "ok":
            header["detail"] = payload
        return _protocol.encode(header, payload.encode() if kind == "ok" else b"")

    def _single_culprit(self) -> set[int]:
        """With one run in flight the breach is its own; with several it is unknown."""
        return set(self._runs) if len(self._runs) == 1 else set()

    # ---- recycling and breaking ------------------------------------------------------------

    def _after_run(self) -> None:
        if self._sandbox.runs >= self._config.max_runs or self._config.isolation == "fresh":
            self._drain()
        elif self._sandbox.memory_left_behind():
            self._drain()  # replaced before it takes another run
        if self._runs or self._recycling or self._breaking:
            return
        self._peak = 0
        if not self._accepting:
            self._recycling = True
            self._spawn(self._recycle(check=False))
        else:
            self._when_idle()

    def _when_idle(self) -> None:
        """No run in flight: check the runtime shortly (then the pool may park the worker)."""
        if self._runs or self._checks or self._idle_check is not None or self._recycling:
            return
        loop = asyncio.get_running_loop()
        self._idle_check = loop.call_later(_IDLE_CHECK, self._check_when_idle)

    def _check_when_idle(self) -> None:
        self._idle_check = None
        if self._alone():
            self._recycling = True
            self._spawn(self._recycle(check=True))

    def _drain(self) -> None:
        """Take no new runs; the runtime is replaced once the runs in flight end."""
        if self._accepting:
            self._accepting = False
            self._send({"op": "draining"})

    async def _recycle(self, *, check: bool) -> None:
        """Stop the dispatch loop; replace the runtime unless ``check`` finds it clean.

        The loop's call returns only once the microtask queue is empty, so a script
        left running after its run ended (a promise flood, an ``await`` loop) shows
        here, and its runtime is replaced.
        """
        self._push(["stop"])
        self._quiet.pushed()
        task, self._loop_task = self._loop_task, None
        assert task is not None
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_GRACE)
            idle = True
        except TimeoutError:
            idle = False
        if check and idle and not self._sandbox.needs_recycle(self._pending_async):
            self._recycling = False
            self._start_backlog()
            return
        self._sandbox.recycle(idle=idle)
        self._open()

    def _break(
        self, reason: str, culprits: set[int], *, terminated: bool = False, detail: str = ""
    ) -> None:
        """The runtime must die: answer every run in it, then terminate and replace it."""
        self._breaking = True
        self._accepting = False
        self._send({"op": "stopping", "reason": reason})
        runs, self._runs = self._runs, {}
        for token, run in runs.items():
            self._close_run(run)
            kind = (run.ending or reason) if token in culprits else "evicted"
            self._write(self._result_frame(run, kind, detail or reason, "[]", reason))
        if reason == "memory":
            os._exit(0)  # memory outside the heap is only given back by ending the process
        if not terminated:
            self._sandbox.terminate()
        self._sandbox.recycle(idle=False)
        self._open()

    def _sample(self) -> None:
        self._sampler = None
        if not self._runs or self._breaking:
            return
        if self._sandbox.closed():  # the heap limit ends the runtime without a word
            self._runtime_died()
            return
        self._sandbox.priority.check(time.monotonic())
        rss = int(os.pread(self._statm, 128, 0).split()[1]) * _PAGE
        self._peak = max(self._peak, rss)
        if rss > self._config.memory_limit:
            self._break("memory", self._single_culprit())
            return
        self._sampler = asyncio.get_running_loop().call_later(_SAMPLE_EVERY, self._sample)
