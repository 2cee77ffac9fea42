"""Where the host's CPU goes per step: cProfile of this process running concurrent seed DAG runs.

Run: ``python -m benchmarks.profile_host [--shape seed|io] [--runs 100] [--batches 20]
[--top 25] [--wall] [--save FILE]``.
The engine runs batches of ``--runs`` concurrent runs on the default pool: of the seed
DAG (``fetch_data`` answering at once), or with ``--shape io`` of the 1-3-1 DAG whose
steps each await a 10 ms host call. First without the profiler: wall time and
the CPU of this process and of the workers per step, read from ``/proc``. Then the
same batches under cProfile (which slows Python down, so read its figures as
shares): own time by category (JSON, frames, engine, anyio, event loop, ...; a
builtin's time goes to its callers' categories), the functions with the most own
time, and this project's functions by cumulative time. Only this process is
profiled, not the workers. The profiler's clock is the main thread's CPU time
(``--wall``: wall time, which also counts waiting in ``epoll`` and being preempted
in a syscall).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import structlog

from actors import Engine
from runtime_pool import RuntimePool

from ._measure import run_batch
from ._procfs import cpu_seconds
from ._shapes import Shape, chain, diamond_io, seed_dag

Batch = Callable[[], Awaitable[list[Any]]]


async def _unprofiled(batch: Batch, pool: RuntimePool, batches: int, runs: int, size: int) -> float:
    """Run ``batches`` without the profiler; print and return this process's CPU per step."""
    host, workers = (os.getpid(),), pool.worker_pids()
    host_cpu, worker_cpu, started = cpu_seconds(host), cpu_seconds(workers), time.perf_counter()
    for _ in range(batches):
        await batch()
    wall = time.perf_counter() - started
    total = batches * runs * size
    per_step = (cpu_seconds(host) - host_cpu) / total
    print(
        f"without the profiler: {batches * runs / wall:.0f} runs/s; per step: wall "
        f"{wall / total * 1e6:.0f} us, CPU of this process {per_step * 1e6:.0f} us, of the "
        f"workers {(cpu_seconds(workers) - worker_cpu) / total * 1e6:.0f} us"
    )
    return per_step


# Own time grouped by what it is for: (category, test on "file:name").
CATEGORIES = (
    ("JSON encode/decode (json module)", lambda where: where.startswith("json/")),
    (
        "frames and pipes (runtime_pool/_process, _protocol, stream buffers, read/write)",
        lambda where: (
            any(
                k in where
                for k in ("_process.py", "_protocol.py", "streams/buffered", "asyncio/streams")
            )
            or "posix.read" in where
            or "posix.write" in where
        ),
    ),
    ("engine (actors/)", lambda where: where.startswith("actors/")),
    ("pool client (runtime_pool/, other)", lambda where: where.startswith("runtime_pool/")),
    (
        "anyio (task groups, cancel scopes, memory streams, checkpoints)",
        lambda where: where.startswith("anyio/"),
    ),
    (
        "asyncio event loop (tasks, handles, futures, epoll)",
        lambda where: where.startswith(("asyncio/", "python3.11/selectors")) or "epoll" in where,
    ),
    ("structlog", lambda where: where.startswith("structlog/")),
    ("other (builtins called from the above, stdlib, ...)", lambda where: True),
)


def _category(file: str, name: str) -> str:
    where = f"{_short(file)}:{name}"
    return next(label for label, test in CATEGORIES if test(where))


def _by_category(raw: dict[Any, Any]) -> dict[str, float]:
    """Own time by category; a builtin's (file "~") is split over its callers by their share."""
    found: dict[str, float] = defaultdict(float)
    for (file, _, name), (_, _, own, _, callers) in raw.items():
        where = _category(file, name)
        if file != "~" or not callers or "epoll" in name or "posix." in name:
            found[where] += own
            continue
        called = sum(entry[2] for entry in callers.values()) or 1.0
        for (caller_file, _, caller_name), entry in callers.items():
            found[_category(caller_file, caller_name)] += own * entry[2] / called
    return found


def _report(stats: pstats.Stats, steps: int, top: int, host_cpu: float) -> None:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # (file, line, name) -> row
    total = sum(row[2] for row in raw.values())
    print(
        f"\nunder cProfile: own time of all functions {total / steps * 1e6:.0f} us per step "
        "(inflated by the profiler). *est us* = share x the unprofiled CPU per step."
    )
    by_category = _by_category(raw)
    print("\nown time by category (share, est us per step):")
    for label, own in sorted(by_category.items(), key=lambda item: -item[1]):
        print(f"  {own / total:5.1%}  {own / total * host_cpu * 1e6:6.0f}  {label}")
    print(f"\ntop {top} functions by own time (share, est us per step, calls per step):")
    rows = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    for (file, line, name), (_, calls, own, _, _) in rows:
        print(
            f"  {own / total:5.1%}  {own / total * host_cpu * 1e6:6.1f}  {calls / steps:6.2f}  "
            f"{_short(file)}:{line}({name})"
        )
    ours = [item for item in raw.items() if _short(item[0][0]).startswith(("actors/", "runtime"))]
    print(f"\ntop {top} functions of this project by cumulative time (share of all own time):")
    for (file, line, name), row in sorted(ours, key=lambda item: -item[1][3])[:top]:
        print(f"  {row[3] / total:6.1%}  {row[1] / steps:6.2f}/step  {_short(file)}:{line}({name})")


def _short(file: str) -> str:
    parts = Path(file).parts
    for anchor in ("site-packages", "actors", "runtime_pool", "benchmarks"):
        if anchor in parts:
            index = parts.index(anchor)
            return "/".join(parts[index + (anchor == "site-packages") :])
    return file if file.startswith("~") else "/".join(parts[-2:])


async def main(
    shape: Shape, runs: int, batches: int, top: int, wall: bool, save: Path | None
) -> None:
    workflow, steps = shape.workflow(), runs * shape.size

    async with (
        RuntimePool() as pool,
        Engine(pool=pool, api=shape.api, context=shape.context) as engine,
    ):

        async def run() -> Any:
            return (await engine.run(workflow, event=dict(shape.event))).output

        async def batch() -> list[Any]:
            return await run_batch(run, runs)

        for _ in range(3):
            await batch()  # warm-up
        print(f"{shape.name}, {runs} concurrent runs, {batches} batches, pool of {pool.size}")
        host_cpu = await _unprofiled(batch, pool, batches, runs, shape.size)
        profiler = cProfile.Profile(time.perf_counter if wall else time.thread_time)
        profiler.enable()
        for _ in range(batches):
            await batch()
        profiler.disable()
    if save is not None:
        profiler.dump_stats(save)  # for pstats or snakeviz
    _report(pstats.Stats(profiler), batches * steps, top, host_cpu)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("seed", "io", "chain"), default="seed")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--wall", action="store_true", help="profile wall time, not CPU time")
    parser.add_argument("--save", type=Path, help="also write the raw profile (pstats) here")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    shapes = {"seed": seed_dag, "io": lambda: diamond_io(0.01), "chain": lambda: chain(100)}
    shape = shapes[args.shape]()
    anyio.run(main, shape, args.runs, args.batches, args.top, args.wall, args.save)
    sys.stdout.flush()
    os._exit(0)  # jsrun may segfault at interpreter exit (JSRUN_FACTS.md)
