"""Sub-workflows: a step that runs another workflow, found by name, as a child run.

:class:`Workflows` is an engine's registry: exact names to frozen workflows; it
refuses a cycle of workflows running each other and a chain nested deeper than
the engine's bound. A sub-workflow step (:class:`SubflowStep`) gets the child's
event from its JS (or its ``deps`` when it has none), starts the child through the
engine's :class:`Launcher` (``parent_run_id``: this run; with a store, the key
``child_key(parent, step)``, so a resumed parent rejoins the child it started),
waits for it, and completes with the child's output or fails with
:class:`~actors.errors.SubflowFailed`. Cancelling a run cancels its children
(:class:`ChildRuns`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from actors._events import StepStarted
from actors._log import get_logger
from actors._messages import Message
from actors._results import RunResult
from actors.errors import (
    ActorsError,
    DuplicateWorkflow,
    EngineNotRunning,
    InvalidOption,
    NestingTooDeep,
    StepError,
    SubflowFailed,
    UnknownRun,
    UnknownWorkflow,
    WorkflowCycle,
)

if TYPE_CHECKING:
    from actors._actor import StepActor
    from actors._durable import Durable
    from actors._run import RunHandle
    from actors._workflow import Workflow

__all__ = (
    "DEFAULT_MAX_NESTING",
    "ChildRuns",
    "Launcher",
    "SubflowStep",
    "Workflows",
    "check_max_nesting",
    "child_key",
)

logger = get_logger(__name__)

DEFAULT_MAX_NESTING = 10  # a top-level run is depth 0, its children 1...


def child_key(parent_run_id: str, step: str) -> str:
    """The idempotency key of the child run that step ``step`` of a run starts."""
    return f"{parent_run_id}/{step}"


def check_max_nesting(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOption("max_nesting", "must be an integer >= 0", value=value)
    return value


# -- the registry ------------------------------------------------------------------------


class Workflows:
    """Workflows by exact name, for sub-workflow steps to run."""

    def __init__(self, workflows: Iterable[Workflow] = (), *, max_nesting: int) -> None:
        self.max_nesting = check_max_nesting(max_nesting)
        self._by_name: dict[str, Workflow] = {}
        if not isinstance(workflows, Iterable) or isinstance(workflows, str):
            raise InvalidOption("workflows", "must be a list of Workflow objects", value=workflows)
        for workflow in workflows:
            self.register(workflow)

    def get(self, name: str) -> Workflow | None:
        return self._by_name.get(name)

    def register(self, workflow: Workflow) -> None:
        """Validate and freeze ``workflow`` and add it under its name. Raises
        :class:`DuplicateWorkflow` for a name taken by another workflow, and
        :class:`WorkflowCycle` or :class:`NestingTooDeep` through the names known."""
        from actors._workflow import Workflow

        if not isinstance(workflow, Workflow):
            raise InvalidOption("workflows", "must hold Workflow objects", value=workflow)
        known = self._by_name.get(workflow.name)
        if known is workflow:
            return
        if known is not None:
            raise DuplicateWorkflow(workflow.name)
        workflow.freeze()
        self._by_name[workflow.name] = workflow
        try:
            self.check(workflow, strict=False)
        except BaseException:
            del self._by_name[workflow.name]
            raise

    def check(self, workflow: Workflow, *, depth: int = 0, strict: bool = True) -> None:
        """Raise if ``workflow`` (run at ``depth``) runs an unknown workflow (``strict``),
        is part of a cycle, or nests its children past the bound."""
        if not any(step.workflow is not None for step in workflow.steps.values()):
            return
        chain = self._chain(workflow, (workflow.name,), strict, {})
        deepest = depth + len(chain) - 1
        if deepest > self.max_nesting:
            raise NestingTooDeep(chain, depth=deepest, limit=self.max_nesting)

    def _chain(
        self,
        workflow: Workflow,
        path: tuple[str, ...],
        strict: bool,
        done: dict[str, tuple[str, ...]],
    ) -> tuple[str, ...]:
        """The longest chain of names ``workflow`` runs (itself first); ``path``: the
        names being explored (a name met again is a cycle); ``done``: explored names."""
        longest: tuple[str, ...] = (workflow.name,)
        for step in workflow.steps.values():
            name = step.workflow
            if name is None:
                continue
            if name in path:
                raise WorkflowCycle(path[path.index(name) :])
            child = self._by_name.get(name)
            if child is None:
                if strict:
                    raise UnknownWorkflow(name, step=step.name, workflow=workflow.name)
                continue
            if name not in done:
                done[name] = self._chain(child, (*path, name), strict, done)
            if 1 + len(done[name]) > len(longest):
                longest = (workflow.name, *done[name])
        return longest


# -- starting children -------------------------------------------------------------------


class StartRun(Protocol):
    async def __call__(
        self,
        workflow: Workflow,
        *,
        event: Any,
        key: str | None,
        parent_run_id: str | None,
        depth: int,
    ) -> RunHandle: ...


class Launcher:
    """How a sub-workflow step starts its child on the engine (given to every run).

    ``start``: the engine's start of a run (the child takes a place at once: its
    parent holds one). ``retry``: the engine's retry of an ended child run, for a
    resumed or retried parent whose child failed or was cancelled.
    """

    def __init__(
        self,
        workflows: Workflows,
        *,
        start: StartRun,
        retry: Callable[[str], Awaitable[RunHandle]],
        durable: Durable | None,
    ) -> None:
        self.workflows = workflows
        self._start = start
        self._retry = retry
        self._durable = durable

    async def start_child(
        self, name: str, *, event: Any, parent_run_id: str, step: str, depth: int
    ) -> RunHandle:
        """The child run of step ``step``: started now, or (with a store) the one it
        started before: still running, completed, or failed (then retried)."""
        workflow = self.workflows.get(name)
        if workflow is None:
            raise UnknownWorkflow(name, step=step)
        self.workflows.check(workflow, depth=depth)
        durable = self._durable
        key = None if durable is None else child_key(parent_run_id, step)
        try:
            handle = await self._start(
                workflow, event=event, key=key, parent_run_id=parent_run_id, depth=depth
            )
        except UnknownRun as exc:  # started before, unfinished, not running here
            if durable is None or getattr(durable.store, "takeover_interval", None) is None:
                raise
            return _elsewhere(durable, exc.run_id, workflow.name, parent_run_id)
        result = handle.result
        if result is not None and result.status in ("failed", "cancelled"):
            return await self._retry(handle.id)  # a parent that runs again retries it
        return handle


def _elsewhere(durable: Durable, run_id: str, workflow: str, parent: str) -> RunHandle:
    from actors._run import RunHandle

    return RunHandle(RemoteRun(durable, run_id, workflow, parent))


class RemoteRun:
    """A child run that another engine of a shared store holds: waited for by reading
    the store every takeover interval (or joined once this engine takes it over)."""

    def __init__(self, durable: Durable, run_id: str, workflow: str, parent: str) -> None:
        self.id = run_id
        self.workflow = workflow
        self.parent_run_id: str | None = parent
        self.result: RunResult | None = None
        self._durable = durable

    def cancel(self, reason: str = "run cancelled") -> None:
        logger.warning("remote_child_not_cancelled", run_id=self.id, reason=reason)

    async def wait(self) -> RunResult:
        interval = getattr(self._durable.store, "takeover_interval", None) or 1.0
        while self.result is None:
            live = self._durable.live.get(self.id)
            if live is not None:
                self.result = await live.wait()
                break
            found = await self._durable.get_run(self.id)
            if found.status != "running":
                self.result = found
                break
            await anyio.sleep(interval)
        return self.result


class ChildRuns:
    """A run's child runs under way: cancelled with it (also one started after)."""

    def __init__(self) -> None:
        self._handles: list[RunHandle] = []
        self._reason: str | None = None

    def add(self, handle: RunHandle) -> None:
        self._handles.append(handle)
        if self._reason is not None:
            handle._run.cancel(self._reason)

    def discard(self, handle: RunHandle) -> None:
        if handle in self._handles:
            self._handles.remove(handle)

    def cancel(self, reason: str) -> None:
        self._reason = reason
        for handle in list(self._handles):
            handle._run.cancel(reason)


