"""Capabilities and audit: which host functions a step may call, and what it called.

A step's ``api`` list limits the host functions it sees (checked against the
engine's when a run starts). When the runner reports host calls (its ``execute``
takes ``on_host_call=``), each call becomes a ``host.called`` event, published by
a task beside the attempt through a bounded queue, so a host call never waits for
the bus; the queue is drained before the attempt's outcome is published.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from actors._console import runner_accepts
from actors._events import HostCalled, LifecycleEvent
from actors._log import get_logger
from actors._workflow import Step, Workflow
from actors.errors import UnknownHostFunction

__all__ = ("MAX_QUEUED_CALLS", "audited_calls", "can_audit", "check_capabilities", "step_api")

logger = get_logger(__name__)

MAX_QUEUED_CALLS = 10_000  # host.called events waiting for the bus, per attempt
FLUSH_TIMEOUT = 1.0  # how long a cancelled attempt's queued events may take to go out

OnHostCall = Callable[[Any], None]


def check_capabilities(workflow: Workflow, api: Mapping[str, Any]) -> None:
    """Raise :class:`UnknownHostFunction` for the first ``api`` name the engine lacks."""
    for step in workflow.steps.values():
        for name in step.api or ():
            if name not in api:
                raise UnknownHostFunction(step.name, name, workflow=workflow.name)


def step_api(step: Step, api: Mapping[str, Callable[..., Any]]) -> Mapping[str, Any]:
    """The host functions ``step`` sees: its ``api`` list, or all of them. A listed
    name the engine lacks (a run resumed by an engine without it) is left out: the
    step's JS then fails with a ReferenceError naming it."""
    if step.api is None:
        return api
    return {name: api[name] for name in step.api if name in api}


def can_audit(runner: Any) -> bool:
    """Whether ``runner.execute`` accepts ``on_host_call=``."""
    return runner_accepts(runner, "on_host_call")


@asynccontextmanager
async def audited_calls(
    emit: Callable[[LifecycleEvent], Awaitable[None]],
    *,
    run_id: str,
    workflow: str,
    step: str,
    attempt: int,
    arguments: bool,
    index: int | None = None,
) -> AsyncIterator[OnHostCall]:
    """Yield the ``on_host_call`` callback; its events are all published before exit."""
    send, receive = anyio.create_memory_object_stream[HostCalled](MAX_QUEUED_CALLS)
    dropped = 0

    def on_host_call(call: Any) -> None:
        nonlocal dropped
        event = HostCalled(
            run_id=run_id,
            workflow=workflow,
            step=step,
            attempt=attempt,
            index=index,
            function=call.function,
            duration=call.duration,
            error=call.error,
            arguments=tuple(call.arguments) if arguments else None,
        )
        try:
            send.send_nowait(event)
        except anyio.WouldBlock:
            dropped += 1

    publisher = anyio.CancelScope(shield=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_publish, receive, emit, publisher)
        try:
            yield on_host_call
        except BaseException:
            publisher.deadline = anyio.current_time() + FLUSH_TIMEOUT
            raise
        finally:
            send.close()
    if dropped:
        logger.warning("host_called_events_dropped", run_id=run_id, step=step, dropped=dropped)


async def _publish(
    receive: MemoryObjectReceiveStream[HostCalled],
    emit: Callable[[LifecycleEvent], Awaitable[None]],
    scope: anyio.CancelScope,
) -> None:
    with scope, receive:
        async for event in receive:
            await emit(event)
