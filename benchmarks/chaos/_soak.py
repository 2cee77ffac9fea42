"""Soak: many runs, a few dozen at a time; memory stays flat and nothing is left behind."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from actors import Engine, EngineStatistics, Workflow
from runtime_pool import RuntimePool

from .._procfs import rss
from ._storms import engine_problems

__all__ = ("Census", "SoakReport", "census", "soak")

MiB = 2**20


@dataclass(frozen=True, slots=True)
class Census:
    """What this process holds: asyncio tasks, threads, open fds, child processes."""

    tasks: int
    threads: int
    fds: int
    children: int


def _children() -> int:
    me, found = str(os.getpid()), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    found += stat.read().rsplit(b")", 1)[1].split()[1].decode() == me
            except OSError:
                continue
    return found


def _threads() -> int:
    """Threads, less anyio's idle worker-thread cache (kept by the event loop for the
    next ``to_thread`` call and stopped by anyio, not by the engine); busy ones count."""
    count = 0
    for thread in threading.enumerate():
        idle = getattr(thread, "idle_workers", None)
        count += not (type(thread).__name__ == "WorkerThread" and idle and thread in idle)
    return count


def census() -> Census:
    return Census(
        tasks=len(asyncio.all_tasks()),
        threads=_threads(),
        fds=len(os.listdir("/proc/self/fd")),
        children=_children(),
    )


async def settled_census(expected: Census, limit: float = 5.0) -> Census:
    """The census once it equals ``expected``, or after ``limit`` s: threads that are
    ending (asyncio's ``waitpid`` thread of a worker that just exited) get to end."""
    with anyio.move_on_after(limit):
        for _ in iter(int, 1):  # until settled or out of time
            if census() == expected:
                break
            await anyio.sleep(0.01)
    return census()


@dataclass(slots=True)
class SoakReport:
    runs: int
    concurrency: int
    seconds: float
    completed: int
    host_rss_warm: int
    host_rss_end: int
    worker_rss_warm: int
    worker_rss_end: int
    before: Census
    after: Census
    engine: EngineStatistics
    rss_budget: int = 10 * MiB
    worker_budget: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def host_growth(self) -> int:
        return self.host_rss_end - self.host_rss_warm

    def problems(self) -> list[str]:
        found = []
        if self.completed != self.runs:
            found.append(f"{self.runs - self.completed} of {self.runs} runs did not complete")
        if self.host_growth >= self.rss_budget:
            found.append(f"host RSS grew {self.host_growth / MiB:.1f} MiB after warm-up")
        if self.worker_budget and self.worker_rss_end > self.worker_budget:
            found.append(f"worker RSS {self.worker_rss_end / MiB:.1f} MiB over its bound")
        # Fewer after is no leak: a thread of an earlier case (asyncio's waitpid thread of
        # a killed worker) may end during the soak.
        if any(getattr(self.after, f) > getattr(self.before, f) for f in Census.__slots__):
            found.append(f"left behind: before {self.before}, after {self.after}")
        return found + engine_problems(self.engine, self.runs)


def soak_workflow() -> Workflow:
    wf = Workflow("soak")
    wf.add_step("a", js="return await call(ctx.event.n);")
    wf.add_step("b", js="return deps.a + 1;", after=["a"])
    return wf


def _host_call(sync: bool) -> Callable[[int], Any]:
    if sync:  # a plain function: the pool runs it in a worker thread

        def call_sync(n: int) -> int:
            return n

        return call_sync

    async def call(n: int) -> int:
        await anyio.lowlevel.checkpoint()
        return n

    return call


async def soak(
    *,
    runs: int,
    concurrency: int = 50,
    warmup: int | None = None,
    worker_budget: int = 0,
    sync_host: bool = False,
) -> SoakReport:
    """``runs`` two-step runs, ``concurrency`` at a time; RSS after ``warmup`` runs and at
    the end; the census of tasks, threads, fds and processes before and after.
    ``sync_host``: the host function is a plain (threaded) function, not async."""
    warmup = warmup if warmup is not None else max(concurrency, runs // 10)
    call = _host_call(sync_host)

    wf, pending = soak_workflow(), iter(range(runs))
    completed, warm = 0, (0, 0)
    before, began = census(), time.perf_counter()
    async with Engine(pool=(pool := RuntimePool()), api={"call": call}) as engine:

        async def worker() -> None:
            nonlocal completed, warm
            for n in pending:
                result = await engine.run(wf, event={"n": n})
                completed += result.status == "completed" and result.output == n + 1
                if n == warmup:
                    warm = (rss(os.getpid()), sum(rss(p) for p in pool.worker_pids()))

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        end = (rss(os.getpid()), sum(rss(p) for p in pool.worker_pids()))
        stats = engine.statistics()
    seconds = time.perf_counter() - began
    return SoakReport(
        runs=runs,
        concurrency=concurrency,
        seconds=seconds,
        completed=completed,
        host_rss_warm=warm[0],
        host_rss_end=end[0],
        worker_rss_warm=warm[1],
        worker_rss_end=end[1],
        before=before,
        after=await settled_census(before),
        engine=stats,
        worker_budget=worker_budget,
    )
