"""Limits: time, heap, memory outside the heap. Each breach has its own error; the pool survives."""

from __future__ import annotations

import threading

import anyio
import pytest

from runtime_pool import RuntimePool, errors

pytestmark = pytest.mark.anyio

HANGS = {
    "busy_loop": "while (true) {}",
    "never_settling_promise": "await new Promise(() => {});",
    "loop_that_catches_termination": "for (;;) { try { while (true) {} } catch (e) {} }",
    "blocking_host_function": "await block();",
    "microtask_flood": "(function f() { Promise.resolve().then(f) })(); await new Promise(Boolean)",
}


class Blocker:
    """A sync host function that blocks until released (or 30 s), then says it returned."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.returned = threading.Event()

    def __call__(self) -> None:
        self.release.wait(30)
        self.returned.set()


@pytest.mark.parametrize("script", list(HANGS.values()), ids=list(HANGS))
async def test_a_hanging_script_times_out_at_its_limit(script: str) -> None:
    # None of these ends by itself (the host function blocks until released), so the
    # timeout is what stopped it; its latency is a benchmark figure, not asserted here.
    block = Blocker()
    try:
        async with RuntimePool(size=1) as pool:
            with pytest.raises(errors.ScriptTimeout) as caught:
                await pool.run(script, api={"block": block}, timeout=0.5)
            assert caught.value.timeout == 0.5
            assert not block.returned.is_set()
            assert await pool.run("return 1 + 1") == 2
    finally:
        block.release.set()


async def test_a_blocking_host_function_does_not_block_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    block = Blocker()
    try:
        async with RuntimePool(size=1) as pool, anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            with pytest.raises(errors.ScriptTimeout):
                await pool.run("await block()", api={"block": block}, timeout=0.5)
            tg.cancel_scope.cancel()
    finally:
        block.release.set()
    assert ticks >= 5  # a blocked loop would not have ticked at all until the block ended


async def test_the_pool_timeout_applies_when_run_gives_none() -> None:
    async with RuntimePool(size=1, timeout=0.3) as pool:
        with pytest.raises(errors.ScriptTimeout) as caught:
            await pool.run("while (true) {}")
    assert caught.value.timeout == 0.3


async def test_gradual_heap_growth_is_heap_limit_exceeded() -> None:
    async with RuntimePool(size=1, heap_limit=32 * 2**20) as pool:
        with pytest.raises(errors.HeapLimitExceeded) as caught:
            await pool.run("const a = []; while (true) a.push({x: a.length, y: 'z' + a.length});")
        assert caught.value.limit == 32 * 2**20
        assert await pool.run("return 'alive'") == "alive"


async def test_one_huge_allocation_that_aborts_v8_is_heap_limit_exceeded() -> None:
    # In-process this one-liner aborts the whole Python process (JSRUN_FACTS.md).
    async with RuntimePool(size=1, heap_limit=32 * 2**20) as pool:
        with pytest.raises((errors.HeapLimitExceeded, errors.ScriptError)) as caught:
            await pool.run("return new Array(3e7).fill(1.5).length")
        if isinstance(caught.value, errors.ScriptError):
            assert caught.value.name == "RangeError"
        assert await pool.run("return 'alive'") == "alive"
        assert pool.statistics().live == 1


@pytest.mark.parametrize(
    "script",
    [
        "const keep = [];"
        "for (let i = 0; i < 64; i++) keep.push(new Uint8Array(32 * 2**20).fill(1));",
        "const m = new WebAssembly.Memory({initial: 1, maximum: 16384});"
        "for (let i = 0; i < 16000; i += 256) { m.grow(256); new Uint8Array(m.buffer).fill(7); }",
    ],
    ids=["typed_arrays", "webassembly_memory"],
)
async def test_memory_outside_the_heap_is_capped(script: str) -> None:
    async with RuntimePool(size=1, memory_limit=256 * 2**20) as pool:
        with pytest.raises(errors.MemoryLimitExceeded) as caught:
            await pool.run(script, timeout=20)
        assert caught.value.limit == 256 * 2**20
        assert await pool.run("return 'alive'") == "alive"
        assert pool.statistics().live == 1


async def test_a_run_within_the_limits_is_untouched_by_them() -> None:
    async with RuntimePool(size=1, heap_limit=32 * 2**20, memory_limit=256 * 2**20) as pool:
        value = await pool.run(
            "const b = new Uint8Array(16 * 2**20).fill(1); let s = 0;"
            "for (let i = 0; i < b.length; i += 4096) s += b[i]; return s",
            timeout=10,
        )
    assert value == 4096
