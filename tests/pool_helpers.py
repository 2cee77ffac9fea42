"""Helpers shared by the sandbox's hostile-input and isolation tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from runtime_pool import RuntimePool

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
