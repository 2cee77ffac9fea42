"""CPU time and resident memory of a process tree, read from ``/proc`` (Linux only)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

__all__ = ("PeakRss", "cpu_seconds", "idle_cores", "peak_rss", "rss", "track_peak_rss")

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (a vanished pid counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICK


async def idle_cores(pids: tuple[int, ...], window: float) -> float:
    """CPU used by ``pids`` over ``window`` seconds of doing nothing, in cores."""
    started_cpu, started = cpu_seconds(pids), time.perf_counter()
    await anyio.sleep(window)
    return (cpu_seconds(pids) - started_cpu) / (time.perf_counter() - started)


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except FileNotFoundError:
        return 0


def peak_rss(pid: int) -> int:
    """The high-water mark of ``pid``'s resident memory (``VmHWM``), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(slots=True)
class PeakRss:
    """The largest sum seen of this process's and the workers' resident memory, in bytes."""

    host: int = 0
    workers: int = 0

    @property
    def total(self) -> int:
        return self.host + self.workers


@asynccontextmanager
async def track_peak_rss(
    worker_pids: Callable[[], Iterable[int]], every: float = 0.01
) -> AsyncIterator[PeakRss]:
    """Sample this process + ``worker_pids()`` every ``every`` seconds while the block runs."""
    peak = PeakRss()

    def sample() -> None:
        host, workers = rss(os.getpid()), sum(rss(pid) for pid in worker_pids())
        if host + workers > peak.total:
            peak.host, peak.workers = host, workers

    async def keep_sampling() -> None:
        while True:
            sample()
            await anyio.sleep(every)

    async with anyio.create_task_group() as tg:
        tg.start_soon(keep_sampling)
        try:
            yield peak
        finally:
            sample()
            tg.cancel_scope.cancel()
