"""One run, from the caller's side: check the inputs, drive the worker, map the outcome."""

from __future__ import annotations

import functools
import inspect
import json
import re
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import _protocol, errors
from ._inbox import Frame, RunInbox
from ._log import get_logger
from ._results import Execution, HostCall, LogLine
from ._shared import Shared, sent_keys
from ._slot import ActiveRun, Slot
from ._threads import HostThreads

__all__ = (
    "Evicted",
    "Limits",
    "RunRequest",
    "WorkerGone",
    "check_code",
    "check_name",
    "drive_run",
    "prepare_run",
)

logger = get_logger(__name__)

# The worker stops its own script at the deadline; past it by this margin the pool kills
# the worker, and every run it holds. A loaded 2-core VM needed more than 0.4 s (the
# chaos suite saw co-resident runs lost at 0.4-0.5 s, none at 2 s).
_BACKSTOP_GRACE = 2.0
_CANCEL_GRACE = 2.0
_HELD = frozenset({"timeout", "heap", "memory"})  # outcomes of a script that held its runtime
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_RESERVED = frozenset(
    "arguments await break case catch class const continue debugger default delete do else enum "
    "eval export extends false finally for function if implements import in instanceof interface "
    "let new null package private protected public return static super switch this throw true "
    "try typeof var void while with yield undefined globalThis".split()
)


# as json.dumps(value, allow_nan=False, separators=(",", ":")), without making an encoder a call
_VALUE = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


class WorkerGone(Exception):
    """The worker was dead before it received the run: the run can go elsewhere."""


@dataclass(frozen=True, slots=True)
class Limits:
    heap_limit: int
    memory_limit: int
    max_value_bytes: int
    max_host_calls: int
    max_host_bytes: int
    host_threads: HostThreads = field(default_factory=HostThreads, compare=False)


@dataclass(frozen=True, slots=True)
class RunRequest:
    code: str
    global_names: tuple[str, ...]
    api: Mapping[str, Callable[..., Any]]
    inputs: bytes
    timeout: float
    lib: str | None = None
    on_host_call: Callable[[HostCall], object] | None = None
    shared: Shared | None = None


def prepare_run(
    code: str,
    globals: Mapping[str, Any],
    api: Mapping[str, Callable[..., Any]],
    *,
    timeout: float,
    max_value_bytes: int,
    lib: str | None = None,
    on_host_call: Callable[[HostCall], object] | None = None,
    shared: Shared | None = None,
) -> RunRequest:
    """Check and encode a run's inputs; raise before any worker is involved."""
    names = (code, lib, tuple(globals), tuple(api))
    if _cacheable(code, lib):  # a step's script runs many times with the same names
        _check_script_cached(*names)
    else:
        _check_script(*names)
    for name, fn in api.items():
        if not callable(fn):
            raise TypeError(f"api[{name!r}] is not callable")
    inputs = encode_value(dict(globals), "globals", max_value_bytes)
    if shared is not None:
        if not isinstance(shared, Shared):
            raise TypeError("shared must come from RuntimePool.share()")
        if both := set(shared.names) & set(api):
            raise ValueError(f"names given both as shared globals and api: {sorted(both)}")
    return RunRequest(code, tuple(globals), dict(api), inputs, timeout, lib, on_host_call, shared)


def _check_script(
    code: str, lib: str | None, global_names: tuple[str, ...], api_names: tuple[str, ...]
) -> None:
    """Raise unless the script, its shared script and its names can go to a worker."""
    check_code(code)
    if lib is not None:
        check_code(lib)
        if "lib" in global_names or "lib" in api_names:
            raise ValueError("'lib' is given both as the shared script and as a global or api")
    for name in (*global_names, *api_names):
        check_name(name)
    if both := set(global_names) & set(api_names):
        raise ValueError(f"names given both as globals and api: {sorted(both)}")


