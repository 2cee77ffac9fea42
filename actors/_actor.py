"""One step actor: given every upstream report (its inbox), fire or skip.

The run collects each step's reports (``_run``) and starts the actor once they
are all in; the actor returns the report it sends downstream. Reports go
downstream only after the step's result is recorded and its lifecycle event
published, so a run's events are in causal order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import anyio

from actors._attempt import AttemptFailed, run_attempt
from actors._audit import can_audit, host_call_events, step_api
from actors._console import Announcement, AttemptConsole, can_stream_logs
from actors._events import (
    LifecycleEvent,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
)
from actors._fanout import FanOut
from actors._journal import RunJournal
from actors._messages import Completed, Failed, Message, Skipped
from actors._results import StepResult
from actors._retry import Retry
from actors._rules import (
    CONDITION_FALSE,
    DEFAULT_RUN_IF,
    condition_js,
    rule_blocks,
    upstream_view,
)
from actors._runner import ExecutionLike, LogEntry, StepRunner
from actors._subflow import ChildRuns, Launcher, SubflowStep
from actors._wait_step import WaitStep
from actors._waiters import Waits
from actors._waits import is_wait
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
    lib: str | None = None  # the shared script (Workflow.lib_script)
    audit_arguments: bool = False  # host.called events carry the arguments
    journal: RunJournal | None = None  # the run's store, if the engine has one
    waits: Waits | None = None  # the engine's waiters and timers (wait steps)
    # publish without waiting, or say False (then ``emit``); the bus's publish_event_nowait
    emit_nowait: Callable[[LifecycleEvent], bool] = field(default=lambda event: False)
    # start a task in the run's task group (set when the run starts its actors)
    spawn: Callable[..., object] = field(default=_no_task_group)
    results: dict[str, StepResult] = field(default_factory=dict)
    # attempt, and when the step's first script started (None: still waiting to start)
    running: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    # console lines of running steps: (earlier attempts', this attempt's so far)
    console: dict[str, tuple[tuple[LogEntry, ...], list[LogEntry]]] = field(default_factory=dict)
    launcher: Launcher | None = None  # starts sub-workflow runs (the engine's)
    depth: int = 0  # how deep the run is nested: 0 top-level, 1 a child...
    children: ChildRuns = field(default_factory=ChildRuns)  # cancelled with the run


class StepActor:
    def __init__(
        self,
        step: Step,
        *,
        scope: RunScope,
        upstream: tuple[str, ...],
    ) -> None:
        self._step = step
        self._scope = scope
        self._upstream = upstream
        self._began: float | None = None  # when the first attempt's script started
        self._ctx_extra: dict[str, Any] = {}  # ctx entries of this step alone (upstream)

    async def run(self, reports: dict[str, Message]) -> Message:
        """Fire or skip the step on its upstream ``reports``; return its own report."""
        step = self._step
        blocked = rule_blocks(step.run_if, self._upstream, reports)
        if blocked is not None:
            return await self._skip(blocked)
        deps = {name: r.result for name, r in reports.items() if isinstance(r, Completed)}
        if step.run_if != DEFAULT_RUN_IF:
            self._ctx_extra = {"upstream": upstream_view(self._upstream, reports)}
        if step.when is not None:
            verdict = await self._expression("when", condition_js(step.when), deps)
            if isinstance(verdict, Failed):
                return verdict
            if verdict is not True:
                return await self._skip(CONDITION_FALSE)
        if is_wait(step):
            return await WaitStep(self, deps).run()
        if step.for_each is not None:
            return await FanOut(self, deps).run()
        if step.workflow is not None:
            return await SubflowStep(self, deps).run()
        return await self._execute(deps)

    async def _expression(self, option: str, js: str, deps: dict[str, Any]) -> Any:
        """Evaluate a JS expression option in the sandbox: its value, or the step's
        :class:`Failed` report when it threw (recorded; not retried)."""
        scope, step = self._scope, self._step
        scope.running[step.name] = (1, None)
        outcome = await run_attempt(
            scope.runner,
            step=step.name,
            attempt=1,
            js=js,
            globals=self._globals(deps, 1),
            api={},
            lib=scope.lib,
            step_timeout=step.timeout or scope.timeout,
            announce=_no_announcement,
        )
        if not isinstance(outcome, AttemptFailed):
            del scope.running[step.name]
            return outcome.value
        return await self._expression_failed(option, outcome.error.name, outcome.error)

    async def _expression_failed(
        self, option: str, name: str, cause: StepError | None, message: str | None = None
    ) -> Message:
        text = f"{option}: {message if message is not None else cause and cause.message}"
        error = StepError(self._step.name, name, text, attempt=1, retryable=False, cause=cause)
        self._scope.running.setdefault(self._step.name, (1, None))
        return await self._fail(error, 1, (), ())

    async def _skip(self, reason: str) -> Message:
        scope, name = self._scope, self._step.name
        scope.results[name] = StepResult(name, "skipped", reason=reason)
        event = StepSkipped(
            run_id=scope.run_id, workflow=scope.workflow, step=name, attempt=0, reason=reason
        )
        return await self._publish(event, Skipped(name, reason))

    async def _execute(
        self, deps: dict[str, Any], then: Callable[..., Awaitable[Message]] | None = None
    ) -> Message:
        """Run the step's JS, with retries; complete with its value, or pass the value
        and ``(attempt, logs, attempt_logs)`` to ``then`` (a sub-workflow step)."""
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
                return await (then or self._complete)(outcome.value, *done)
            error = outcome.error
            if not (error.retryable and retry.should_retry(attempt)):
                return await self._fail(error, *done)
            await self._wait_to_retry(error, attempt, retry.delay_after(attempt), outcome.logs)

    async def _attempt(
        self,
        deps: dict[str, Any],
        attempt: int,
        streamed: list[LogEntry],
        element: tuple[Any, int] | None = None,
        shared: Any = None,
        callbacks: Callable[[int, int, Announcement], dict[str, Any]] | None = None,
    ) -> ExecutionLike | AttemptFailed:
        """One attempt of the step, or of its element ``(item, index)`` (``for_each``).

        ``shared``: the runner's shared globals (``deps`` and the ``ctx`` of every
        element); the attempt then sends only its own ``ctx.run``, ``item``, ``index``.
        ``callbacks(attempt, index, announcement)``: the element's ``on_log`` and
        ``on_host_call``, from the fan-out's one event queue, instead of this
        attempt's own.
        """
        scope, step = self._scope, self._step
        if scope.journal is not None:
            lost = await scope.journal.held(step.name, attempt)
            if lost is not None:  # the run was taken over: the step must not start here
                return AttemptFailed(lost, ())
        index = None if element is None else element[1]
        announcement = Announcement(scope.emit, scope.emit_nowait, scope.spawn)
        call = partial(
            run_attempt,
            scope.runner,
            step=step.name,
            attempt=attempt,
            js=step.js,
            globals=self._globals(deps, attempt, element, shared=shared is not None),
            api=step_api(step, scope.api),
            step_timeout=step.timeout or scope.timeout,
            announce=partial(self._announce, attempt, announcement, index),
            lib=scope.lib,
            shared=shared,
        )
        if callbacks is not None and index is not None:  # the fan-out publishes them
            outcome = await call(**callbacks(attempt, index, announcement))
            await announcement.wait()  # step.started is out before anything after it
            return outcome
        console, options = self._console(attempt, announcement, streamed, index)
        try:
            outcome = await call(**options)
            await announcement.wait()  # step.started is out before anything after it
            if console is not None:
                await console.aclose()
        except BaseException:  # cancelled, or failed: queued lines get a short while
            if console is not None:
                await console.stop()
            raise
        return outcome

    def _console(
        self,
        attempt: int,
        announcement: Announcement,
        streamed: list[LogEntry],
        index: int | None,
    ) -> tuple[AttemptConsole | None, dict[str, Any]]:
        """The attempt's console (one queue for its lines and host calls) and the
        ``execute`` callbacks: none when the runner reports neither (a step without
        host functions has no host calls to report)."""
        scope, step = self._scope, self._step
        logs = can_stream_logs(scope.runner)
        audit = bool(step_api(step, scope.api)) and can_audit(scope.runner)
        if not (logs or audit):
            return None, {}
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
            index=index,
        )
        options: dict[str, Any] = {}
        if logs:
            options["on_log"] = console.on_log
        if audit:
            options["on_host_call"] = host_call_events(
                console.publish, console.ids, arguments=scope.audit_arguments
            )
        return console, options

    def _globals(
        self,
        deps: dict[str, Any],
        attempt: int,
        element: tuple[Any, int] | None = None,
        *,
        shared: bool = False,
    ) -> dict[str, Any]:
        scope = self._scope
        run = {"id": scope.run_id, "workflow": scope.workflow, "step": self._step.name}
        if shared and element is not None:  # the rest of ctx, and deps, are shared
            ctx_run = {"run": {**run, "attempt": attempt}}
            return {"ctx": ctx_run, "item": element[0], "index": element[1]}
        ctx = {
            "event": scope.event,
            **scope.context,
            "run": {**run, "attempt": attempt},
            **self._ctx_extra,
        }
        if element is not None:
            return {"deps": deps, "ctx": ctx, "item": element[0], "index": element[1]}
        return {"deps": deps, "ctx": ctx}

    def _announce(
        self,
        attempt: int,
        announcement: Announcement,
        index: int | None,
        timestamp: float,
        began: float,
    ) -> None:
        """The attempt's script started on a worker at ``timestamp``: say so."""
        scope, name = self._scope, self._step.name
        if self._began is None:
            self._began = began
        if index is None:
            scope.running[name] = (attempt, self._began)
        else:  # an element: the step counts every element's attempts
            scope.running[name] = (scope.running.get(name, (1, None))[0], self._began)
        announcement.publish(
            StepStarted(
                run_id=scope.run_id,
                workflow=scope.workflow,
                step=name,
                attempt=attempt,
                timestamp=timestamp,
                index=index,
            )
        )

    async def _wait_to_retry(
        self,
        error: StepError,
        attempt: int,
        delay: float,
        logs: tuple[LogEntry, ...],
        index: int | None = None,
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
            index=index,
        )
        await scope.emit(event)
        await anyio.sleep(delay)

    async def _complete(self, value: Any, *done: Any) -> Message:
        fields = self._record("completed", *done, result=value)
        return await self._publish(
            StepCompleted(result=value, **fields), Completed(fields["step"], value)
        )

    async def _fail(self, error: StepError, *done: Any, index: int | None = None) -> Message:
        fields = self._record("failed", *done, error=error)
        event = StepFailed(error=error, index=index, **fields)
        return await self._publish(event, Failed(fields["step"], error))

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


def _no_announcement(timestamp: float, began: float) -> None:
    """A ``when`` evaluation is not an attempt: no ``step.started`` for it."""
