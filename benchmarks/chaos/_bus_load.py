"""The bus under load: a ``block`` subscriber and a deliberately slow ``drop_oldest`` one
watch many concurrent runs; order per run, exact drop counts, bounded publisher waits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskStatus

from actors import BusEvent, Engine, EngineStatistics, EventBus, LifecycleEvent, Subscription
from runtime_pool import RuntimePool

from ._shape import HostCalls, fan_workflow
from ._storms import engine_problems, run_all

__all__ = ("BusLoadReport", "bus_load", "causal_problems")

_FINAL = ("run.completed", "run.failed", "run.cancelled")
_EDGES = [("a", b) for b in ("b1", "b2", "b3")] + [(b, "c") for b in ("b1", "b2", "b3")]


class TimedBus(EventBus):
    """An event bus that records how long each publish waited."""

    max_wait = 0.0

    async def publish_event(self, event: BusEvent) -> None:
        began = time.monotonic()
        await super().publish_event(event)
        self.max_wait = max(self.max_wait, time.monotonic() - began)


def _key(event: LifecycleEvent) -> str:
    if event.step is None:
        return "run.final" if event.topic in _FINAL else event.topic
    phase = "start" if event.topic == "step.started" else "end"
    return f"{event.step}.{phase}.{event.attempt}"


def causal_problems(events: list[BusEvent]) -> list[str]:
    """Check each run's events, in the order delivered, against the order they were
    caused in (only between events that were both delivered: drops remove, never swap)."""
    position: dict[str, dict[str, int]] = {}
    for index, event in enumerate(events):
        if isinstance(event, LifecycleEvent):
            position.setdefault(event.run_id, {})[_key(event)] = index
    found = []
    for run_id, seen in position.items():
        first, last = min(seen.values()), max(seen.values())
        if seen.get("run.started", first) != first or seen.get("run.final", last) != last:
            found.append(f"run {run_id}: run.started/final out of place")
        for key, at in seen.items():
            if ".start." in key and seen.get(key.replace(".start.", ".end."), at) < at:
                found.append(f"run {run_id}: {key} after its end")
        for up, down in _EDGES:
            ends = [i for k, i in seen.items() if k.startswith(f"{up}.end.")]
            starts = [i for k, i in seen.items() if k.startswith(f"{down}.")]
            if ends and starts and max(ends) > min(starts):
                found.append(f"run {run_id}: {down} began before {up} ended")
    return found


@dataclass(slots=True)
class BusLoadReport:
    runs: int
    seconds: float
    published: int
    full_received: int
    full_dropped: int
    slow_received: int
    slow_dropped: int
    block_timeout: float
    max_publish_wait: float
    engine: EngineStatistics
    wait_margin: float = 1.0
    order: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = list(self.order[:5])
        if self.full_received + self.full_dropped != self.published:
            found.append(f"block: {self.full_received} + {self.full_dropped} != {self.published}")
        if self.slow_received + self.slow_dropped != self.published:
            found.append(f"slow: {self.slow_received} + {self.slow_dropped} != {self.published}")
        if self.max_publish_wait > self.block_timeout + self.wait_margin:
            found.append(f"a publish waited {self.max_publish_wait:.2f} s")
        return found + engine_problems(self.engine, self.runs)


async def _drain(
    sub: Subscription, into: list[BusEvent], pause: float, *, task_status: TaskStatus[None]
) -> None:
    task_status.started()
    async for event in sub:
        into.append(event)
        if pause:
            await anyio.sleep(pause)


async def bus_load(
    *, runs: int, block_timeout: float = 1.0, slow_pause: float = 0.002, slow_buffer: int = 64
) -> BusLoadReport:
    """``runs`` concurrent runs of the fan workflow watched by two subscribers of ``*``."""
    bus = TimedBus()
    host = HostCalls(io_delay=0.001)
    full: list[BusEvent] = []
    slow: list[BusEvent] = []
    began = time.perf_counter()
    async with Engine(pool=RuntimePool(), bus=bus, api={"call": host.call}) as engine:
        block_sub = bus.open_subscription("*", policy="block", block_timeout=block_timeout)
        slow_sub = bus.open_subscription("*", policy="drop_oldest", max_buffer=slow_buffer)
        async with anyio.create_task_group() as tg:
            await tg.start(_drain, block_sub, full, 0.0)
            await tg.start(_drain, slow_sub, slow, slow_pause)
            await run_all(engine, fan_workflow(timeout=10.0, attempts=1), runs)
            for _ in iter(int, 1):  # until both have read what is queued
                if block_sub.statistics().queued == slow_sub.statistics().queued == 0:
                    break
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        block_sub.close()
        slow_sub.close()
        stats = engine.statistics()
    full_stats, slow_stats = block_sub.statistics(), slow_sub.statistics()
    return BusLoadReport(
        runs=runs,
        seconds=time.perf_counter() - began,
        published=bus.statistics().published,
        full_received=len(full),
        full_dropped=full_stats.dropped,
        slow_received=len(slow),
        slow_dropped=slow_stats.dropped,
        block_timeout=block_timeout,
        max_publish_wait=bus.max_wait,
        engine=stats,
        order=causal_problems(full) + causal_problems(slow),
    )
