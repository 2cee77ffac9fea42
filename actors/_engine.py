"""The engine: owns the runner (pool), the task group of all runs, and the triggers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from os import PathLike
from types import MappingProxyType, TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.lowlevel import checkpoint

from actors._admission import Admission, EngineStatistics, run_admitted
from actors._audit import check_capabilities
from actors._bus import EventBus
from actors._check import CheckedScripts
from actors._cluster_bus import ClusterFeed, cluster_store, share_events
from actors._cluster_triggers import event_store, serve_triggers
from actors._durable import Durable, check_key
from actors._logging import log_lifecycle_events
from actors._results import RunResult
from actors._retry import Retry
from actors._run import Run, RunEnvironment, RunHandle, check_run_timeout, wait_or_cancel
from actors._runner import StepRunner, default_runner
from actors._shutdown import ActiveRuns, Shutdown, check_shutdown, drain, sole_exception
from actors._store import RunStore, open_store
from actors._subflow import DEFAULT_MAX_NESTING, Launcher, Workflows
from actors._trigger import Trigger, trigger_key
from actors._waiters import Waits
from actors._workflow import Workflow
from actors.errors import EngineNotRunning, InvalidOption, StoreRequired, UnknownRun

__all__ = ("Engine",)

_RESERVED_CONTEXT = ("event", "run")
DEFAULT_STEP_TIMEOUT = 30.0  # seconds per attempt
DEFAULT_MAX_ACTIVE_RUNS = 100


class Engine:
    """Runs workflows; use it as ``async with Engine(api=..., context=...) as engine``.

    ``api``: host functions every step may call by name. ``context``: extra ``ctx``
    entries (e.g. ``config``). ``pool``: a :class:`runtime_pool.RuntimePool` (or
    any :class:`~actors._runner.StepRunner`); without one the engine makes a
    default pool and closes it on exit; a pool that is not open yet is opened by
    the engine and closed on exit; an open pool is left open. ``bus``: the event
    bus (a new one by default). ``timeout`` and ``retry``: step defaults.
    ``log_events``: log every lifecycle event through structlog. ``shutdown``: what
    leaving ``async with`` does to runs in flight: ``"cancel"`` them, or ``"drain"``
    (let them finish, for up to ``drain_timeout`` seconds, then cancel the rest).
    ``max_active_runs``: how many runs may be under way at once; past it
    :meth:`start` (and so a triggering publish) waits for a run to end.
    ``audit_arguments``: ``host.called`` events carry the host call's arguments
    (off by default: arguments may hold secrets).
    ``store``: where runs are recorded: ``None`` (nowhere, the default), a SQLite
    file path, or a store object such as :class:`actors.SQLiteStore`. With a store,
    entering the engine resumes every unfinished run in it (``resume=False`` opts
    out) and runs can be looked up, waited for, retried and pruned by id.
    ``workflows``: workflows that sub-workflow steps (``workflow="name"``) may run,
    by exact name (also :meth:`register`). ``max_nesting``: how deep sub-workflows
    may nest (a top-level run is depth 0, its children 1...).
    """

    def __init__(
        self,
        *,
        api: Mapping[str, Callable[..., Any]] | None = None,
        context: Mapping[str, Any] | None = None,
        pool: StepRunner | None = None,
        bus: EventBus | None = None,
        timeout: float = DEFAULT_STEP_TIMEOUT,
        retry: Retry | None = None,
        log_events: bool = False,
        shutdown: Shutdown = "cancel",
        drain_timeout: float = 30.0,
        max_active_runs: int = DEFAULT_MAX_ACTIVE_RUNS,
        audit_arguments: bool = False,
        store: RunStore | str | PathLike[str] | None = None,
        resume: bool = True,
        workflows: Iterable[Workflow] = (),
        max_nesting: int = DEFAULT_MAX_NESTING,
    ) -> None:
        self._api = MappingProxyType(dict(api or {}))
        self._context = MappingProxyType(dict(context or {}))
        _check_options(self._api, self._context, timeout, retry)
        check_shutdown(shutdown, drain_timeout)
        _check_max_active_runs(max_active_runs)
        self._admission = Admission(max_active_runs)
        self._shutdown, self._drain_timeout = shutdown, float(drain_timeout)
        self._active = ActiveRuns()
        self._pool = pool
        self._bus = bus if bus is not None else EventBus()
        self._timeout = float(timeout)
        self._retry = retry if retry is not None else Retry()
        self._log_events = log_events
        self._audit_arguments = bool(audit_arguments)
        self._triggers: list[Trigger] = []
        self._stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None
        self._env: RunEnvironment | None = None
        self._checked = CheckedScripts()
        self._waits = Waits(self._bus.waiters, self._admission)
        opened = open_store(store)
        self._durable = None if opened is None else Durable(opened)
        self._resume = bool(resume)
        self._workflows = Workflows(workflows, max_nesting=max_nesting)
        self._launcher = Launcher(
            self._workflows, start=self._start, retry=self._retry_child, durable=self._durable
        )

    @property
    def bus(self) -> EventBus:
        return self._bus

    @property
    def is_running(self) -> bool:
        return self._task_group is not None

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        if self._stack is not None:
            raise RuntimeError("this engine is already running")
        async with AsyncExitStack() as stack:
            runner = self._pool if self._pool is not None else default_runner()
            if not runner.is_open:
                await stack.enter_async_context(runner)
            if self._durable is not None:
                await stack.enter_async_context(self._durable.store)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            await task_group.start(self._waits.serve)
            self._env = RunEnvironment(
                runner,
                self._bus,
                self._api,
                self._context,
                self._timeout,
                self._retry,
                audit_arguments=self._audit_arguments,
                waits=self._waits,
                launcher=self._launcher,
            )
            self._task_group = task_group
            if self._log_events:
                await task_group.start(log_lifecycle_events, self._bus)
            await self._share(task_group)
            for trigger in self._triggers:
                self._serve_trigger(trigger)
            if self._durable is not None and self._resume:
                resumed = await self._durable.resumable(self._env, limit=self._admission.room())
                task_group.start_soon(self._admit_all, resumed)
                room = self._admission.wait_for_room
                task_group.start_soon(self._durable.take_over, self._env, self._admit_all, room)
            self._stack = stack.pop_all()
        return self

    async def _share(self, task_group: TaskGroup) -> None:
        """On a shared store: triggers and bus events across engines."""
        store = None if self._durable is None else self._durable.store
        shared = event_store(store)
        if shared is not None:
            self._bus.trigger_table.recorder = shared.record_event
            task_group.start_soon(serve_triggers, shared, self._triggers, self._start_claimed)
        cluster = cluster_store(store)
        if cluster is not None:
            if getattr(store, "share_events", True):
                await task_group.start(share_events, self._bus, cluster)
            self._bus.cluster = ClusterFeed(cluster)
            await task_group.start(self._bus.cluster.serve)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, task_group = self._stack, self._task_group
        assert stack is not None and task_group is not None
        for trigger in self._triggers:
            self._bus.trigger_table.remove(trigger)
        if self._durable is not None and self._bus.trigger_table.recorder is not None:
            self._bus.trigger_table.recorder = None
        if self._bus.cluster is not None and self._durable is not None:
            self._bus.cluster = None
        interrupted = None
        if self._shutdown == "drain" and exc_type is None:
            interrupted = await drain(self._active, self._drain_timeout)
        self._task_group = self._env = self._stack = None
        task_group.cancel_scope.cancel()  # what still runs is cancelled
        if interrupted is not None:  # the drain was interrupted: leave with that
            exc_type, exc, tb = type(interrupted), interrupted, interrupted.__traceback__
        sole: BaseException | None = None
        try:
            if await stack.__aexit__(exc_type, exc, tb):
                return True
        except BaseExceptionGroup as group:  # from the engine's own task group
            sole = sole_exception(group)
            if sole is None:
                raise
        if sole is not None and sole is not exc:
            raise sole  # one error, raised as itself (outside the except: not chained to its group)
        if interrupted is not None:
            raise interrupted
        return False  # the body's own exception, if any, propagates unchanged

    # -- runs ------------------------------------------------------------------------

    async def start(
        self, workflow: Workflow, *, event: Any = None, key: str | None = None
    ) -> RunHandle:
        """Validate and freeze ``workflow``, start a run, and return its handle.

        ``key`` (needs a store): if a run with this key was started before, even by an
        earlier process, return its handle instead of starting another.

        Every step's JS is compiled in the sandbox first (once per script per engine):
        a step that does not compile raises :class:`~actors.errors.StepSyntaxError`
        and no step runs. Returns as soon as the run is admitted: at once unless
        ``max_active_runs`` runs are under way, else when one of them ends.
        """
        return await self._start(workflow, event=event, key=key)

    async def _start_claimed(self, workflow: Workflow, *, event: Any, key: str | None) -> RunHandle:
        """Start a run for a shared event once there is a place here (so runs go to
        engines with room); the handle of the run ``key`` names if one was started."""
        await self._admission.enter()
        return await self._start(workflow, event=event, key=key, entered=True)

    async def _start(
        self,
        workflow: Workflow,
        *,
        event: Any,
        key: str | None,
        parent_run_id: str | None = None,
        depth: int = 0,
        entered: bool = False,
    ) -> RunHandle:
        """Start a run (a child of ``parent_run_id``, nested ``depth`` deep, takes its
        place at once); ``entered``: a place was taken for it (given back if no run starts)."""
        try:
            run = await self._new_run(
                workflow, event=event, key=key, parent_run_id=parent_run_id, depth=depth
            )
        except BaseException:
            if entered:
                self._admission.abandon()
            raise
        if isinstance(run, RunHandle):  # the run ``key`` names, started before
            if entered:
                self._admission.abandon()
            return run
        return await self._admit(run, child=parent_run_id is not None, entered=entered)

    async def _new_run(
        self,
        workflow: Workflow,
        *,
        event: Any,
        key: str | None,
        parent_run_id: str | None,
        depth: int,
    ) -> Run | RunHandle:
        if self._task_group is None or self._env is None:
            raise EngineNotRunning()
        workflow.freeze()
        if parent_run_id is None:  # a child run was checked at its depth by its parent
            self._workflows.check(workflow)
        check_capabilities(workflow, self._api)
        key = check_key(key)
        if key is not None and self._durable is None:
            raise StoreRequired("key=")
        await self._checked.check(self._env.runner, workflow, self._api)
        if self._durable is None:
            return Run(
                workflow, event=event, env=self._env, parent_run_id=parent_run_id, depth=depth
            )
        return await self._durable.create(
            workflow, event=event, key=key, env=self._env, parent_run_id=parent_run_id, depth=depth
        )

    def register(self, workflow: Workflow) -> None:
        """Make ``workflow`` runnable by name from sub-workflow steps (``workflow=``).

        It is validated and frozen; a name taken by another workflow raises
        :class:`~actors.errors.DuplicateWorkflow`, and a cycle of workflows running
        each other :class:`~actors.errors.WorkflowCycle`.
        """
        self._workflows.register(workflow)

    async def _admit(self, run: Run, *, child: bool = False, entered: bool = False) -> RunHandle:
        try:
            if child:  # its parent holds a place
                self._admission.enter_nowait()
            elif not entered:
                await self._admission.enter()
        except BaseException:
            if self._durable is not None:
                self._durable.ended(run)
            raise
        if self._task_group is None or self._env is None:
            self._admission.abandon()  # the engine stopped while we waited
            raise EngineNotRunning()
        await self._task_group.start(self._execute, run)
        handle = RunHandle(run)
        self._active.add(handle)
        return handle

    async def _execute(
        self, run: Run, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self._waits.enter(run.id, child=run.parent_run_id is not None)
        try:
            await run_admitted(self._admission, run, lent=self._waits.lent, task_status=task_status)
        finally:
            self._waits.leave(run.id)
            if self._durable is not None:
                self._durable.ended(run)

    async def _admit_all(self, runs: list[Run]) -> None:
        """Start resumed runs, each as a place frees up (a child run at once)."""
        for run in runs:
            try:
                await self._admit(run, child=run.parent_run_id is not None)
            except EngineNotRunning:
                return

    async def send(self, run_id: str, topic: str, payload: Any = None) -> None:
        """Give ``payload`` to run ``run_id``'s ``wait_for`` step on ``topic`` (whatever
        its ``match``); if it is not waiting on ``topic`` yet, the payload is kept for it
        (up to 64 per run, while the run is under way here). Raises
        :class:`~actors.errors.UnknownRun` if the run is not under way in this engine.
        """
        if self._task_group is None:
            raise EngineNotRunning()
        if not isinstance(topic, str) or not topic:
            raise InvalidOption("topic", "must be a non-empty string", value=topic)
        self._waits.send(run_id, topic, payload)
        await checkpoint()

    async def _retry_child(self, run_id: str) -> RunHandle:
        """Retry the ended child run ``run_id`` (its parent runs its step again)."""
        durable = self._history("retry")
        assert self._env is not None
        return await self._admit(await durable.retry(run_id, None, self._env), child=True)

    def statistics(self) -> EngineStatistics:
        """Runs active, waiting to start, and finished (by status) so far."""
        return self._admission.statistics()

    async def run(
        self,
        workflow: Workflow,
        *,
        event: Any = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> RunResult:
        """Run ``workflow`` with ``ctx.event = event`` and return its :class:`RunResult`.

        ``key``: as for :meth:`start` (the result of the run the key names).
        Past ``timeout`` seconds the run is cancelled (status ``"cancelled"``; the
        steps it stopped say so in their ``reason``). Cancelling the caller cancels
        the run.
        """
        check_run_timeout(timeout)
        handle = await self.start(workflow, event=event, key=key)
        return await wait_or_cancel(handle, timeout)

    # -- run history (needs a store) -------------------------------------------------

    def _history(self, feature: str) -> Durable:
        if self._durable is None:
            raise StoreRequired(feature)
        if self._env is None:
            raise EngineNotRunning()
        return self._durable

    async def get_run(self, run_id: str) -> RunResult:
        """Run ``run_id`` as recorded (``status`` is ``"running"`` while under way)."""
        return await self._history("get_run").get_run(run_id)

    async def wait(self, run_id: str) -> RunResult:
        """Wait for run ``run_id`` (running here, or ended) and return its result."""
        return await self._history("wait").wait(run_id)

    async def runs(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunResult]:
        """Recorded runs, newest first, optionally of one ``workflow`` or ``status``."""
        return await self._history("runs").runs(workflow=workflow, status=status, limit=limit)

    async def retry(self, run_id: str, *, from_step: str | None = None) -> RunHandle:
        """Run an ended run again under the same id: its failed, skipped and cancelled
        steps run again, its completed ones are kept (except ``from_step`` and every
        step downstream of it). Uses the recorded definition and this engine's ``api``.
        """
        durable = self._history("retry")
        assert self._env is not None
        return await self._admit(await durable.retry(run_id, from_step, self._env))

    async def prune(self, *, older_than: float | timedelta) -> int:
        """Forget runs that ended more than ``older_than`` (seconds or a timedelta) ago;
        return how many."""
        return await self._history("prune").prune(older_than)

    # -- triggers --------------------------------------------------------------------

    def on(
        self, pattern: str, workflow: Workflow, *, key: Callable[[Any], str] | None = None
    ) -> Trigger:
        """Start a run of ``workflow`` for each ``bus.publish(topic, payload)`` whose
        topic matches the glob ``pattern``, with ``ctx.event = payload``.

        The workflow is validated and frozen now. Triggers registered before the
        engine starts begin serving when it does. Returns the :class:`Trigger`:
        ``trigger.off()`` (or leaving ``with trigger:``) stops it. ``key(payload)``
        (needs a store) names each run: a payload whose key started a run before
        starts none (as ``start(key=...)``).
        """
        if not isinstance(pattern, str) or not pattern:
            raise InvalidOption("pattern", "must be a non-empty topic pattern", value=pattern)
        if key is not None and not callable(key):
            raise InvalidOption("key", "must be a function of the payload", value=key)
        if key is not None and self._durable is None:
            raise StoreRequired("engine.on(key=...)")
        workflow.freeze()
        trigger = Trigger(pattern, workflow, on_off=self._trigger_off, key=key)
        self._triggers.append(trigger)
        if self._task_group is not None:
            self._serve_trigger(trigger)
        return trigger

    def _serve_trigger(self, trigger: Trigger) -> None:
        async def start(payload: Any, event_id: int | None) -> RunHandle | None:
            if event_id is not None and not self._admission.room():
                return None  # full: an engine with room starts it (this one, later)
            key = trigger_key(trigger, payload, event_id)
            try:
                return await self.start(trigger.workflow, event=payload, key=key)
            except UnknownRun:
                if event_id is None:
                    raise
                return None  # another engine of the shared store started it

        self._bus.trigger_table.add(trigger, start)

    def _trigger_off(self, trigger: Trigger) -> None:
        self._triggers.remove(trigger)
        self._bus.trigger_table.remove(trigger)


def _check_max_active_runs(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption("max_active_runs", "must be a positive integer", value=value)


def _check_options(
    api: Mapping[str, Any], context: Mapping[str, Any], timeout: object, retry: object
) -> None:
    for name, fn in api.items():
        if not isinstance(name, str) or not name.isidentifier() or not callable(fn):
            raise InvalidOption(f"api.{name}", "must map JS identifiers to callables", value=fn)
    for key in _RESERVED_CONTEXT:
        if key in context:
            raise InvalidOption(f"context.{key}", f"is reserved: the engine sets ctx.{key}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidOption("timeout", "must be a positive number of seconds", value=timeout)
    if retry is not None and not isinstance(retry, Retry):
        raise InvalidOption("retry", "must be a Retry", value=retry)
