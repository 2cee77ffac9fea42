"""What each contender costs when it is not running: idle CPU and resident memory.

- floor: one warm runtime kept open (a jsrun runtime spins a core while idle);
- seed-style: keeps nothing warm, so it is idle for free; measured instead is the
  memory and CPU of one wide fan-out run, while its runtimes are alive at once;
- engine: a warm engine right after a run (its workers park after 20 ms idle);
  memory of this process and of each worker process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import anyio

from ._contenders import Contender
from ._floor import open_floor
from ._procfs import cpu_seconds, idle_cores, rss
from ._seed_style import SeedStyleRun
from ._shapes import Shape

__all__ = ("Footprint", "engine_footprint", "floor_footprint", "seed_footprint")


@dataclass(frozen=True, slots=True)
class Footprint:
    key: str  # the contender's key
    label: str
    cores: float  # CPU in cores over the window (this process plus workers)
    host_rss: int  # bytes: this process (or its growth, see note)
    worker_rss: tuple[int, ...] = ()
    note: str = ""


async def floor_footprint(shape: Shape, window: float) -> Footprint:
    before = rss(os.getpid())
    async with open_floor(shape) as run:
        await run()
        grown = rss(os.getpid()) - before
        cores = await idle_cores((os.getpid(),), window)
    note = f"idle {window:g} s with one warm runtime; memory: growth of this process"
    return Footprint("floor", "floor (1 warm in-process runtime)", cores, grown, note=note)


async def seed_footprint(shape: Shape) -> Footprint:
    """Peak memory growth and CPU of this process during one run of ``shape``."""
    pid = os.getpid()
    before, peak = rss(pid), 0
    done = anyio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(pid))
            with anyio.move_on_after(0.005):
                await done.wait()

    cpu, started = cpu_seconds((pid,)), time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        await SeedStyleRun(shape).run()
        done.set()
    cores = (cpu_seconds((pid,)) - cpu) / (time.perf_counter() - started)
    note = (
        f"during one {shape.name} N={shape.n} run, {shape.size} steps (idle: nothing kept warm); "
        "memory: peak growth of this process"
    )
    label = "seed-style (fresh Runtime per step)"
    return Footprint("seed", label, cores, max(peak - before, 0), note=note)


async def engine_footprint(contender: Contender, shape: Shape, window: float) -> Footprint:
    pool = contender.pool
    assert pool is not None
    async with contender.open(shape) as run:
        await run()
        workers = pool.worker_pids()
        cores = await idle_cores((os.getpid(), *workers), window)
    note = f"idle {window:g} s from the end of a run: this process + {len(workers)} worker(s)"
    worker_rss = tuple(rss(w) for w in workers)
    return Footprint(contender.key, contender.label, cores, rss(os.getpid()), worker_rss, note)
