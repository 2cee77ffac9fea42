"""One waiting step (``sleep``, ``sleep_until``, ``wait_for``) on behalf of its actor.

The step works out what it waits for (its *registration*: a wake time, a topic and
match value), records it in the run's store if any (a resumed run waits for what
is left of it, by the wall clock), registers a :class:`~actors._waiters.Waiter`
and awaits it: no worker, no task of its own. ``step.started`` then
``step.waiting`` are published once it is registered, so an event published after
either of them is seen. It completes with the event's payload (``None`` for a
sleep), or fails with :class:`~actors.errors.WaitTimedOut`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio

from actors._events import StepStarted, StepWaiting
from actors._fanout import value_js
from actors._messages import Failed, Message
from actors._waiters import Waiter
from actors._waits import wake_time
from actors.errors import StepError, WaitFailed, WaitTimedOut

if TYPE_CHECKING:
    from actors._actor import StepActor

__all__ = ("Registration", "WaitStep")

Registration = dict[str, Any]  # {"until": Unix time | None, "topic", "match", "value"}


class WaitStep:
    """Wait as the actor's step says, then return what goes downstream."""

    def __init__(self, actor: StepActor, deps: dict[str, Any]) -> None:
        self._actor = actor
        self._deps = deps

    async def run(self) -> Message:
        scope, name = self._actor._scope, self._actor._step.name
        recorded = None if scope.journal is None else scope.journal.waiting(name)
        if _is_registration(recorded):
            return await self._wait(recorded, fresh=False)
        registration = await self._registration()
        if not isinstance(registration, dict):
            return registration
        return await self._wait(registration, fresh=True)

    async def _registration(self) -> Registration | Message:
        """What this step waits for, from its options, ``ctx.event`` and, for
        ``sleep_until``, its expression (evaluated in the sandbox)."""
        actor = self._actor
        step, event = actor._step, actor._scope.event
        if step.sleep is not None:
            return {"until": time.time() + step.sleep, "topic": None, "match": None}
        if step.sleep_until is not None:
            value = await actor._expression("sleep_until", value_js(step.sleep_until), self._deps)
            if isinstance(value, Failed):
                return value
            wake = wake_time(value)
            if isinstance(wake, str):
                return await self._fail(WaitFailed(step.name, wake))
            return {"until": wake, "topic": None, "match": None}
        wait = step.wait_for
        assert wait is not None
        until = None if wait.timeout is None else time.time() + wait.timeout
        registration = {"until": until, "topic": wait.topic, "match": wait.match}
        if wait.match is None:
            return registration
        if not (isinstance(event, Mapping) and wait.match in event):
            reason = f"wait_for: ctx.event has no field {wait.match!r} to match"
            return await self._fail(WaitFailed(step.name, reason))
        return {**registration, "value": event[wait.match]}

    async def _wait(self, registration: Registration, *, fresh: bool) -> Message:
        actor = self._actor
        scope, name = actor._scope, actor._step.name
        waits = scope.waits
        if waits is None:
            return await self._fail(WaitFailed(name, "this engine does not serve waits"))
        until, topic = registration["until"], registration["topic"]
        waiter = Waiter(scope.run_id, topic, registration["match"], registration.get("value"))
        # (the wall clock read first: the deadline errs late, never early)
        deadline = None if until is None else _deadline(until - time.time())
        waits.register(waiter, deadline)  # before step.waiting is out: no event is missed
        try:
            actor._began = time.monotonic()
            scope.running[name] = (1, actor._began)
            if fresh and scope.journal is not None:
                await scope.journal.wait_started(name, registration)
            async with waits.lending(scope.run_id):
                await self._announce(waiter, until)
                await waiter.done.wait()
        finally:
            waits.unregister(waiter)
        if waiter.expired and topic is not None:
            wait = actor._step.wait_for
            timeout = wait.timeout if wait is not None and wait.timeout is not None else 0.0
            return await self._fail(WaitTimedOut(name, topic, timeout))
        return await actor._complete(None if waiter.expired else waiter.payload, 1, (), ())

    async def _announce(self, waiter: Waiter, until: float | None) -> None:
        """``step.started``, then ``step.waiting`` saying what for and until when."""
        scope, name = self._actor._scope, self._actor._step.name
        run_id, workflow = scope.run_id, scope.workflow
        await scope.emit(StepStarted(run_id=run_id, workflow=workflow, step=name, attempt=1))
        waiting = StepWaiting(
            run_id=run_id,
            workflow=workflow,
            step=name,
            attempt=1,
            waits_for=waiter.topic,
            match=waiter.match,
            value=waiter.value,
            until=until,
        )
        await scope.emit(waiting)

    async def _fail(self, error: StepError) -> Message:
        actor = self._actor
        actor._scope.running.setdefault(actor._step.name, (1, None))
        return await actor._fail(error, 1, (), ())


def _deadline(remaining: float) -> float:
    return anyio.current_time() + remaining


def _is_registration(value: object) -> TypeGuard[Registration]:
    return isinstance(value, dict) and "until" in value and "topic" in value
