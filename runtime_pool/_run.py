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
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream

from . import _protocol, errors
from ._results import Execution, LogLine
from ._slot import Frame, Slot
from ._threads import HostThreads

__all__ = ("Limits", "RunRequest", "WorkerGone", "drive_run", "prepare_run")

logger = structlog.get_logger(__name__)

_BACKSTOP_GRACE = 0.4  # the worker stops its own script at the deadline; this is the kill margin
_CANCEL_GRACE = 0.5
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_RESERVED = frozenset(
    "arguments await break case catch class const continue debugger default delete do else enum "
    "eval export extends false finally for function if implements import in instanceof interface "
    "let new null package private protected public return static super switch this throw true "
    "try typeof var void while with yield undefined globalThis".split()
)


class WorkerGone(Exception):
    """The worker was dead before it received the run: the run can go elsewhere."""


@dataclass(frozen=True, slots=True)
class Limits:
    heap_limit: int
    memory_limit: int
    max_value_bytes: int
    host_threads: HostThreads = field(default_factory=HostThreads, compare=False)


@dataclass(frozen=True, slots=True)
class RunRequest:
    code: str
    global_names: tuple[str, ...]
    api: Mapping[str, Callable[..., Any]]
    inputs: bytes
    timeout: float


def prepare_run(
    code: str,
    globals: Mapping[str, Any],
    api: Mapping[str, Callable[..., Any]],
    *,
    timeout: float,
    max_value_bytes: int,
) -> RunRequest:
    """Check and encode a run's inputs; raise before any worker is involved."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    try:
        code.encode()
    except UnicodeEncodeError:
        raise errors.InvalidValue("code holds a lone surrogate; write it as a \\u escape") from None
    for name in (*globals, *api):
        _check_name(name)
    if both := set(globals) & set(api):
        raise ValueError(f"names given both as globals and api: {sorted(both)}")
    for name, fn in api.items():
        if not callable(fn):
            raise TypeError(f"api[{name!r}] is not callable")
    inputs = encode_value(dict(globals), "globals", max_value_bytes)
    return RunRequest(code, tuple(globals), dict(api), inputs, timeout)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or name in _RESERVED:
        raise ValueError(f"{name!r} cannot be a JS global name")


def encode_value(value: Any, what: str, max_value_bytes: int) -> bytes:
    """Return ``value`` as JSON bytes, or raise InvalidValue / ValueTooLarge."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
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


async def drive_run(
    slot: Slot,
    token: int,
    request: RunRequest,
    limits: Limits,
    on_start: Callable[[], object] | None = None,
) -> Execution:
    """Send the run to the slot's worker, serve its host calls, and return its outcome."""
    run, inbox = slot.begin_run(token)
    header = {
        "op": "run",
        "id": token,
        "code": request.code,
        "globals": list(request.global_names),
        "api": list(request.api),
        "timeout": request.timeout,
    }
    started = time.perf_counter()
    result: Frame | None = None
    try:
        with anyio.move_on_after(request.timeout + _BACKSTOP_GRACE):
            try:
                await slot.process.send(header, request.inputs)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                slot.dead = True
                raise WorkerGone from None
            if on_start is not None:
                on_start()
            if request.api:
                result = await _serve_host_calls(slot, token, inbox, request.api, limits)
            else:  # no host functions, so the only frame to come is the result
                result = await _next_frame(inbox)
            if result is None and run.error is None and not slot.dead:
                await anyio.sleep_forever()  # only the backstop ends this wait
    except WorkerGone:
        raise
    except BaseException:
        if result is None and not slot.dead:
            await _abandon(slot, token, inbox)
        raise
    finally:
        slot.end_run(token)
        inbox.close()
    if result is None:
        if slot.stopping is not None:  # the worker died while stopping the script
            raise _error(slot.stopping, {}, request, limits)
        if run.error is not None:
            raise run.error
        logger.warning("worker_unresponsive", pid=slot.process.pid, timeout=request.timeout)
        slot.process.kill()
        raise errors.ScriptTimeout(request.timeout)
    return _outcome(result, time.perf_counter() - started, request, limits)


async def _serve_host_calls(
    slot: Slot,
    token: int,
    inbox: MemoryObjectReceiveStream[Frame],
    api: Mapping[str, Callable[..., Any]],
    limits: Limits,
) -> Frame | None:
    """Run each host call the script makes until its result arrives; then cancel the rest."""
    async with anyio.create_task_group() as calls:
        async for frame in inbox:
            if frame[0]["op"] != "call":
                calls.cancel_scope.cancel()
                return frame
            calls.start_soon(_host_call, slot, token, frame, api, limits)
    return None


async def _next_frame(inbox: MemoryObjectReceiveStream[Frame]) -> Frame | None:
    try:
        return await inbox.receive()
    except anyio.EndOfStream:
        return None


async def _abandon(slot: Slot, token: int, inbox: MemoryObjectReceiveStream[Frame]) -> None:
    """Stop a run whose caller went away; kill the worker if it does not answer in time."""
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(_CANCEL_GRACE):
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await slot.process.send({"op": "cancel", "id": token})
            with suppress(anyio.ClosedResourceError):
                async for header, _ in inbox:
                    if header["op"] == "result":
                        return
            return
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


async def _host_call(
    slot: Slot, token: int, frame: Frame, api: Mapping[str, Callable[..., Any]], limits: Limits
) -> None:
    header, payload = frame
    name = header["name"]
    try:
        value = await _call(api[name], json.loads(payload), limits.host_threads)
        body = encode_value(value, f"the value returned by {name}()", limits.max_value_bytes)
        kind = "ok"
    except Exception as exc:
        kind, body = "error", _protocol.clip(str(exc) or f"{name}() failed").encode()
        logger.info("host_call_failed", function=name, error=_protocol.clip(repr(exc)))
    reply = {"op": "reply", "id": token, "call": header["call"], "kind": kind}
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await slot.process.send(reply, body)


async def _call(fn: Callable[..., Any], args: list[Any], threads: HostThreads) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    ):
        return await fn(*args)
    result = await threads.run(functools.partial(fn, *args))
    if inspect.isawaitable(result):
        result = await result
    return result
