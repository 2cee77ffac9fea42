"""What one run tells its store: attempts started, each step's outcome, its end.

A run on an engine without a store has no journal (``RunScope.journal is None``)
and pays nothing. A store that fails a write does not stop the engine: a step
whose outcome could not be recorded (3 tries) fails with a ``StoreError`` step
error (so its run fails with it); a failed attempt marker or run end is logged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from actors._log import get_logger
from actors._results import RunResult, StepResult
from actors._store import RunStore, StepRecord
from actors._store_codec import step_record
from actors.errors import RunLost, StepError, StoreError

__all__ = ("RunJournal",)

logger = get_logger(__name__)

_TRIES = 3  # writes of a step outcome or a run end, on store errors


class RunJournal:
    """Records run ``run_id`` in ``store``. ``attempts``: attempts started per step
    before this process took the run over (a resume continues counting from there)."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        attempts: Mapping[str, int] | None = None,
        waiting: Mapping[str, Any] | None = None,
    ) -> None:
        """``waiting``: the registrations of steps that were waiting (``wait_started``)."""
        self.store = store
        self.run_id = run_id
        self._attempts = attempts or {}
        self._waiting = dict(waiting or {})
        self._recorded: set[str] = set()

    def attempts_before(self, step: str) -> int:
        return self._attempts.get(step, 0)

    def recorded(self, steps: Mapping[str, StepResult]) -> None:
        """These outcomes are in the store already (a resumed or retried run)."""
        self._recorded.update(steps)

    async def held(self, step: str, attempt: int) -> StepError | None:
        """Before an attempt: ``None`` while this engine may run the step (always, but
        on a shared store whose lease on the run lapsed), else the error to fail with."""
        confirm = getattr(self.store, "confirm_held", None)
        if confirm is None:
            return None
        try:
            await confirm(self.run_id)
        except StoreError as exc:
            logger.warning("step_not_started", run_id=self.run_id, step=step, error=str(exc))
            return StepError(step, "StoreError", str(exc), attempt=attempt, retryable=False)
        return None

    async def attempt(self, step: str, attempt: int) -> None:
        try:
            await self.store.record_attempt(self.run_id, step, attempt)
        except StoreError as exc:
            logger.warning(
                "store_attempt_not_recorded", run_id=self.run_id, step=step, error=str(exc)
            )

    def waiting(self, step: str) -> Any:
        """The registration ``step`` recorded when it began waiting (a resumed run), or
        ``None``."""
        return self._waiting.pop(step, None)

    async def wait_started(self, step: str, registration: Mapping[str, Any]) -> None:
        """``step`` waits: record its ``registration`` (plain data: wake time, topic...)
        as a ``"waiting"`` step record, so a resume waits for what is left."""
        now = time.time()
        record = StepRecord(self.run_id, step, "waiting", 1, dict(registration), updated_at=now)
        try:
            await self.store.record_step(record)
        except StoreError as exc:
            logger.warning("store_wait_not_recorded", run_id=self.run_id, step=step, error=str(exc))

    async def step(self, result: StepResult) -> StepResult:
        """Commit ``result``; return it, or the failure that replaces it when the store
        could not record it."""
        try:
            await _again_on_error(self.store.record_step, step_record(self.run_id, result))
        except StoreError as exc:
            logger.error(
                "store_step_not_recorded", run_id=self.run_id, step=result.name, error=str(exc)
            )
            error = StepError(
                result.name,
                "StoreError",
                str(exc),
                attempt=result.attempts,
                retryable=False,
                cause=exc,
            )
            return dataclasses.replace(result, status="failed", result=None, error=error)
        self._recorded.add(result.name)
        return result

    async def finish(self, result: RunResult) -> None:
        """The run ended: record its status, output and the steps not recorded yet."""
        rest = [
            step_record(self.run_id, step)
            for name, step in result.steps.items()
            if name not in self._recorded
        ]
        try:
            await _again_on_error(
                self.store.finish_run,
                self.run_id,
                status=result.status,
                output=result.output,
                steps=rest,
            )
        except StoreError as exc:
            logger.error("store_run_end_not_recorded", run_id=self.run_id, error=str(exc))


async def _again_on_error(write: Callable[..., Awaitable[None]], *args: Any, **kw: Any) -> None:
    """``write`` (an idempotent store write), tried up to 3 times on a store error
    (a dropped connection), but never again once the run was lost."""
    for attempt in range(1, _TRIES + 1):
        try:
            return await write(*args, **kw)
        except RunLost:
            raise
        except StoreError:
            if attempt == _TRIES:
                raise
            await anyio.sleep(0.2 * attempt)