# -- the step ----------------------------------------------------------------------------


class SubflowStep:
    """One sub-workflow step's run, on behalf of its actor."""

    def __init__(self, actor: StepActor, deps: dict[str, Any]) -> None:
        self._actor = actor
        self._deps = deps

    async def run(self) -> Message:
        actor = self._actor
        if actor._step.js.strip():  # its JS gives the child's event
            return await actor._execute(self._deps, then=self._child)
        scope, name = actor._scope, actor._step.name
        journal = scope.journal
        attempt = 1 + (0 if journal is None else journal.attempts_before(name))
        actor._began = time.monotonic()
        scope.running[name] = (attempt, actor._began)
        event = StepStarted(
            run_id=scope.run_id, workflow=scope.workflow, step=name, attempt=attempt
        )
        await scope.emit(event)
        return await self._child(self._deps, attempt, (), ())

    async def _child(self, event: Any, attempt: int, *logs: Any) -> Message:
        """Start the child with ``event``, wait for it, and end the step as it ended."""
        actor = self._actor
        scope, step = actor._scope, actor._step
        assert step.workflow is not None
        scope.running[step.name] = (attempt, actor._began)
        try:
            if scope.launcher is None:
                raise UnknownWorkflow(step.workflow, step=step.name)
            with anyio.CancelScope(shield=True):  # a started child is always known
                handle = await scope.launcher.start_child(
                    step.workflow,
                    event=event,
                    parent_run_id=scope.run_id,
                    step=step.name,
                    depth=scope.depth + 1,
                )
        except EngineNotRunning:
            await anyio.sleep_forever()  # the engine is stopping: its cancellation comes
            raise
        except ActorsError as exc:
            kind, text = type(exc).__name__, str(exc)
            error = StepError(step.name, kind, text, attempt=attempt, retryable=False, cause=exc)
            return await actor._fail(error, attempt, *logs)
        scope.children.add(handle)
        try:
            result = await handle.wait()
        finally:
            scope.children.discard(handle)
        if result.status == "completed":
            return await actor._complete(result.output, attempt, *logs)
        return await actor._fail(subflow_failed(step.name, result, attempt), attempt, *logs)


def subflow_failed(step: str, result: RunResult, attempt: int) -> SubflowFailed:
    """The error of a step whose child run ``result`` did not complete."""
    where = f"workflow {result.workflow!r} run {result.id}"
    failed = result.failed_steps
    if result.status != "failed" or not failed:
        message = f"{where} was {result.status}"
        return SubflowFailed(
            step,
            message,
            run_id=result.id,
            workflow=result.workflow,
            failed_step=None,
            attempt=attempt,
        )
    cause = result.steps[failed[0]].error
    detail = "failed" if cause is None else f"{cause.name}: {cause.message}"
    return SubflowFailed(
        step,
        f"{where} failed at step {failed[0]!r}: {detail}",
        run_id=result.id,
        workflow=result.workflow,
        failed_step=failed[0],
        attempt=attempt,
        cause=cause,
    )
