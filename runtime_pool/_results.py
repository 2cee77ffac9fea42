"""What a run returns and what the pool reports: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ("Execution", "HostCall", "LogLine", "PoolStatistics")

LogLevel = Literal["debug", "log", "info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One ``console`` call made by a script."""

    level: LogLevel
    text: str


@dataclass(frozen=True, slots=True)
class HostCall:
    """A host function call a script made: what ``execute(on_host_call=)`` is given.

    ``error`` is the exception's class name (``None``: it returned); ``duration``
    is seconds spent in the function; ``arguments`` as the script passed them.
    """

    function: str
    arguments: list[Any]
    duration: float
    error: str | None


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of :meth:`RuntimePool.execute`: the value, the console lines, the time."""

    value: Any
    logs: tuple[LogLine, ...]
    duration: float


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of the pool's workers and counters.

    ``waits`` counts runs that found no worker with room and had to wait for one;
    ``in_flight`` the runs being served now (up to ``concurrency`` per worker).
    When a script broke a limit and its runtime was stopped, the runs that shared
    it are counted in ``reruns`` (no host call yet: run again on another worker)
    or ``evictions`` (failed with ``SandboxCrashed``). ``unresponsive`` counts
    workers the pool killed because they missed a deadline.
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
    concurrency: int = 1
    in_flight: int = 0
    reruns: int = 0
    evictions: int = 0
    unresponsive: int = 0