# Only checks that passed are kept (an exception is not cached); small scripts only,
# so the cache holds at most a few MiB.
_check_script_cached = functools.lru_cache(maxsize=256)(_check_script)
_CACHED_CHARS = 16 * 1024


def _cacheable(code: object, lib: object) -> bool:
    return (
        isinstance(code, str)
        and isinstance(lib, str | None)
        and len(code) + len(lib or "") <= _CACHED_CHARS
    )


def check_code(code: object) -> None:
    """Raise unless ``code`` is a str that can cross to the worker."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    try:
        code.encode()
    except UnicodeEncodeError:
        raise errors.InvalidValue("code holds a lone surrogate; write it as a \\u escape") from None


def check_name(name: object) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or name in _RESERVED:
        raise ValueError(f"{name!r} cannot be a JS global name")


def encode_value(value: Any, what: str, max_value_bytes: int) -> bytes:
    """Return ``value`` as JSON bytes, or raise InvalidValue / ValueTooLarge."""
    try:
        text = _VALUE.encode(value)
    except RecursionError:
        raise errors.ValueTooLarge(f"{what} is nested too deeply") from None
    except ValueError as exc:
        if "Circular" in str(exc):
            raise errors.ValueTooLarge(f"{what} is cyclic") from None
        raise errors.InvalidValue(f"{what} is not JSON-like data: {exc}") from None
    except TypeError as exc:
        raise errors.InvalidValue(f"{what} is not JSON-like data: {exc}") from None
    data = text.encode()
    if len(data) > max_value_bytes:
        raise errors.ValueTooLarge(
            f"{what} is {len(data)} bytes, over the {max_value_bytes} byte cap",
            limit=max_value_bytes,
        )
    return data


class Evicted(Exception):
    """Another script broke a limit in the run's worker, which stopped with this run in it."""

    def __init__(self, reason: str, called: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.called = called


async def drive_run(
    slot: Slot,
    run: ActiveRun,
    inbox: RunInbox,
    request: RunRequest,
    limits: Limits,
    on_start: Callable[[], object] | None = None,
    on_log: Callable[[LogLine], object] | None = None,
) -> Execution:
    """Send the run to the slot's worker, serve its host calls, and return its outcome."""
    header = {
        "op": "run",
        "id": run.token,
        "code": request.code,
        "globals": list(request.global_names),
        "api": list(request.api),
        "timeout": request.timeout,
        "stream_logs": on_log is not None,
    }
    if request.lib is not None:
        header["lib"] = request.lib
    payload = request.inputs
    if request.shared is not None:
        shared = request.shared
        header["shared"], header["shared_names"] = shared.key, list(shared.names)
        if sent_keys(slot).touch(shared.key):  # not held there yet: send it first
            header["shared_len"] = len(shared.data)
            payload = shared.data + payload
    started = time.perf_counter()
    result: Frame | None = None
    sent = False
    try:
        with anyio.move_on_after(request.timeout + _BACKSTOP_GRACE):
            try:
                await slot.process.send(header, payload)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                slot.dead = True
                raise WorkerGone from None
            sent = True
            if on_start is not None:
                on_start()
            if request.api or on_log is not None:
                result = await _serve_frames(slot, run, inbox, request, limits, on_log)
            else:  # no host functions, so the only frame to come is the result
                result = await _next_frame(inbox)
            if result is None and run.error is None and run.evicted is None and not slot.dead:
                await anyio.sleep_forever()  # only the backstop ends this wait
    except WorkerGone:
        raise
    except BaseException:
        # A run cancelled before its frame went out is unknown to the worker, which
        # would never answer its cancel (the worker was killed as unresponsive).
        if sent and result is None and not slot.dead:
            await _abandon(slot, run.token, inbox, on_log)
        raise
    finally:
        inbox.close()
    if result is None:
        if run.evicted is not None:
            raise Evicted(run.evicted, run.called)
        if run.error is not None:
            raise run.error
        logger.warning("worker_unresponsive", pid=slot.process.pid, timeout=request.timeout)
        slot.killed_for = "unresponsive"
        slot.process.kill()
        raise errors.ScriptTimeout(request.timeout)
    kind = result[0]["kind"]
    if kind == "evicted":
        raise Evicted(result[0].get("reason", "crashed"), run.called)
    run.busy = result[0].get("busy")
    if run.busy is None and kind in _HELD:  # the runtime was stopped under it: count it all
        run.busy = result[0].get("duration", request.timeout) * 1000
    return _outcome(result, time.perf_counter() - started, request, limits)


async def _serve_frames(
    slot: Slot,
    run: ActiveRun,
    inbox: RunInbox,
    request: RunRequest,
    limits: Limits,
    on_log: Callable[[LogLine], object] | None,
) -> Frame | None:
    """Pass on the run's log lines and serve its host calls until its result arrives.

    The task group that serves host calls is opened only at the first call.
    """
    while True:
        frame = await _next_frame(inbox)
        if frame is None or frame[0]["op"] == "result":
            return frame
        if frame[0]["op"] == "call":
            calls = _HostCalls(slot, run.token, request.api, limits, request.on_host_call)
            return await _serve_calls(frame, calls, inbox, on_log)
        _pass_log(frame, on_log)


async def _serve_calls(
    first: Frame,
    calls: _HostCalls,
    inbox: RunInbox,
    on_log: Callable[[LogLine], object] | None,
) -> Frame | None:
    async with anyio.create_task_group() as tg:
        calls.start(tg, first)
        async for frame in inbox:
            op = frame[0]["op"]
            if op == "call":
                calls.start(tg, frame)
            elif op == "log":
                _pass_log(frame, on_log)
            else:
                if calls.tasks:  # the result: host calls still running are cancelled
                    tg.cancel_scope.cancel()
                return frame
        tg.cancel_scope.cancel()  # the worker ended: no one is left to answer
    return None


def _pass_log(frame: Frame, on_log: Callable[[LogLine], object] | None) -> None:
    if on_log is not None:
        on_log(LogLine(frame[0]["level"], frame[0]["text"]))


async def _next_frame(inbox: RunInbox) -> Frame | None:
    try:
        return await inbox.receive()
    except anyio.EndOfStream:
        return None


async def _abandon(
    slot: Slot,
    token: int,
    inbox: RunInbox,
    on_log: Callable[[LogLine], object] | None,
) -> None:
    """Stop a run whose caller went away; kill the worker if it does not answer in time.

    Console lines written before the stop still go to ``on_log``.
    """
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(_CANCEL_GRACE):
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await slot.process.send({"op": "cancel", "id": token})
            with suppress(anyio.ClosedResourceError):
                async for header, _ in inbox:
                    if header["op"] == "result":
                        return
                    if header["op"] == "log" and on_log is not None:
                        on_log(LogLine(header["level"], header["text"]))
            return
        slot.killed_for = "unresponsive"
        slot.process.kill()


def _outcome(frame: Frame, duration: float, request: RunRequest, limits: Limits) -> Execution:
    header, payload = frame
    logs = tuple(LogLine(level, text) for level, text in header["logs"])
    kind = header["kind"]
    if kind == "ok":
        if len(payload) > limits.max_value_bytes:
            error: errors.RuntimePoolError = errors.ValueTooLarge(
                f"result is {len(payload)} bytes, over the {limits.max_value_bytes} byte cap",
                limit=limits.max_value_bytes,
            )
        else:
            return Execution(json.loads(payload), logs, duration)
    else:
        error = _error(kind, header, request, limits)
    error.logs = logs
    raise error


def _error(
    kind: str, header: dict[str, Any], request: RunRequest, limits: Limits
) -> errors.RuntimePoolError:
    detail: Any = header.get("detail")
    clip = _protocol.clip
    if kind == "error":
        stack = detail["stack"] and clip(detail["stack"], _protocol.MAX_STACK)
        return errors.ScriptError(clip(detail["name"], 200), clip(detail["message"]), stack or None)
    if kind == "too_large":
        return errors.ValueTooLarge(clip(str(detail)), limit=limits.max_value_bytes)
    if kind == "timeout":
        error: errors.RuntimePoolError = errors.ScriptTimeout(request.timeout)
    elif kind == "heap":
        error = errors.HeapLimitExceeded(limits.heap_limit)
    elif kind == "memory":
        error = errors.MemoryLimitExceeded(limits.memory_limit, header.get("memory"))
    else:
        return errors.SandboxCrashed(f"the runtime failed: {clip(str(detail))}")
    logger.warning("limit_exceeded", kind=kind, error=str(error))
    return error


class _HostCalls:
    """The host calls of one run: capped in number and argument bytes while in flight."""

    def __init__(
        self,
        slot: Slot,
        token: int,
        api: Mapping[str, Callable[..., Any]],
        limits: Limits,
        on_call: Callable[[HostCall], object] | None = None,
    ) -> None:
        self._slot, self._token, self._api, self._limits = slot, token, api, limits
        self._on_call = on_call
        self._in_flight = 0
        self._held = 0
        self.tasks = 0  # calls and refusals not yet replied to

    def start(self, tg: TaskGroup, frame: Frame) -> None:
        header, payload = frame
        limits = self._limits
        if self._in_flight >= limits.max_host_calls:
            refusal = f"{limits.max_host_calls} host calls of this run are in flight"
        elif self._held + len(payload) > limits.max_host_bytes:
            refusal = f"host-call arguments in flight would pass {limits.max_host_bytes} bytes"
        else:
            self._in_flight += 1
            self._held += len(payload)
            self.tasks += 1
            tg.start_soon(self._serve, header, payload)
            return
        self.tasks += 1
        tg.start_soon(self._refuse, header, f"{header['name']}() refused: {refusal}")

    async def _refuse(self, header: dict[str, Any], refusal: str) -> None:
        try:
            await self._reply(header, "error", refusal)
        finally:
            self.tasks -= 1

    async def _serve(self, header: dict[str, Any], payload: bytes) -> None:
        """Call the function and send its reply; the call counts as in flight until
        its reply is written, so replies waiting to be sent are capped with the calls."""
        name = header["name"]
        try:
            arguments = json.loads(payload)
            began, failure = time.perf_counter(), None
            try:
                value = await _call(self._api[name], arguments, self._limits.host_threads)
                kind = "ok"
            except Exception as exc:
                kind, value = "error", _protocol.clip(str(exc) or f"{name}() failed")
                failure = type(exc).__name__
                logger.info("host_call_failed", function=name, error=_protocol.clip(repr(exc)))
            except BaseException as exc:  # cancelled: the call happened all the same
                failure = type(exc).__name__
                raise
            finally:
                if self._on_call is not None:
                    took = time.perf_counter() - began
                    self._on_call(HostCall(name, arguments, took, failure))
            await self._reply(header, kind, value)
        finally:
            self._in_flight -= 1
            self._held -= len(payload)
            self.tasks -= 1

    async def _reply(self, header: dict[str, Any], kind: str, value: Any) -> None:
        what = f"the value returned by {header['name']}()"

        def build() -> tuple[dict[str, Any], bytes]:
            reply = {"op": "reply", "id": self._token, "call": header["call"], "kind": kind}
            if kind == "ok":
                try:
                    return reply, encode_value(value, what, self._limits.max_value_bytes)
                except errors.RuntimePoolError as exc:
                    value_error = str(exc)
                    return {**reply, "kind": "error"}, value_error.encode(errors="replace")
            return reply, str(value).encode(errors="replace")

        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._slot.process.send_built(build)


async def _call(fn: Callable[..., Any], args: list[Any], threads: HostThreads) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    ):
        return await fn(*args)
    result = await threads.run(functools.partial(fn, *args))
    if inspect.isawaitable(result):
        result = await result
    return result
