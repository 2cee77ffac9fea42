"""One attempt of one step: call the runner, translate its errors into step errors.

This is the one boundary that sees :mod:`runtime_pool.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from actors._runner import ExecutionLike, LogEntry, StepRunner
from actors.errors import SandboxFailed, ScriptFailed, StepError, StepTimedOut
from runtime_pool import errors as pool_errors

__all__ = ("AttemptFailed", "run_attempt")

logger = structlog.get_logger(__name__)

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
) -> ExecutionLike | AttemptFailed:
    """Run the step's JS once; a failure is returned, never raised (cancellation is)."""
    try:
        with anyio.fail_after(step_timeout + BACKSTOP_GRACE):
            return await runner.execute(js, globals=globals, api=api, timeout=step_timeout)
    except TimeoutError as exc:
        error = StepTimedOut(step, step_timeout, attempt=attempt, cause=exc)
        return AttemptFailed(error, ())
    except Exception as exc:
        logs = tuple(getattr(exc, "logs", ()) or ())
        return AttemptFailed(translate_error(exc, step=step, attempt=attempt), logs)


def translate_error(exc: Exception, *, step: str, attempt: int) -> StepError:
    """Map a runner exception to the step error reported for it."""
    if isinstance(exc, pool_errors.ScriptError):
        return ScriptFailed(
            step, exc.name, exc.message, attempt=attempt, stack=exc.stack, cause=exc
        )
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
