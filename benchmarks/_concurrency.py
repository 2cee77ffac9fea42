"""Many runs per worker (issue 8): the default pool against the same pool with concurrency=1.

Each case opens all of its contenders on its shape, warms each with one untimed
batch, then times ``reps`` batches taking turns (with a short untimed pause before
each), so load that comes and goes on a shared machine hits every side alike. Per
batch: the wall time, the CPU of this process and of the pool's workers, and the
peak resident memory of this process plus the workers (all read from ``/proc``).
``concurrency=`` is passed only when ``RuntimePool`` accepts it: without it both
engine rows are the same kind of pool (one run per worker), which shows the noise
of the measurement.
"""

from __future__ import annotations

import inspect
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from runtime_pool import RuntimePool

from ._contenders import Contender, Run, engine_contender, seed_contender
from ._measure import Case, Sample, check_outputs, run_batch
from ._procfs import PeakRss, cpu_seconds, track_peak_rss
from ._report import ENGINE
from ._shapes import chain, diamond_io, seed_dag, seed_workflow

__all__ = (
    "ONE",
    "ConcurrencyPlan",
    "Timed",
    "full_concurrency_plan",
    "measure_concurrency",
    "open_engines",
    "smoke_concurrency_plan",
    "supports_concurrency",
)

ONE, SEED = "engine-c1", "seed"
ENGINES = (ENGINE, ONE)
# Pause before each timed batch (untimed): the side that ran last has its workers park
# (after 20 ms idle) instead of spinning a core each through the next side's batch.
SETTLE = 0.1


def supports_concurrency() -> bool:
    """True if ``RuntimePool`` takes a ``concurrency=`` option (runs per worker at once)."""
    return "concurrency" in inspect.signature(RuntimePool).parameters


@dataclass(frozen=True, slots=True)
class Timed:
    """One contender on one case: its timings, CPU per batch and peak memory."""

    sample: Sample
    host_cpu: float  # median CPU seconds of this process per batch
    worker_cpu: float | None  # median CPU seconds of the pool's workers per batch
    peak: PeakRss  # over the timed batches


@dataclass(frozen=True, slots=True)
class ConcurrencyPlan:
    seed_io: Case  # the seed workflow with its 0.1 s fetch_data: total time
    io_dag: Case  # 1-3-1 steps each awaiting a 10 ms host call: runs/s, peak memory
    seed_dag: Case  # the seed DAG, fetch_data answering at once: runs/s
    chain: Case  # trivial chain: per step, against the seed-style baseline

    def cases(self) -> tuple[tuple[Case, tuple[str, ...]], ...]:
        """Each case with the keys of the contenders it runs."""
        return (
            (self.seed_io, ENGINES),
            (self.io_dag, ENGINES),
            (self.seed_dag, ENGINES),
            (self.chain, (*ENGINES, SEED)),
        )


def _io_limit(runs: int, supported: bool) -> dict[str, tuple[int, str]]:
    """One run per worker needs ~N x 5 x 11 ms / workers per batch: time fewer runs."""
    why = "one run per worker at a time, so a batch of 1000 would take ~30 s"
    limit = {ONE: (runs, why)}
    if not supported:
        limit[ENGINE] = (runs, why)
    return limit


def full_concurrency_plan(supported: bool) -> ConcurrencyPlan:
    return ConcurrencyPlan(
        seed_io=Case(seed_workflow(), 3, 50),
        io_dag=Case(diamond_io(0.01), 3, 1000, limit=_io_limit(100, supported)),
        seed_dag=Case(seed_dag(), 10, 100),
        chain=Case(chain(100), 10),
    )


def smoke_concurrency_plan(supported: bool) -> ConcurrencyPlan:
    return ConcurrencyPlan(
        seed_io=Case(seed_workflow(), 1, 2),
        io_dag=Case(diamond_io(0.01), 1, 10),
        seed_dag=Case(seed_dag(), 1, 10),
        chain=Case(chain(6), 1),
    )


