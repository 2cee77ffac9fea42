"""Work sharing on one PostgreSQL database: new runs go to engines with room.

Steps run on the fake runner; a real PostgreSQL server backs every test."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Engine, Workflow
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


def job() -> Workflow:
    wf = Workflow("job")
    wf.add_step("work", js="W")
    return wf


def worker(calls: list[int], gate: anyio.Event | None = None) -> FakeRunner:
    async def work(s: FakeScript) -> Any:
        calls.append(s.ctx["event"]["n"])
        if gate is not None:
            await gate.wait()
        return s.ctx["event"]["n"] * 2

    return FakeRunner({"W": work})


async def count_until(events: Any, done: Any) -> int:
    """Count ``run.completed`` events until ``done(count)``."""
    count = 0
    with anyio.fail_after(30):
        async for _ in events:
            count += 1
            if done(count):
                return count
    raise AssertionError("subscription ended")


@pytest.mark.timeout(60)
async def test_runs_past_a_full_engines_room_go_to_an_engine_with_room(
    postgres_dsn: str,
) -> None:
    gate = anyio.Event()
    full_calls: list[int] = []
    free_calls: list[int] = []
    full = Engine(pool=worker(full_calls, gate), store=postgres_dsn, max_active_runs=2)
    free = Engine(pool=worker(free_calls), store=postgres_dsn)
    async with full, free, free.bus.subscribe("run.completed", cluster=True) as ended:
        full.on("job", job())
        free.on("job", job())
        for n in range(8):
            await full.bus.publish("job", {"n": n})  # never waits for the full engine
        # the rest complete while the full engine's runs still hang
        await count_until(ended, lambda count: count + len(full_calls) == 8)
        assert len(full_calls) <= 2 and full.statistics().peak_active <= 2
        gate.set()
        await count_until(ended, lambda count: count == len(full_calls))
        runs = await free.runs(limit=1000)
    assert sorted(full_calls + free_calls) == list(range(8))
    assert sorted(r.output for r in runs) == [n * 2 for n in range(8)]
