"""Cancel at random points: runs cancelled while queued, running, or between steps."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio

from actors import Engine, EngineStatistics, RunResult
from runtime_pool import RuntimePool

from ._shape import HostCalls, fan_workflow
from ._storms import engine_problems

__all__ = ("CancelReport", "cancel_storm")


@dataclass(slots=True)
class CancelReport:
    runs: int
    seconds: float
    statuses: Counter[str]
    step_statuses: Counter[str]
    host_calls: int
    engine: EngineStatistics
    workers_killed: int = 0
    late_calls: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = [f"host call after cancel() returned: {c}" for c in self.late_calls[:5]]
        found += self.mismatches[:5]
        if self.workers_killed:  # a cancel is answered by the worker, never by a kill
            found.append(f"{self.workers_killed} workers killed as unresponsive")
        if sum(self.statuses.values()) != self.runs:
            found.append(f"{self.runs - sum(self.statuses.values())} runs lost")
        return found + engine_problems(self.engine, self.runs)


def _result_problems(n: int, result: RunResult) -> list[str]:
    """A run cancelled part-way: completed steps stay completed, none failed, the rest
    are cancelled (they had started) or skipped (they had not)."""
    statuses = {name: step.status for name, step in result.steps.items()}
    if result.status == "completed":
        return [] if set(statuses.values()) == {"completed"} else [f"run {n}: {statuses}"]
    if result.status != "cancelled":
        return [f"run {n} ended {result.status}: {statuses}"]
    if set(statuses.values()) - {"completed", "cancelled", "skipped"} or all(
        s == "completed" for s in statuses.values()
    ):
        return [f"cancelled run {n}: {statuses}"]
    return []


async def cancel_storm(
    *, runs: int, within: float = 1.0, io_delay: float = 0.005, seed: int = 9
) -> CancelReport:
    """Start ``runs`` runs at once and cancel each after a random delay in ``[0, within)``.

    Each host call checks that its run's ``cancel()`` has not returned yet.
    """
    cancelled: set[int] = set()
    late: list[str] = []

    def check(n: int, step: str) -> None:
        if n in cancelled:
            late.append(f"run {n} step {step}")

    host = HostCalls(io_delay=io_delay, before_call=check)
    wf = fan_workflow(timeout=10.0, attempts=1)
    delays = random.Random(seed)
    results: dict[int, RunResult] = {}
    began = time.perf_counter()
    pool = RuntimePool()
    async with Engine(pool=pool, api={"call": host.call}) as engine:

        async def one(n: int, delay: float) -> None:
            handle = await engine.start(wf, event={"n": n})
            await anyio.sleep(delay)
            results[n] = await handle.cancel()
            cancelled.add(n)

        async with anyio.create_task_group() as tg:
            for n in range(runs):
                tg.start_soon(one, n, delays.uniform(0, within))
        stats = engine.statistics()
        killed = pool.statistics().unresponsive
    return CancelReport(
        runs=runs,
        seconds=time.perf_counter() - began,
        statuses=Counter(r.status for r in results.values()),
        step_statuses=Counter(s.status for r in results.values() for s in r.steps.values()),
        host_calls=host.calls,
        engine=stats,
        workers_killed=killed,
        late_calls=late,
        mismatches=[p for n, r in results.items() for p in _result_problems(n, r)],
    )
