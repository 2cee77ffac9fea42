"""The contenders: how each one opens for a shape and runs it once.

``open(shape)`` is an async context manager yielding ``run()``, one run of the
shape returning the run's output (compared across contenders, so all of them run
the same JS to the same result). Opening and closing stay outside the timings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from actors import Engine
from runtime_pool import RuntimePool

from ._floor import open_floor
from ._seed_style import SeedStyleRun
from ._shapes import Shape

__all__ = ("Contender", "engine_contender", "floor_contender", "seed_contender")

Run = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Contender:
    key: str
    label: str
    open: Callable[[Shape], AbstractAsyncContextManager[Run]]
    warm: bool = True  # one untimed run before the timed ones
    pool: RuntimePool | None = None


def floor_contender() -> Contender:
    return Contender("floor", "floor (1 warm in-process runtime)", open_floor)


@asynccontextmanager
async def _open_seed(shape: Shape) -> AsyncIterator[Run]:
    async def run() -> Any:
        return await SeedStyleRun(shape).run()

    yield run


def seed_contender() -> Contender:
    """The seed-style baseline; it has no warm state, so no warm-up run per case."""
    return Contender("seed", "seed-style (fresh Runtime per step)", _open_seed, warm=False)


def engine_contender(pool: RuntimePool, label: str, key: str) -> Contender:
    """This engine on ``pool`` (open already; each shape gets its own Engine on it)."""

    @asynccontextmanager
    async def open_engine(shape: Shape) -> AsyncIterator[Run]:
        workflow = shape.workflow()
        async with Engine(pool=pool, api=shape.api, context=shape.context) as engine:

            async def run() -> Any:
                result = await engine.run(workflow, event=dict(shape.event))
                if result.status != "completed":
                    failed = {name: result.steps[name].error for name in result.failed_steps}
                    raise RuntimeError(f"{shape.name}: run {result.status}: {failed!r:.1000}")
                return result.output

            yield run

    return Contender(key, label, open_engine, pool=pool)