def _pool(*, one: bool, supported: bool) -> RuntimePool:
    options: dict[str, Any] = {"concurrency": 1} if one and supported else {}
    return RuntimePool(**options)  # not every checkout has the option


def _label(pool: RuntimePool, *, one: bool, supported: bool) -> str:
    if not supported:
        same = "; the same as the row above" if one else ""
        return f"engine, default pool ({pool.size} workers; no concurrency option{same})"
    which = "concurrency=1" if one else "default pool"
    each = getattr(pool, "concurrency", "?")
    return f"engine, {which} ({pool.size} workers, concurrency {each})"


@asynccontextmanager
async def open_engines(supported: bool) -> AsyncIterator[list[Contender]]:
    """The two engine contenders (keys ``engine`` and ``engine-c1``), each on its own pool."""
    async with AsyncExitStack() as stack:
        found = []
        for key, one in ((ENGINE, False), (ONE, True)):
            pool = await stack.enter_async_context(_pool(one=one, supported=supported))
            found.append(engine_contender(pool, _label(pool, one=one, supported=supported), key))
        yield found


async def measure_concurrency(plan: ConcurrencyPlan, engines: list[Contender]) -> list[Timed]:
    """Time every case of ``plan``, contenders taking turns within each case."""
    by_key = {c.key: c for c in [*engines, seed_contender()]}
    found: list[Timed] = []
    for case, keys in plan.cases():
        found += await _time_case(case, [by_key[k] for k in keys])
    return found


def _runs(case: Case, contender: Contender) -> tuple[int, str | None]:
    if contender.key in case.limit:
        runs, why = case.limit[contender.key]
        return runs, f"{runs} concurrent runs, not {case.concurrency}: {why}"
    return case.concurrency, None


@dataclass(slots=True)
class _Log:
    times: list[float]
    host: list[float]
    workers: list[float]
    peak: PeakRss


async def _time_case(case: Case, contenders: list[Contender]) -> list[Timed]:
    expected: list[Any] = []
    logs = {c.key: _Log([], [], [], PeakRss()) for c in contenders}
    async with AsyncExitStack() as stack:
        runs = {c.key: await stack.enter_async_context(c.open(case.shape)) for c in contenders}
        for c in contenders:
            if c.warm:
                check_outputs(case, c, await run_batch(runs[c.key], _runs(case, c)[0]), expected)
        for _ in range(case.reps):
            for c in contenders:
                await anyio.sleep(SETTLE)
                await _timed_batch(case, c, runs[c.key], expected, logs[c.key])
    return [_timed(case, c, logs[c.key]) for c in contenders]


async def _timed_batch(
    case: Case, contender: Contender, run: Run, expected: list[Any], log: _Log
) -> None:
    pool = contender.pool
    workers = pool.worker_pids if pool is not None else tuple
    host_before, workers_before = cpu_seconds((os.getpid(),)), cpu_seconds(workers())
    async with track_peak_rss(workers) as peak:
        started = time.perf_counter()
        outputs = await run_batch(run, _runs(case, contender)[0])
        log.times.append(time.perf_counter() - started)
    log.host.append(cpu_seconds((os.getpid(),)) - host_before)
    log.workers.append(max(cpu_seconds(workers()) - workers_before, 0.0))
    if peak.total > log.peak.total:
        log.peak = peak
    check_outputs(case, contender, outputs, expected)


def _timed(case: Case, contender: Contender, log: _Log) -> Timed:
    runs, note = _runs(case, contender)
    sample = Sample(case, contender, tuple(log.times), runs, note)
    worker_cpu = statistics.median(log.workers) if contender.pool is not None else None
    timed = Timed(sample, statistics.median(log.host), worker_cpu, log.peak)
    print(
        f"  {case.title:58} {contender.key:9} x{runs:<5} median {sample.median * 1e3:9.1f} ms"
        f"  {sample.runs_per_second:8.1f} runs/s  per step {sample.per_step * 1e3:7.3f} ms",
        file=sys.stderr,
        flush=True,
    )
    return timed
