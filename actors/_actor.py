"""One step actor: wait for every upstream report in the inbox, then fire or skip.

The actor owns a bounded inbox (room for one report per upstream, so senders
never wait) and a send-stream clone for each downstream inbox, which it closes
when done. Reports go downstream only after the step's result is recorded and its
lifecycle event published, so a run's events are in causal order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors._attempt import AttemptFailed, run_attempt
from actors._console import Announcement, AttemptConsole, can_stream_logs
from actors._events import (
    LifecycleEvent,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
)
from actors._journal import RunJournal
from actors._messages import Completed, Failed, Message, Skipped
from actors._results import StepResult
from actors._retry import Retry
from actors._runner import ExecutionLike, LogEntry, StepRunner
from actors._workflow import Step
from actors.errors import StepError

__all__ = ("RunScope", "StepActor")


def _no_task_group(*args: Any) -> None:
    raise RuntimeError("the run has not started its task group")


@dataclass(slots=True)
class RunScope:
    """What every actor of one run shares; ``results`` and ``running`` are the run's state."""

    run_id: str
    workflow: str
    event: Any
    context: Mapping[str, Any]
    api: Mapping[str, Callable[..., Any]]
    runner: StepRunner
    emit: Callable[[LifecycleEvent], Awaitable[None]]
    timeout: float
    retry: Retry
    journal: RunJournal | None = None  # the run's store, if the engine has one
    # publish without waiting, or say False (then ``emit``); the bus's publish_event_nowait
    emit_nowait: Callable[[LifecycleEvent], bool] = field(default=lambda event: False)
    # start a task in the run's task group (set when the run starts its actors)
    spawn: Callable[..., object] = field(default=_no_task_group)
    results: dict[str, StepResult] = field(default_factory=dict)
    # attempt, and when the step's first script started (None: still waiting to start)
    running: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    # console lines of running steps: (earlier attempts', this attempt's so far)
    console: dict[str, tuple[tuple[LogEntry, ...], list[LogEntry]]] = field(default_factory=dict)


