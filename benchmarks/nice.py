"""The workers' JS threads at different CPU priorities (``RuntimePool(js_nice=)``), side by side.

Run: ``python -m benchmarks.nice [--levels 0,10,19] [--rounds 5] [--smoke]``. It opens
one default-size pool per nice level, then for each case (the 1-3-1 DAG whose steps
await a 10 ms host call, 1000 concurrent runs; the seed DAG with ``fetch_data``
answering at once, 100 concurrent runs; a trivial chain of 100 steps) warms every
pool with one batch and times ``--rounds`` batches, the levels taking turns. It
prints, per case and level, the median wall time, runs/s, its ratio to the first
level, and the CPU of this process and of the workers per step (from ``/proc``).
jsrun's thread spins while its JS waits; niced, the spin takes only CPU nothing
else wants, and the host process keeps the core it needs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio

from actors import Engine
from runtime_pool import RuntimePool

from ._measure import run_batch
from ._procfs import cpu_seconds
from ._shapes import Shape, chain, diamond_io, seed_dag


@dataclass
class _Timed:
    walls: list[float]
    host: list[float]
    workers: list[float]


async def _batch(engine: Engine, shape: Shape, runs: int) -> None:
    workflow = shape.workflow()

    async def run() -> None:
        result = await engine.run(workflow, event=dict(shape.event))
        if result.status != "completed":
            raise RuntimeError(f"{shape.name}: run {result.status}")

    await run_batch(run, runs)


async def _timed(batch: Callable[[], Awaitable[None]], pool: RuntimePool, into: _Timed) -> None:
    host, workers = (os.getpid(),), pool.worker_pids()
    host_cpu, worker_cpu, began = cpu_seconds(host), cpu_seconds(workers), time.perf_counter()
    await batch()
    into.walls.append(time.perf_counter() - began)
    into.host.append(cpu_seconds(host) - host_cpu)
    into.workers.append(cpu_seconds(workers) - worker_cpu)


async def _case(
    shape: Shape, runs: int, pools: dict[int, RuntimePool], rounds: int
) -> dict[int, _Timed]:
    timed = {level: _Timed([], [], []) for level in pools}
    async with AsyncExitStack() as stack:
        engines = {
            level: await stack.enter_async_context(
                Engine(pool=pool, api=shape.api, context=shape.context)
            )
            for level, pool in pools.items()
        }
        for engine in engines.values():
            await _batch(engine, shape, runs)  # warm-up
        for _ in range(rounds):
            for level, engine in engines.items():
                await anyio.sleep(0.1)  # the other pools' workers park

                async def batch(engine: Engine = engine) -> None:
                    await _batch(engine, shape, runs)

                await _timed(batch, pools[level], timed[level])
    return timed


def _rows(name: str, runs: int, steps: int, timed: dict[int, _Timed]) -> list[str]:
    rows = []
    first = statistics.median(next(iter(timed.values())).walls)
    for level, t in timed.items():
        wall = statistics.median(t.walls)
        host = statistics.median(t.host) / steps * 1e3
        workers = statistics.median(t.workers) / steps * 1e3
        rows.append(
            f"| {name} | {level} | {runs} | {wall * 1e3:.0f} ({min(t.walls) * 1e3:.0f}-"
            f"{max(t.walls) * 1e3:.0f}) | {runs / wall:.0f} | {first / wall:.2f}x | "
            f"{wall / steps * 1e3:.3f} | {host:.3f} | {workers:.3f} |"
        )
    return rows


async def main(levels: list[int], rounds: int, smoke: bool) -> None:
    cases = [(diamond_io(0.01), 1000), (seed_dag(), 100), (chain(100), 1)]
    if smoke:
        cases = [(diamond_io(0.01), 10), (seed_dag(), 10), (chain(6), 1)]
    load = os.getloadavg()[0]
    print(
        "| case | js_nice | runs at once | median ms (min-max) | runs/s | speed vs first "
        "level | ms/step | CPU ms/step: this process | CPU ms/step: workers |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    async with AsyncExitStack() as stack:
        pools = {
            level: await stack.enter_async_context(RuntimePool(js_nice=level)) for level in levels
        }
        for shape, runs in cases:
            timed = await _case(shape, runs, pools, rounds)
            for row in _rows(shape.name, runs, runs * shape.size, timed):
                print(row, flush=True)
    print(f"\nload average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="0,10,19", help="nice levels, the first is the base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    anyio.run(main, levels, 1 if args.smoke else args.rounds, args.smoke)


if __name__ == "__main__":
    _cli()
