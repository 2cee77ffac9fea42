"""Shared globals (``RuntimePool.share``): sent to each worker once, frozen in the sandbox."""

from __future__ import annotations

import anyio
import pytest

from runtime_pool import RuntimePool
from runtime_pool._shared import CAPACITY, KeptKeys

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def test_host_and_worker_keep_the_same_keys_in_the_same_order() -> None:
    host, worker = KeptKeys(), KeptKeys()
    keys = [f"k{i % (CAPACITY + 2)}" for i in range(40)] + ["k0", "k1", "k0"]
    for key in keys:
        sent = host.touch(key)
        if sent:
            worker.touch(key, "data " + key)
        else:
            assert worker.get(key) == "data " + key  # the worker still holds it
            worker.touch(key)


async def test_runs_see_shared_values_frozen_and_merged_with_their_own() -> None:
    async with RuntimePool(size=1) as pool:
        shared = pool.share({"deps": {"rows": [1, 2, 3]}, "ctx": {"event": {"a": 1}}})
        code = """
        let refused = null;
        try { deps.rows.push(4); } catch (e) { refused = e.name; }
        return [deps.rows.length, ctx.event.a, ctx.run, item, refused, Object.isFrozen(ctx)];
        """
        values = []
        async with anyio.create_task_group() as tg:

            async def one(i: int) -> None:
                globals = {"item": i, "ctx": {"run": i * 10}}
                execution = await pool.execute(code, globals=globals, shared=shared)
                values.append(execution.value)

            for i in range(5):
                tg.start_soon(one, i)
    assert sorted(values, key=lambda v: v[3]) == [
        [3, 1, i * 10, i, "TypeError", True] for i in range(5)
    ]


async def test_more_shared_sets_than_a_worker_keeps_are_sent_again() -> None:
    async with RuntimePool(size=1) as pool:
        sets = [pool.share({"n": i}) for i in range(CAPACITY + 3)]
        for _ in range(2):
            for i, shared in enumerate(sets):
                assert (await pool.execute("return n;", shared=shared)).value == i
