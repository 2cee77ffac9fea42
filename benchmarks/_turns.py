"""Pools side by side in one process: each case timed on every pool, the pools taking turns."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import anyio

from actors import Engine
from runtime_pool import RuntimePool

from ._measure import run_batch
from ._procfs import cpu_seconds, track_peak_rss
from ._shapes import Shape

__all__ = ("Timed", "print_side_by_side", "rows", "time_case")


@dataclass
class Timed:
    """One pool's batches of one case: wall time, CPU of this process and of its workers."""

    walls: list[float] = field(default_factory=list)
    host: list[float] = field(default_factory=list)
    workers: list[float] = field(default_factory=list)
    workers_rss: int = 0  # the largest sum of the pool's workers' resident memory seen


async def _batch(engine: Engine, shape: Shape, runs: int) -> None:
    workflow = shape.workflow()

    async def run() -> None:
        result = await engine.run(workflow, event=dict(shape.event))
        if result.status != "completed":
            raise RuntimeError(f"{shape.name}: run {result.status}")

    await run_batch(run, runs)


async def _timed(batch: Callable[[], Awaitable[None]], pool: RuntimePool, into: Timed) -> None:
    host, workers = (os.getpid(),), pool.worker_pids()
    host_cpu, worker_cpu, began = cpu_seconds(host), cpu_seconds(workers), time.perf_counter()
    async with track_peak_rss(pool.worker_pids) as peak:
        await batch()
    into.walls.append(time.perf_counter() - began)
    into.host.append(cpu_seconds(host) - host_cpu)
    into.workers.append(cpu_seconds(workers) - worker_cpu)
    into.workers_rss = max(into.workers_rss, peak.workers)


async def time_case(
    shape: Shape, runs: int, pools: Mapping[str, RuntimePool], rounds: int
) -> dict[str, Timed]:
    """Warm every pool with one batch of ``runs`` concurrent runs, then time ``rounds`` each."""
    timed = {label: Timed() for label in pools}
    async with AsyncExitStack() as stack:
        engines = {
            label: await stack.enter_async_context(
                Engine(pool=pool, api=shape.api, context=shape.context)
            )
            for label, pool in pools.items()
        }
        for engine in engines.values():
            await _batch(engine, shape, runs)  # warm-up
        for _ in range(rounds):
            for label, engine in engines.items():
                await anyio.sleep(0.1)  # the other pools' workers park

                async def batch(engine: Engine = engine) -> None:
                    await _batch(engine, shape, runs)

                await _timed(batch, pools[label], timed[label])
    return timed


def rows(name: str, runs: int, steps: int, timed: Mapping[str, Timed]) -> list[str]:
    """Markdown rows: median ms (min-max), runs/s, speed against the first pool, ms/step, CPU."""
    out = []
    first = statistics.median(next(iter(timed.values())).walls)
    for label, t in timed.items():
        wall = statistics.median(t.walls)
        host = statistics.median(t.host) / steps * 1e3
        workers = statistics.median(t.workers) / steps * 1e3
        out.append(
            f"| {name} | {label} | {runs} | {wall * 1e3:.0f} ({min(t.walls) * 1e3:.0f}-"
            f"{max(t.walls) * 1e3:.0f}) | {runs / wall:.0f} | {first / wall:.2f}x | "
            f"{wall / steps * 1e3:.3f} | {host:.3f} | {workers:.3f} | "
            f"{t.workers_rss / 2**20:.0f} |"
        )
    return out


async def print_side_by_side(
    column: str,
    align: str,
    pools: Mapping[str, RuntimePool],
    cases: list[tuple[Shape, int]],
    rounds: int,
) -> None:
    """Open ``pools`` (label -> pool not yet entered), time each (shape, runs at once) case
    on them taking turns, and print one Markdown table; ``column`` names the labels."""
    load = os.getloadavg()[0]
    print(
        f"| case | {column} | runs at once | median ms (min-max) | runs/s | speed vs first "
        "| ms/step | CPU ms/step: this process | CPU ms/step: workers | workers' peak RSS, MB |"
    )
    print(f"|---|{align}|---:|---:|---:|---:|---:|---:|---:|---:|")
    async with AsyncExitStack() as stack:
        opened = {label: await stack.enter_async_context(pool) for label, pool in pools.items()}
        for shape, runs in cases:
            timed = await time_case(shape, runs, opened, rounds)
            for row in rows(shape.name, runs, runs * shape.size, timed):
                print(row, flush=True)
    print(f"\nload average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