class StepActor:
    def __init__(
        self,
        step: Step,
        *,
        scope: RunScope,
        inbox: MemoryObjectReceiveStream[Message],
        outboxes: tuple[MemoryObjectSendStream[Message], ...],
        upstream: tuple[str, ...],
    ) -> None:
        self._step = step
        self._scope = scope
        self._inbox = inbox
        self._outboxes = outboxes
        self._upstream = upstream
        self._began: float | None = None  # when the first attempt's script started

    async def run(self) -> None:
        try:
            reports = await self._collect()
            message = await self._fire_or_skip(reports)
            for outbox in self._outboxes:
                # Each inbox has room for every upstream's report; a closed one belongs
                # to a step that was cancelled (a step ends only after all its reports).
                with suppress(anyio.BrokenResourceError):
                    outbox.send_nowait(message)
        finally:
            for outbox in self._outboxes:
                outbox.close()
            self._inbox.close()

    async def _collect(self) -> dict[str, Message]:
        reports: dict[str, Message] = {}
        while len(reports) < len(self._upstream):
            try:
                message = await self._inbox.receive()
            except anyio.EndOfStream:
                break  # an upstream ended without reporting; the check below says so
            reports[message.step] = message
        return reports

    async def _fire_or_skip(self, reports: dict[str, Message]) -> Message:
        blocked = [
            f"{name!r} {_status_of(reports.get(name))}"
            for name in self._upstream
            if not isinstance(reports.get(name), Completed)
        ]
        if blocked:
            return await self._skip("upstream " + ", ".join(blocked))
        deps = {name: r.result for name, r in reports.items() if isinstance(r, Completed)}
        return await self._execute(deps)

    async def _skip(self, reason: str) -> Message:
        scope, name = self._scope, self._step.name
        scope.results[name] = StepResult(name, "skipped", reason=reason)
        event = StepSkipped(
            run_id=scope.run_id, workflow=scope.workflow, step=name, attempt=0, reason=reason
        )
        return await self._publish(event, Skipped(name, reason))

    async def _execute(self, deps: dict[str, Any]) -> Message:
        scope, step = self._scope, self._step
        retry = step.retry or scope.retry
        logs: list[LogEntry] = []
        journal = scope.journal
        attempt = 0 if journal is None else journal.attempts_before(step.name)
        while True:
            attempt += 1
            if journal is not None and attempt > 1:  # a first attempt is inferred on resume
                await journal.attempt(step.name, attempt)
            scope.running[step.name] = (attempt, self._began)
            streamed: list[LogEntry] = []  # kept for a cancel, which reports no lines
            scope.console[step.name] = (tuple(logs), streamed)
            outcome = await self._attempt(deps, attempt, streamed)
            logs.extend(outcome.logs)
            done = (attempt, tuple(logs), tuple(outcome.logs))
            if not isinstance(outcome, AttemptFailed):
                return await self._complete(outcome.value, *done)
            error = outcome.error
            if not (error.retryable and retry.should_retry(attempt)):
                return await self._fail(error, *done)
            await self._wait_to_retry(error, attempt, retry.delay_after(attempt), outcome.logs)

    async def _attempt(
        self, deps: dict[str, Any], attempt: int, streamed: list[LogEntry]
    ) -> ExecutionLike | AttemptFailed:
        scope, step = self._scope, self._step
        announcement = Announcement(scope.emit, scope.emit_nowait, scope.spawn)
        console = None
        if can_stream_logs(scope.runner):
            console = AttemptConsole(
                scope.emit,
                scope.emit_nowait,
                scope.spawn,
                announcement,
                run_id=scope.run_id,
                workflow=scope.workflow,
                step=step.name,
                attempt=attempt,
                keep=streamed,
            )
        try:
            outcome = await run_attempt(
                scope.runner,
                step=step.name,
                attempt=attempt,
                js=step.js,
                globals=self._globals(deps, attempt),
                api=scope.api,
                step_timeout=step.timeout or scope.timeout,
                announce=partial(self._announce, attempt, announcement),
                on_log=None if console is None else console.on_log,
            )
            await announcement.wait()  # step.started is out before anything after it
            if console is not None:
                await console.aclose()
        except BaseException:  # cancelled, or failed: queued lines get a short while
            if console is not None:
                await console.stop()
            raise
        return outcome

    def _globals(self, deps: dict[str, Any], attempt: int) -> dict[str, Any]:
        scope = self._scope
        run = {"id": scope.run_id, "workflow": scope.workflow, "step": self._step.name}
        ctx = {"event": scope.event, **scope.context, "run": {**run, "attempt": attempt}}
        return {"deps": deps, "ctx": ctx}

    def _announce(
        self, attempt: int, announcement: Announcement, timestamp: float, began: float
    ) -> None:
        """The attempt's script started on a worker at ``timestamp``: say so."""
        scope, name = self._scope, self._step.name
        if self._began is None:
            self._began = began
        scope.running[name] = (attempt, self._began)
        announcement.publish(
            StepStarted(
                run_id=scope.run_id,
                workflow=scope.workflow,
                step=name,
                attempt=attempt,
                timestamp=timestamp,
            )
        )

    async def _wait_to_retry(
        self, error: StepError, attempt: int, delay: float, logs: tuple[LogEntry, ...]
    ) -> None:
        scope = self._scope
        event = StepRetrying(
            run_id=scope.run_id,
            workflow=scope.workflow,
            step=self._step.name,
            attempt=attempt,
            error=error,
            delay=delay,
            logs=logs,
        )
        await scope.emit(event)
        await anyio.sleep(delay)

    async def _complete(self, value: Any, *done: Any) -> Message:
        fields = self._record("completed", *done, result=value)
        return await self._publish(
            StepCompleted(result=value, **fields), Completed(fields["step"], value)
        )

    async def _fail(self, error: StepError, *done: Any) -> Message:
        fields = self._record("failed", *done, error=error)
        return await self._publish(StepFailed(error=error, **fields), Failed(fields["step"], error))

    async def _publish(self, event: LifecycleEvent, message: Message) -> Message:
        """Commit the step's outcome to the run's store (if any), then publish ``event``;
        return what goes downstream. An outcome the store refused becomes a failure."""
        scope = self._scope
        if scope.journal is not None:
            result = scope.results[self._step.name]
            outcome = await scope.journal.step(result)
            if outcome is not result and outcome.error is not None:  # not recorded
                scope.results[outcome.name] = outcome
                event = StepFailed(
                    run_id=scope.run_id,
                    workflow=scope.workflow,
                    step=outcome.name,
                    attempt=event.attempt,
                    error=outcome.error,
                    duration=outcome.duration,
                )
                message = Failed(outcome.name, outcome.error)
        await scope.emit(event)
        return message

    def _record(
        self,
        status: Literal["completed", "failed"],
        attempt: int,
        logs: tuple[LogEntry, ...],
        attempt_logs: tuple[LogEntry, ...],
        **outcome: Any,
    ) -> dict[str, Any]:
        """Record the step's final result (with every attempt's console lines); return
        the fields of its lifecycle event (with the last attempt's lines).

        The duration counts from the first attempt's start on a worker (0 if no
        attempt started): waiting for capacity is not part of it.
        """
        scope, name = self._scope, self._step.name
        duration = 0.0 if self._began is None else time.monotonic() - self._began
        scope.results[name] = StepResult(
            name, status, attempts=attempt, duration=duration, logs=logs, **outcome
        )
        del scope.running[name]
        scope.console.pop(name, None)
        return {
            "run_id": scope.run_id,
            "workflow": scope.workflow,
            "step": name,
            "attempt": attempt,
            "duration": duration,
            "logs": attempt_logs,
        }


def _status_of(report: Message | None) -> str:
    if isinstance(report, Failed):
        return "failed"
    if isinstance(report, Skipped):
        return "was skipped"
    if report is None:
        return "ended without a result"
    return "completed"
