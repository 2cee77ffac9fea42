"""Where one trivial step's time goes: floor call, engine scheduling, pool round trip by thread.

Each line is a median or an average over many sequential trivial steps:

- the floor: one ``call_async`` on a warm in-process runtime;
- the engine's own scheduling on a chain, with an in-process fake runner (no JS);
- one ``pool.execute`` round trip to a single worker, and the CPU time each thread
  of the host and of the worker spent per run (read from ``/proc/<pid>/task``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from actors import Engine
from actors.testing import FakeRunner, FakeScript
from runtime_pool import RuntimePool

from ._floor import open_floor
from ._shapes import TRIVIAL, chain

__all__ = ("Breakdown", "measure_breakdown")

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Breakdown:
    floor: float  # seconds per step
    scheduling: float  # seconds per step, engine with a fake runner
    round_trip: float  # seconds per pool.execute
    threads: tuple[tuple[str, float], ...]  # (which thread, CPU seconds per run)


def _thread_cpu(pid: int, side: str) -> dict[str, float]:
    """CPU seconds by thread name (threads of one name summed) of process ``pid``."""
    found: dict[str, float] = defaultdict(float)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        found[f"{side}: {name}"] += (int(fields[11]) + int(fields[12])) / _TICK
    return found


async def _trivial(script: FakeScript) -> Any:
    return max([0, *script.deps.values()]) + 1


async def _scheduling(n: int) -> float:
    workflow = chain(n).workflow()
    async with Engine(pool=FakeRunner({TRIVIAL: _trivial}, copy_values=False)) as engine:
        await engine.run(workflow)
        started = time.perf_counter()
        await engine.run(workflow)
        return (time.perf_counter() - started) / n


async def _floor(runs: int) -> float:
    shape = chain(1)
    async with open_floor(shape) as run:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await run()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _round_trip(pool: RuntimePool, runs: int) -> tuple[float, tuple[tuple[str, float], ...]]:
    inputs = {"deps": {"s0": 1}, "ctx": {"event": {}}}
    for _ in range(50):
        await pool.execute(TRIVIAL, globals=inputs)
    pids = {"host": os.getpid(), "worker": pool.worker_pids()[0]}
    before = {k: v for side, pid in pids.items() for k, v in _thread_cpu(pid, side).items()}
    started = time.perf_counter()
    for _ in range(runs):
        await pool.execute(TRIVIAL, globals=inputs)
    wall = (time.perf_counter() - started) / runs
    after = {k: v for side, pid in pids.items() for k, v in _thread_cpu(pid, side).items()}
    used = ((k, (v - before.get(k, 0.0)) / runs) for k, v in after.items())
    return wall, tuple(sorted((item for item in used if item[1] > 0), key=lambda i: -i[1]))


async def measure_breakdown(pool: RuntimePool, *, runs: int) -> Breakdown:
    """``pool`` must have one worker, so that all its runs go to the same process."""
    floor = await _floor(runs)
    scheduling = await _scheduling(runs)
    round_trip, threads = await _round_trip(pool, runs)
    return Breakdown(floor, scheduling, round_trip, threads)
