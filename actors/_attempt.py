"""One attempt of one step: call the runner, translate its errors into step errors.

This is the one boundary that sees :mod:`runtime_pool.errors`.
"""

from __future__ import annotations

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
    on_log: Callable[[Any], None] | None = None,
) -> ExecutionLike | AttemptFailed:
    """Run the step's JS once; a failure is returned, never raised (cancellation is).

    ``on_log`` is passed to a runner that streams console lines (see ``_console``).
    """
    streaming: dict[str, Any] = {} if on_log is None else {"on_log": on_log}
    try:
        with anyio.fail_after(step_timeout + BACKSTOP_GRACE):
            return await runner.execute(
                js, globals=globals, api=api, timeout=step_timeout, **streaming
            )
    except TimeoutError as exc:
        error = StepTimedOut(step, step_timeout, attempt=attempt, cause=exc)
        return AttemptFailed(error, ())
    except Exception as exc:
        logs = tuple(getattr(exc, "logs", ()) or ())
        failure = translate_error(exc, step=step, attempt=attempt, js=js, api=api)
        if isinstance(exc, pool_errors.InvalidValue):
            failure = name_the_value(failure, globals)
        return AttemptFailed(failure, logs)


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
