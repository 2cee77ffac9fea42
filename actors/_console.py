"""A step's console lines, live: ``step.log`` events while the step runs.

Used when the runner can stream console lines (its ``execute`` takes ``on_log=``,
a synchronous callback called with each line as the script writes it). Lines go
through a queue (bounded by that cap) to a task that publishes them, so a chatty
script never blocks the runner; at most ``MAX_STREAMED_LINES`` lines per attempt
are published, and a final line says how many were dropped past that.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from actors._events import LifecycleEvent, StepLogged

__all__ = ("MAX_STREAMED_LINES", "OnLog", "can_stream_logs", "runner_accepts", "streamed_console")

# Above the pool's own cap (max_log_lines, 1000 by default, plus its marker), so a
# default pool's marker, which counts what it dropped, is published too.
MAX_STREAMED_LINES = 10_000
FLUSH_TIMEOUT = 1.0  # how long a cancelled step's queued lines may take to be published

OnLog = Callable[[Any], None]


def can_stream_logs(runner: Any) -> bool:
    """Whether ``runner.execute`` accepts ``on_log=`` (the optional streaming capability)."""
    return runner_accepts(runner, "on_log")


def runner_accepts(runner: Any, option: str) -> bool:
    """Whether ``runner.execute`` takes the optional keyword ``option``."""
    key = (type(runner), option)
    known = _ACCEPTS.get(key)
    if known is None:
        execute = getattr(type(runner), "execute", None)
        try:
            known = execute is not None and option in inspect.signature(execute).parameters
        except (TypeError, ValueError):
            known = False
        _ACCEPTS[key] = known
    return known


_ACCEPTS: dict[tuple[type[Any], str], bool] = {}  # a cache: signatures do not change


@asynccontextmanager
async def streamed_console(
    emit: Callable[[LifecycleEvent], Awaitable[None]],
    *,
    run_id: str,
    workflow: str,
    step: str,
    attempt: int,
    keep: list[Any] | None = None,
    index: int | None = None,
) -> AsyncIterator[OnLog]:
    """Yield the ``on_log`` callback; every line it takes is published before exit
    (when the step is cancelled, for at most ``FLUSH_TIMEOUT`` seconds more).

    The first ``MAX_STREAMED_LINES`` lines are also appended to ``keep``.
    """
    # Room for every line up to the cap: a burst waits here rather than being dropped.
    send, receive = anyio.create_memory_object_stream[StepLogged](MAX_STREAMED_LINES)
    taken = dropped = 0

    def on_log(line: Any) -> None:
        nonlocal taken, dropped
        event = StepLogged(
            run_id=run_id,
            workflow=workflow,
            step=step,
            attempt=attempt,
            index=index,
            level=str(getattr(line, "level", "log")),
            text=str(getattr(line, "text", line)),
            timestamp=float(getattr(line, "timestamp", None) or time.time()),
        )
        if keep is not None and len(keep) < MAX_STREAMED_LINES:
            keep.append(line)
        if taken >= MAX_STREAMED_LINES:
            dropped += 1
            return
        try:
            send.send_nowait(event)
            taken += 1
        except anyio.WouldBlock:
            dropped += 1

    # Shielded, so lines queued when the step is cancelled still go out; bounded then.
    publisher = anyio.CancelScope(shield=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_publish, receive, emit, publisher)
        try:
            yield on_log
        except BaseException:  # cancelled, or failed: the last lines get a short while
            publisher.deadline = anyio.current_time() + FLUSH_TIMEOUT
            raise
        finally:
            send.close()  # the publisher drains what is queued, then ends
    if dropped:
        text = f"[{dropped} console line{'s' * (dropped != 1)} dropped]"
        await emit(
            StepLogged(
                run_id=run_id,
                workflow=workflow,
                step=step,
                attempt=attempt,
                level="warn",
                text=text,
            )
        )


async def _publish(
    receive: MemoryObjectReceiveStream[StepLogged],
    emit: Callable[[LifecycleEvent], Awaitable[None]],
    scope: anyio.CancelScope,
) -> None:
    with scope, receive:
        async for event in receive:
            await emit(event)
