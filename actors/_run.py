"""One run of a workflow: its actors, its cancel scope, its result; and its handle."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus

from actors._actor import RunScope, StepActor
from actors._bus import EventBus
from actors._events import (
    LifecycleEvent,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StepCancelled,
)
from actors._inboxes import Inboxes
from actors._journal import RunJournal
from actors._messages import Message
from actors._results import RunResult, RunStatus, StepResult
from actors._retry import Retry
from actors._runner import StepRunner
from actors._subflow import Launcher
from actors._waiters import Waits
from actors._workflow import Workflow
from actors.errors import InvalidOption

__all__ = ("Run", "RunEnvironment", "RunHandle", "RunLike")

# How long a run's final event may wait for slow subscribers while being cancelled.
FINAL_EVENT_TIMEOUT = 1.0
# How long recording a run's end in its store may hold the run's task up.
STORE_FINISH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RunEnvironment:
    """What the engine gives every run."""

    runner: StepRunner
    bus: EventBus
    api: Mapping[str, Callable[..., Any]]
    context: Mapping[str, Any]
    timeout: float
    retry: Retry
    audit_arguments: bool = False
    waits: Waits | None = None  # the engine's waiters and timers (wait steps)
    launcher: Launcher | None = None  # starts sub-workflow runs


class Run:
    """Executes one workflow once. ``execute`` runs in a task of the engine's task group."""

    def __init__(
        self,
        workflow: Workflow,
        *,
        event: Any,
        env: RunEnvironment,
        run_id: str | None = None,
        recorded: Mapping[str, StepResult] | None = None,
        parent_run_id: str | None = None,
        depth: int = 0,
    ) -> None:
        """``recorded``: outcomes of a resumed run's steps, which are not run again
        (their results go downstream). ``parent_run_id`` and ``depth``: a child run's
        parent (whose sub-workflow step started it) and nesting depth."""
        self.id = run_id or uuid.uuid4().hex
        self.workflow = workflow.name
        self.parent_run_id = parent_run_id
        self._plan = workflow.compiled()
        self._steps = workflow.steps
        self._env = env
        self._scope = RunScope(
            run_id=self.id,
            workflow=workflow.name,
            event={} if event is None else event,
            context=env.context,
            api=env.api,
            runner=env.runner,
            emit=env.bus.publish_event,
            emit_nowait=env.bus.publish_event_nowait,
            timeout=env.timeout,
            retry=env.retry,
            lib=workflow.lib_script,
            audit_arguments=env.audit_arguments,
            waits=env.waits,
            launcher=env.launcher,
            depth=depth,
        )
        self._recorded = recorded or {}
        self._scope.results.update(self._recorded)
        self._cancel_scope = anyio.CancelScope()
        self._cancel_reason = "run cancelled"
        self._done = anyio.Event()
        self.result: RunResult | None = None

    @property
    def event(self) -> Any:
        return self._scope.event

    def attach(self, journal: RunJournal) -> None:
        """Record this run in a store through ``journal`` (before it executes)."""
        self._scope.journal = journal

    def cancel(self, reason: str = "run cancelled") -> None:
        """Stop the run: running JS is cancelled, unstarted steps are skipped.

        ``reason`` starts the ``reason`` of the steps it stops.
        """
        if not self._cancel_scope.cancel_called:
            self._cancel_reason = reason
        self._cancel_scope.cancel()
        self._scope.children.cancel(f"parent run {self.id} cancelled")

    async def wait(self) -> RunResult:
        await self._done.wait()
        assert self.result is not None
        return self.result

    async def execute(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        started = time.monotonic()
        interrupted = False
        try:
            with self._cancel_scope:
                parent = self.parent_run_id
                await self._emit(
                    RunStarted(run_id=self.id, workflow=self.workflow, parent_run_id=parent)
                )
                self._inboxes = Inboxes(self._plan, self._actors(), self._recorded)
                async with anyio.create_task_group() as tg:
                    self._scope.spawn = tg.start_soon
                    for actor, reports in self._inboxes.ready_at_start():
                        tg.start_soon(self._drive, actor, reports)
        except anyio.get_cancelled_exc_class():
            interrupted = True
            raise
        finally:
            interrupted = interrupted or self._cancel_scope.cancelled_caught
            await self._finish(started, interrupted=interrupted)

    def _actors(self) -> dict[str, StepActor]:
        """The actors of the steps to run (not those a resumed run recorded), in order."""
        plan, scope = self._plan, self._scope
        return {
            name: StepActor(self._steps[name], scope=scope, upstream=plan.upstream[name])
            for name in plan.order
            if name not in self._recorded
        }

    async def _drive(self, actor: StepActor, reports: dict[str, Message]) -> None:
        """Run ``actor``'s step, then hand its report downstream: a step the report
        makes ready runs next in this task, any others in new tasks of the run."""
        while True:
            message = await actor.run(reports)
            ready = self._inboxes.report(message)
            if not ready:
                return
            for other in ready[1:]:
                self._scope.spawn(self._drive, *other)
            actor, reports = ready[0]

    async def _emit(self, event: LifecycleEvent) -> None:
        await self._env.bus.publish_event(event)

    async def _finish(self, started: float, *, interrupted: bool) -> None:
        result = self._result(time.monotonic() - started, interrupted=interrupted)
        self.result = result
        try:
            journal = self._scope.journal
            # stopped by its engine (not cancelled by a user): left to resume later
            if journal is not None and not (interrupted and not self._cancel_scope.cancel_called):
                with anyio.move_on_after(STORE_FINISH_TIMEOUT, shield=True):
                    await journal.finish(result)  # if it never lands, a resume ends it
            if interrupted:  # shielded, so the final event goes out, but not for long
                with anyio.move_on_after(FINAL_EVENT_TIMEOUT, shield=True):
                    for event in self._cancelled_events(result):
                        await self._emit(event)
                with anyio.move_on_after(FINAL_EVENT_TIMEOUT, shield=True):
                    await self._emit(_final_event(result))
            else:  # like any event: each subscriber's own policy bounds the wait
                await self._emit(_final_event(result))
        finally:
            self._done.set()

    def _cancelled_events(self, result: RunResult) -> list[StepCancelled]:
        """One ``step.cancelled`` per step stopped while running, with its last lines."""
        events = []
        for name, step in result.steps.items():
            if step.status == "cancelled":
                earlier, _ = self._scope.console.get(name, ((), []))
                events.append(
                    StepCancelled(
                        run_id=self.id,
                        workflow=self.workflow,
                        step=name,
                        attempt=step.attempts,
                        reason=step.reason or "",
                        duration=step.duration,
                        logs=step.logs[len(earlier) :],
                    )
                )
        return events

    def _result(self, duration: float, *, interrupted: bool) -> RunResult:
        steps = {name: self._step_result(name) for name in self._steps}
        status: RunStatus
        if interrupted and len(self._scope.results) < len(steps):
            status = "cancelled"
        elif any(s.status == "failed" for s in steps.values()):
            status = "failed"
        else:
            status = "completed"
        sinks = self._plan.sinks
        results = {sink: steps[sink].result for sink in sinks}
        output = results[sinks[0]] if len(sinks) == 1 else results
        return RunResult(
            id=self.id,
            workflow=self.workflow,
            status=status,
            output=output,
            steps=MappingProxyType(steps),
            duration=duration,
            parent_run_id=self.parent_run_id,
        )

    def _step_result(self, name: str) -> StepResult:
        done = self._scope.results.get(name)
        if done is not None:
            return done
        running = self._scope.running.get(name)
        if running is not None:
            attempts, started = running
            earlier, streamed = self._scope.console.get(name, ((), []))
            duration = 0.0 if started is None else time.monotonic() - started
            if started is None:
                reason = f"{self._cancel_reason} while the step waited to start"
            else:
                reason = f"{self._cancel_reason} while running"
            logs = (*earlier, *streamed)  # up to the stop
            return StepResult(
                name, "cancelled", reason=reason, attempts=attempts, duration=duration, logs=logs
            )
        reason = f"{self._cancel_reason} before the step started"
        return StepResult(name, "skipped", reason=reason)


def _final_event(result: RunResult) -> LifecycleEvent:
    ids: dict[str, Any] = {
        "run_id": result.id,
        "workflow": result.workflow,
        "duration": result.duration,
        "parent_run_id": result.parent_run_id,
    }
    if result.status == "completed":
        return RunCompleted(output=result.output, **ids)
    if result.status == "cancelled":
        return RunCancelled(**ids)
    failed = result.failed_steps
    error = result.steps[failed[0]].error
    return RunFailed(output=result.output, error=error, failed=failed, **ids)


class RunLike(Protocol):
    """What a :class:`RunHandle` needs of a run (a :class:`Run`, or one read back
    from a store)."""

    id: str
    workflow: str
    parent_run_id: str | None
    result: RunResult | None

    def cancel(self, reason: str = ...) -> None: ...

    async def wait(self) -> RunResult: ...


class RunHandle:
    """A started run: ``id``, ``await wait()`` for its result, ``await cancel()``."""

    def __init__(self, run: RunLike) -> None:
        self._run = run

    def __repr__(self) -> str:
        return f"<RunHandle {self.id} workflow={self.workflow!r} done={self.done}>"

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def workflow(self) -> str:
        return self._run.workflow

    @property
    def parent_run_id(self) -> str | None:
        """The run whose sub-workflow step started this one (``None``: top-level)."""
        return self._run.parent_run_id

    @property
    def done(self) -> bool:
        return self._run.result is not None

    @property
    def result(self) -> RunResult | None:
        """The result once the run has ended, else ``None``."""
        return self._run.result

    async def wait(self) -> RunResult:
        """Wait for the run to end and return its result."""
        return await self._run.wait()

    async def cancel(self) -> RunResult:
        """Cancel the run (running JS is stopped) and return its result."""
        self._run.cancel()
        return await self._run.wait()

    def cancel_nowait(self) -> None:
        """Request cancellation without waiting for the run to end."""
        self._run.cancel()

    async def _time_out(self, timeout: float) -> RunResult:
        self._run.cancel(f"run timed out after {timeout:g} s")
        return await self._run.wait()


def check_run_timeout(timeout: object) -> None:
    """Raise :class:`InvalidOption` unless ``timeout`` is ``None`` or positive seconds."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidOption("timeout", "must be a positive number of seconds", value=timeout)


async def wait_or_cancel(handle: RunHandle, timeout: float | None) -> RunResult:
    """The run's result; past ``timeout`` seconds, cancel it first. Cancelling the
    caller cancels the run."""
    try:
        if timeout is None:
            return await handle.wait()
        with anyio.move_on_after(timeout):
            return await handle.wait()
    except anyio.get_cancelled_exc_class():
        handle.cancel_nowait()
        raise
    return await handle._time_out(timeout)
