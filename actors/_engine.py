"""The engine: owns the runner (pool), the task group of all runs, and the triggers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from types import MappingProxyType, TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from actors._admission import Admission, EngineStatistics, run_admitted
from actors._audit import check_capabilities
from actors._bus import EventBus
from actors._check import CheckedScripts
from actors._logging import log_lifecycle_events
from actors._results import RunResult
from actors._retry import Retry
from actors._run import Run, RunEnvironment, RunHandle, check_run_timeout, wait_or_cancel
from actors._runner import StepRunner, default_runner
from actors._shutdown import ActiveRuns, Shutdown, check_shutdown, drain, sole_exception
from actors._trigger import Trigger
from actors._workflow import Workflow
from actors.errors import EngineNotRunning, InvalidOption

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
            task_group = await stack.enter_async_context(anyio.create_task_group())
            self._env = RunEnvironment(
                runner,
                self._bus,
                self._api,
                self._context,
                self._timeout,
                self._retry,
                audit_arguments=self._audit_arguments,
            )
            self._task_group = task_group
            if self._log_events:
                await task_group.start(log_lifecycle_events, self._bus)
            for trigger in self._triggers:
                self._serve_trigger(trigger)
            self._stack = stack.pop_all()
        return self

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

    async def start(self, workflow: Workflow, *, event: Any = None) -> RunHandle:
        """Validate and freeze ``workflow``, start a run, and return its handle.

        Every step's JS is compiled in the sandbox first (once per script per engine):
        a step that does not compile raises :class:`~actors.errors.StepSyntaxError`
        and no step runs. Returns as soon as the run is admitted: at once unless
        ``max_active_runs`` runs are under way, else when one of them ends.
        """
        if self._task_group is None or self._env is None:
            raise EngineNotRunning()
        workflow.freeze()
        check_capabilities(workflow, self._api)
        await self._checked.check(self._env.runner, workflow, self._api)
        await self._admission.enter()
        if self._task_group is None or self._env is None:
            self._admission.abandon()  # the engine stopped while we waited
            raise EngineNotRunning()
        run = Run(workflow, event=event, env=self._env)
        await self._task_group.start(run_admitted, self._admission, run)
        handle = RunHandle(run)
        self._active.add(handle)
        return handle

    def statistics(self) -> EngineStatistics:
        """Runs active, waiting to start, and finished (by status) so far."""
        return self._admission.statistics()

    async def run(
        self, workflow: Workflow, *, event: Any = None, timeout: float | None = None
    ) -> RunResult:
        """Run ``workflow`` with ``ctx.event = event`` and return its :class:`RunResult`.

        Past ``timeout`` seconds the run is cancelled (status ``"cancelled"``; the
        steps it stopped say so in their ``reason``). Cancelling the caller cancels
        the run.
        """
        check_run_timeout(timeout)
        handle = await self.start(workflow, event=event)
        return await wait_or_cancel(handle, timeout)

    # -- triggers --------------------------------------------------------------------

    def on(self, pattern: str, workflow: Workflow) -> Trigger:
        """Start a run of ``workflow`` for each ``bus.publish(topic, payload)`` whose
        topic matches the glob ``pattern``, with ``ctx.event = payload``.

        The workflow is validated and frozen now. Triggers registered before the
        engine starts begin serving when it does. Returns the :class:`Trigger`:
        ``trigger.off()`` (or leaving ``with trigger:``) stops it.
        """
        if not isinstance(pattern, str) or not pattern:
            raise InvalidOption("pattern", "must be a non-empty topic pattern", value=pattern)
        workflow.freeze()
        trigger = Trigger(pattern, workflow, on_off=self._trigger_off)
        self._triggers.append(trigger)
        if self._task_group is not None:
            self._serve_trigger(trigger)
        return trigger

    def _serve_trigger(self, trigger: Trigger) -> None:
        workflow = trigger.workflow

        async def start(payload: Any) -> RunHandle:
            return await self.start(workflow, event=payload)

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
