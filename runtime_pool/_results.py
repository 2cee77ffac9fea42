"""What a run returns and what the pool reports: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ("Execution", "LogLine", "PoolStatistics")

LogLevel = Literal["debug", "log", "info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One ``console`` call made by a script."""

    level: LogLevel
    text: str


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of :meth:`RuntimePool.execute`: the value, the console lines, the time."""

    value: Any
    logs: tuple[LogLine, ...]
    duration: float


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of the pool's workers and counters.

    ``waits`` counts runs that found no idle worker and had to wait for one.
    """

    size: int
    live: int
    idle: int
    busy: int
    parked: int
    runs: int
    waits: int
    crashes: int
    recycles: int
    spawns: int
