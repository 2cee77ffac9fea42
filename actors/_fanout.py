"""Fan-out (``for_each``): a step's JS once per element of an array, results in order.

The array comes from the step's ``for_each`` expression, evaluated in the sandbox
with ``deps`` and ``ctx``. Each element runs with ``item`` and ``index`` in scope
and its own attempts (the step's retry policy); ``max_parallel`` elements at most
run at once, served by that many tasks taking the next index in turn. The first
element to fail for good stops the others and fails the step, naming its index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from actors._attempt import AttemptFailed, name_the_value, translate_error
from actors._audit import can_audit, host_call_events, step_api
from actors._console import (
    FLUSH_TIMEOUT,
    MAX_STREAMED_LINES,
    Announcement,
    can_stream_logs,
)
from actors._events import LifecycleEvent, StepLogged
from actors._log import get_logger
from actors._messages import Failed, Message
from actors._runner import LogEntry
from actors.errors import ElementFailed, StepError

if TYPE_CHECKING:
    from actors._actor import RunScope, StepActor
    from actors._workflow import Step

logger = get_logger(__name__)

__all__ = ("DEFAULT_MAX_PARALLEL", "MAX_KEPT_LINES", "FanOut", "value_js")

DEFAULT_MAX_PARALLEL = 64
MAX_KEPT_LINES = 1000  # console lines kept in the step's result, over all elements


def value_js(expression: str) -> str:
    """The script that evaluates a JS expression to its value."""
    return f"return (\n{expression}\n);"


@dataclass(frozen=True, slots=True)
class _Line:
    level: str
    text: str


class FanOut:
    """One ``for_each`` step's run over its elements, on behalf of its actor."""

    def __init__(self, actor: StepActor, deps: dict[str, Any]) -> None:
        self._actor = actor
        self._deps = deps
        self._attempts = 0
        self._logs: list[LogEntry] = []
        self._dropped = 0
        self._failure: ElementFailed | None = None
        self._shared: Any = None
        self._events: ElementEvents

    async def run(self) -> Message:
        actor = self._actor
        step = actor._step
        assert step.for_each is not None
        items = await actor._expression("for_each", value_js(step.for_each), self._deps)
        if isinstance(items, Failed):
            return items
        if not isinstance(items, list):
            got = "null" if items is None else type(items).__name__
            message = f"must give an array, got {got}"
            return await actor._expression_failed("for_each", "TypeError", None, message)
        scope = actor._scope
        scope.running[step.name] = (0, None)
        try:
            self._shared = self._share()
        except Exception as exc:  # deps or ctx cannot cross to the sandbox
            error = translate_error(exc, step=step.name, attempt=1)
            return await actor._fail(name_the_value(error, self._deps_and_ctx()), 0, (), ())
        results: list[Any] = [None] * len(items)
        indices = iter(range(len(items)))
        parallel = min(step.max_parallel or DEFAULT_MAX_PARALLEL, len(items))
        async with element_events(scope, step) as self._events, anyio.create_task_group() as tg:
            for _ in range(parallel):
                tg.start_soon(self._serve, indices, items, results, tg.cancel_scope)
        done = (self._attempts, self._kept(), ())
        if self._failure is not None:
            return await actor._fail(self._failure, *done, index=self._failure.index)
        return await actor._complete(results, *done)

    async def _serve(
        self,
        indices: Iterator[int],
        items: list[Any],
        results: list[Any],
        stop: anyio.CancelScope,
    ) -> None:
        for index in indices:
            outcome = await self._element(items[index], index)
            if isinstance(outcome, StepError):
                if self._failure is None:
                    self._failure = ElementFailed(self._actor._step.name, index, outcome)
                stop.cancel()
                return
            results[index] = outcome

    async def _element(self, item: Any, index: int) -> Any:
        """The element's result, or its last error once its attempts are spent."""
        actor = self._actor
        scope, step = actor._scope, actor._step
        retry = step.retry or scope.retry
        attempt = 0
        while True:
            attempt += 1
            self._attempts += 1
            scope.running[step.name] = (self._attempts, scope.running[step.name][1])
            outcome = await actor._attempt(
                self._deps, attempt, [], (item, index), self._shared, self._events.callbacks
            )
            self._keep(outcome.logs)
            if not isinstance(outcome, AttemptFailed):
                return outcome.value
            error = outcome.error
            if not (error.retryable and retry.should_retry(attempt)):
                return error
            delay = retry.delay_after(attempt)
            await actor._wait_to_retry(error, attempt, delay, tuple(outcome.logs), index)

    def _share(self) -> Any:
        """``deps`` and ``ctx`` (but its ``run``) encoded once for every element, when the
        runner can (``RuntimePool.share``): an element then sends only its own inputs."""
        share = getattr(self._actor._scope.runner, "share", None)
        if share is None:
            return None
        return share(self._deps_and_ctx())

    def _deps_and_ctx(self) -> dict[str, Any]:
        common = self._actor._globals(self._deps, 1)
        del common["ctx"]["run"]
        return common

    def _keep(self, lines: Any) -> None:
        for line in lines:
            if len(self._logs) < MAX_KEPT_LINES:
                self._logs.append(line)
            else:
                self._dropped += 1

    def _kept(self) -> tuple[LogEntry, ...]:
        if not self._dropped:
            return tuple(self._logs)
        note = _Line("warn", f"[{self._dropped} console lines of the elements not kept]")
        return (*self._logs, note)


