"""Fault storm and worker kill storm: many concurrent runs while things go wrong.

Each case returns a report whose ``problems()`` lists every broken guarantee
(empty when all held) and whose fields are the figures.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio

from actors import Engine, EngineStatistics, RunResult, Workflow
from runtime_pool import RuntimePool

from ._shape import (
    CALLING_STEPS,
    Fate,
    FaultPlan,
    HostCalls,
    RetryLog,
    expected_output,
    fan_workflow,
    fate_counts,
    observed_fates,
)

__all__ = ("FaultStormReport", "KillStormReport", "fault_storm", "kill_storm", "run_all")


async def run_all(engine: Engine, wf: Workflow, count: int) -> dict[int, RunResult]:
    """Start ``count`` runs at once (``ctx.event.n`` numbers them); return every result."""
    results: dict[int, RunResult] = {}

    async def one(n: int) -> None:
        results[n] = await engine.run(wf, event={"n": n})

    async with anyio.create_task_group() as tg:
        for n in range(count):
            tg.start_soon(one, n)
    return results


def engine_problems(stats: EngineStatistics, runs: int) -> list[str]:
    if (stats.active, stats.waiting, stats.finished) != (0, 0, runs):
        return [f"engine statistics after the runs: {stats}"]
    return []


@dataclass(slots=True)
class FaultStormReport:
    runs: int
    seconds: float
    statuses: Counter[str]
    expected_statuses: Counter[str]
    predicted_share: float
    fates: Counter[Fate]
    host_calls: int
    hangs_started: int
    hangs_cancelled: int
    engine: EngineStatistics
    mismatches: list[str] = field(default_factory=list)

    @property
    def completed_share(self) -> float:
        return self.statuses["completed"] / self.runs

    def problems(self) -> list[str]:
        found = list(self.mismatches[:5])
        if sum(self.statuses.values()) != self.runs:
            found.append(f"{self.runs - sum(self.statuses.values())} runs lost")
        if self.statuses != self.expected_statuses:
            found.append(f"statuses {self.statuses} != expected {self.expected_statuses}")
        if self.hangs_started != self.hangs_cancelled:
            found.append(f"{self.hangs_started - self.hangs_cancelled} hung host calls left")
        return found + engine_problems(self.engine, self.runs)


async def fault_storm(
    *,
    runs: int,
    fault_rate: float = 0.05,
    hang_rate: float = 0.01,
    attempts: int = 2,
    timeout: float = 1.0,
    io_delay: float = 0.001,
    pool: RuntimePool | None = None,
) -> FaultStormReport:
    """``runs`` concurrent runs; host calls fail or hang at the given rates."""
    plan = FaultPlan(fault_rate=fault_rate, hang_rate=hang_rate)
    host = HostCalls(plan=plan, io_delay=io_delay)
    wf = fan_workflow(timeout=timeout, attempts=attempts)
    log = RetryLog()
    began = time.perf_counter()
    async with Engine(pool=pool or RuntimePool(), api={"call": host.call}) as engine:
        async with anyio.create_task_group() as tg:
            await tg.start(log.collect, engine)
            results = await run_all(engine, wf, runs)
            tg.cancel_scope.cancel()
        stats = engine.statistics()
    seconds = time.perf_counter() - began
    fates = observed_fates(results, log.events)
    expected = {n: plan.expected(n, attempts) for n in range(runs)}
    mismatches = [
        f"run {n}: {results[n].status} {fates[n]} != expected {status} {want}"
        for n, (status, want) in expected.items()
        if n in results and (results[n].status, fates[n]) != (status, want)
    ]
    return FaultStormReport(
        runs=runs,
        seconds=seconds,
        statuses=Counter(r.status for r in results.values()),
        expected_statuses=Counter(status for status, _ in expected.values()),
        predicted_share=plan.completed_share(attempts),
        fates=fate_counts(fates),
        host_calls=host.calls,
        hangs_started=host.hangs_started,
        hangs_cancelled=host.hangs_cancelled,
        engine=stats,
        mismatches=mismatches,
    )


@dataclass(slots=True)
class KillStormReport:
    runs: int
    seconds: float
    kills: int
    statuses: Counter[str]
    fates: Counter[Fate]
    crashes: int
    size: int
    live_after: int
    engine: EngineStatistics
    failed_steps: int = 0  # steps that failed: each was killed on every attempt
    reruns: int = 0  # runs the pool ran again because their worker died before a host call
    mismatches: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = list(self.mismatches[:5])
        if sum(self.statuses.values()) != self.runs:
            found.append(f"{self.runs - sum(self.statuses.values())} runs lost")
        if set(self.fates) - {"ok", "crash"}:
            found.append(f"attempts failed for other reasons than a kill: {self.fates}")
        if self.live_after != self.size:
            found.append(f"pool has {self.live_after} of {self.size} workers after the storm")
        return found + engine_problems(self.engine, self.runs)


def _attempt_problems(
    n: int, result: RunResult, fates: dict[tuple[str, int], Fate], most: int
) -> list[str]:
    """Each step ran attempts 1..k: all but the last failed; a failure after 1..k-1 was
    retried; only a step that used every attempt may fail; the output is right."""
    found = []
    for name in CALLING_STEPS:
        tried = sorted(a for (step, a) in fates if step == name)
        if tried != list(range(1, len(tried) + 1)):
            found.append(f"run {n} step {name}: attempts {tried}")
        failed_early = [a for a in tried[:-1] if fates[name, a] == "ok"]
        step = result.steps[name]
        if failed_early or (step.status == "failed" and step.attempts != most):
            found.append(f"run {n} step {name}: {step.status} after {tried}: {step.error!r}")
    if result.status == "completed" and result.output != expected_output(n):
        found.append(f"run {n}: output {result.output!r}")
    return found


async def kill_storm(
    *, runs: int, every: float = 0.2, attempts: int = 2, io_delay: float = 0.005
) -> KillStormReport:
    """``runs`` concurrent runs while a random worker is killed (SIGKILL) every ``every`` s."""
    called = [anyio.Event()]  # set by the next host call
    host = HostCalls(io_delay=io_delay, before_call=lambda n, step: called[0].set())
    wf = fan_workflow(timeout=10.0, attempts=attempts)
    log = RetryLog()
    kills = 0
    began = time.perf_counter()
    async with RuntimePool() as pool:
        async with Engine(pool=pool, api={"call": host.call}) as engine:

            async def killer() -> None:
                nonlocal kills
                chooser = random.Random(9)
                while True:
                    # each kill once a step made a host call since the last one (a storm
                    # may be over within `every`), of a worker that serves runs
                    await called[0].wait()
                    called[0] = anyio.Event()
                    pids = pool.worker_pids(state="busy")
                    if pids:
                        with contextlib.suppress(ProcessLookupError):  # it died meanwhile
                            os.kill(chooser.choice(sorted(pids)), signal.SIGKILL)
                            kills += 1
                    await anyio.sleep(every)

            async with anyio.create_task_group() as tg:
                await tg.start(log.collect, engine)
                tg.start_soon(killer)
                results = await run_all(engine, wf, runs)
                tg.cancel_scope.cancel()
            stats = engine.statistics()
        seconds = time.perf_counter() - began
        live_after = await _wait_for_full_pool(pool)
        crashes, reruns = pool.statistics().crashes, pool.statistics().reruns
    fates = observed_fates(results, log.events)
    mismatches = [
        problem
        for n, result in results.items()
        for problem in _attempt_problems(n, result, fates[n], attempts)
    ]
    return KillStormReport(
        runs=runs,
        seconds=seconds,
        kills=kills,
        statuses=Counter(r.status for r in results.values()),
        fates=fate_counts(fates),
        crashes=crashes,
        size=pool.size,
        live_after=live_after,
        engine=stats,
        failed_steps=sum(
            r.steps[name].status == "failed" for r in results.values() for name in CALLING_STEPS
        ),
        reruns=reruns,
        mismatches=mismatches,
    )


async def _wait_for_full_pool(pool: RuntimePool, limit: float = 30.0) -> int:
    """The number of live workers once it is back to ``size`` (or after ``limit`` s)."""
    with anyio.move_on_after(limit):
        for _ in iter(int, 1):  # until full or out of time
            if pool.statistics().live == pool.size:
                break
            await anyio.sleep(0.05)
    return pool.statistics().live
