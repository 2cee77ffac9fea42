"""One attempt of one step: call the runner, translate its errors into step errors.

This is the one boundary that sees :mod:`runtime_pool.errors`.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from actors._log import get_logger
from actors._runner import ExecutionLike, LogEntry, StepRunner
from actors._stack import script_failed
from actors._values import first_non_json
from actors.errors import SandboxFailed, StepError, StepTimedOut
from runtime_pool import errors as pool_errors

__all__ = ("AttemptFailed", "run_attempt")

logger = get_logger(__name__)

# Past the runner's own deadline, the engine gives it this long before giving up.
BACKSTOP_GRACE = 5.0

_RETRYABLE_SANDBOX = (
    pool_errors.HeapLimitExceeded,
    pool_errors.MemoryLimitExceeded,
    pool_errors.SandboxCrashed,
)


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """A failed attempt: the step error and the console lines written before it."""

    error: StepError
    logs: tuple[LogEntry, ...]


async def run_attempt(
    runner: StepRunner,
    *,
    step: str,
    attempt: int,
    js: str,
    globals: Mapping[str, Any],
    api: Mapping[str, Callable[..., Any]],
    step_timeout: float,
    announce: Callable[[float, float], object],
    on_log: Callable[[Any], None] | None = None,
    lib: str | None = None,
    on_host_call: Callable[[Any], None] | None = None,
    shared: Any = None,
) -> ExecutionLike | AttemptFailed:
    """Run the step's JS once; a failure is returned, never raised (cancellation is).

    ``announce(timestamp, monotonic)`` is called (synchronously) once the script has
    started on a worker. Waiting for capacity is not part of ``step_timeout``: the
    backstop counts from the start. ``on_log`` is passed to a runner that streams
    console lines (see ``_console``); ``lib`` (the workflow's shared script),
    ``on_host_call`` and ``shared`` only when given.
    """
    start = _Start(step_timeout, announce)
    options: dict[str, Any] = {} if on_log is None else {"on_log": on_log}
    if lib is not None:
        options["lib"] = lib
    if on_host_call is not None:
        options["on_host_call"] = on_host_call
    if shared is not None:
        options["shared"] = shared
    if _takes_on_start(type(runner)):
        options["on_start"] = start.started
    else:
        start.started()  # a runner without on_start: its start is unknown, say now
    try:
        with start.backstop:
            return await runner.execute(
                js, globals=globals, api=api, timeout=step_timeout, **options
            )
    except Exception as exc:
        logs = tuple(getattr(exc, "logs", ()) or ())
        failure = translate_error(exc, step=step, attempt=attempt, js=js, api=api)
        if isinstance(exc, pool_errors.InvalidValue):
            failure = name_the_value(failure, globals)
        return AttemptFailed(failure, logs)
    finally:
        start.ended = True
    # only the backstop gets here: the runner overran its own deadline
    return AttemptFailed(StepTimedOut(step, start.timeout, attempt=attempt), ())


class _Start:
    """When the script started: arms the backstop and announces the start."""

    def __init__(self, timeout: float, announce: Callable[[float, float], object]) -> None:
        self.timeout = timeout
        self.backstop = anyio.CancelScope()
        self.ended = False  # an attempt that ended announces no late start
        self._announce = announce
        self._started = False

    def started(self) -> None:
        if not self._started and not self.ended:
            self._started = True
            self.backstop.deadline = anyio.current_time() + self.timeout + BACKSTOP_GRACE
            self._announce(time.time(), time.monotonic())


@functools.cache
def _takes_on_start(runner_type: type) -> bool:
    execute = getattr(runner_type, "execute", None)
    try:
        parameters = inspect.signature(execute).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    return any(p.name == "on_start" or p.kind is p.VAR_KEYWORD for p in parameters)


def name_the_value(error: StepError, globals: Mapping[str, Any]) -> StepError:
    """Say which input the sandbox refused (``ctx.event.when: a datetime is not ...``)."""
    for name, value in globals.items():
        found = first_non_json(value, name)
        if found is not None:
            path, reason = found
            message = f"{path}: {reason} (the sandbox takes JSON-like data only)"
            return SandboxFailed(
                error.step,
                error.name,
                message,
                attempt=error.attempt,
                retryable=False,
                cause=error.cause,
            )
    return error


def translate_error(
    exc: Exception,
    *,
    step: str,
    attempt: int,
    js: str = "",
    api: Mapping[str, object] | None = None,
) -> StepError:
    """Map a runner exception to the step error reported for it."""
    if isinstance(exc, pool_errors.ScriptError):
        return script_failed(exc, step=step, attempt=attempt, js=js, host_functions=api or {})
    if isinstance(exc, pool_errors.ScriptTimeout):
        return StepTimedOut(step, exc.timeout, attempt=attempt, cause=exc)
    name = type(exc).__name__
    if isinstance(exc, _RETRYABLE_SANDBOX):
        return SandboxFailed(step, name, str(exc), attempt=attempt, retryable=True, cause=exc)
    if isinstance(exc, pool_errors.RuntimePoolError):
        # invalid values are deterministic; a closed pool will not come back
        return SandboxFailed(step, name, str(exc), attempt=attempt, retryable=False, cause=exc)
    logger.warning("step_runner_raised", step=step, attempt=attempt, exc_info=exc)
    return StepError(step, name, str(exc), attempt=attempt, retryable=False, cause=exc)
