"""Helpers shared by the sandbox's tests: host functions, runs at once, a pool check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from runtime_pool import RuntimePool, errors

HostFn = Callable[..., Awaitable[Any]]


def recorder() -> tuple[list[list[Any]], HostFn]:
    """Return (calls, fn): an async host function that appends its arguments to calls."""
    calls: list[list[Any]] = []

    async def record(*args: Any) -> int:
        calls.append(list(args))
        return len(calls)

    return calls, record


async def assert_pool_works(pool: RuntimePool) -> None:
    """The pool still runs scripts, with every worker live."""
    assert await pool.run("return 1 + 1") == 2
    stats = pool.statistics()
    assert stats.live == stats.size


class Barrier:
    """An async host function that returns once ``parties`` calls are waiting in it."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.peak = 0
        self._all_in = anyio.Event()

    async def __call__(self, *args: Any) -> int:
        self.arrived += 1
        self.peak = max(self.peak, self.arrived)
        if self.arrived >= self.parties:
            self._all_in.set()
        with anyio.fail_after(10):
            await self._all_in.wait()
        return self.arrived


async def run_all(pool: RuntimePool, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    """Run scripts at once; return each one's value or the exception it raised."""
    outcomes: list[Any] = [None] * len(calls)

    async def one(i: int, code: str, options: dict[str, Any]) -> None:
        try:
            outcomes[i] = await pool.run(code, **options)
        except errors.RuntimePoolError as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as tg:
        for i, (code, options) in enumerate(calls):
            tg.start_soon(one, i, code, options)
    return outcomes