@asynccontextmanager
async def element_events(scope: RunScope, step: Step) -> AsyncIterator[ElementEvents]:
    """An :class:`ElementEvents` whose publisher (if one was needed) ends with the block."""
    async with anyio.create_task_group() as tg:
        events = ElementEvents(scope, step, tg.start_soon)
        try:
            yield events
        except BaseException:  # cancelled: the queued events get a short while
            events.publisher.deadline = anyio.current_time() + FLUSH_TIMEOUT
            raise
        finally:
            events.close()
    if events.dropped:
        logger.warning("element_events_dropped", step=step.name, dropped=events.dropped)


class ElementEvents:
    """The ``step.log`` and ``host.called`` events of every element: each published at
    once when the bus can take it without waiting and nothing is queued, else through
    one queue and one publisher task for all elements (started on the first such event,
    rather than a queue and a task per element attempt).

    Each event goes out after its attempt's ``step.started``; once the elements are
    done, what is queued is published (for at most ``FLUSH_TIMEOUT`` seconds after a
    cancel); past ``MAX_STREAMED_LINES`` queued, events are dropped and counted in a
    warning.
    """

    def __init__(self, scope: RunScope, step: Step, spawn: Callable[..., object]) -> None:
        self._scope, self._step, self._spawn = scope, step, spawn
        self._send, self._receive = anyio.create_memory_object_stream[
            tuple[Announcement, LifecycleEvent]
        ](MAX_STREAMED_LINES)
        self._pending = 0  # queued or being published
        self._started = False
        self._logs = can_stream_logs(scope.runner)
        self._audit = bool(step_api(step, scope.api)) and can_audit(scope.runner)
        self.publisher = anyio.CancelScope(shield=True)
        self.dropped = 0

    def callbacks(self, attempt: int, index: int, announcement: Announcement) -> dict[str, Any]:
        """The ``execute`` callbacks of one attempt of element ``index``."""
        scope = self._scope
        ids: dict[str, Any] = {
            "run_id": scope.run_id,
            "workflow": scope.workflow,
            "step": self._step.name,
            "attempt": attempt,
            "index": index,
        }
        options: dict[str, Any] = {}
        if self._logs:

            def on_log(line: Any) -> None:
                level, text = str(getattr(line, "level", "log")), str(getattr(line, "text", line))
                self._put(announcement, StepLogged(level=level, text=text, **ids))

            options["on_log"] = on_log
        if self._audit:

            def publish(event: LifecycleEvent) -> bool:
                return self._put(announcement, event)

            options["on_host_call"] = host_call_events(
                publish, ids, arguments=scope.audit_arguments
            )
        return options

    def close(self) -> None:
        """No more events: the publisher ends once it has published the queued ones."""
        self._send.close()
        if not self._started:  # no publisher to close its end
            self._receive.close()

    def _put(self, announcement: Announcement, event: LifecycleEvent) -> bool:
        if not self._pending and announcement.published and self._scope.emit_nowait(event):
            return True
        if not self._started:
            self._started = True
            self._spawn(self.publish)
        try:
            self._send.send_nowait((announcement, event))
        except anyio.WouldBlock:
            self.dropped += 1
            return False
        self._pending += 1
        return True

    async def publish(self) -> None:
        with self.publisher, self._receive:
            async for announcement, event in self._receive:
                await announcement.wait()  # after its attempt's step.started
                await self._scope.emit(event)
                self._pending -= 1
