"""Per-element cost of ``for_each`` against its baselines (not a test).

Each element's script is trivial (``return item * 2 + index;``), so the figures are
the engine's and the sandbox's own cost per element. Contenders, same pool:

* ``for_each``: one step with ``for_each`` over N elements (max_parallel 64).
* ``engine.run loop``: N one-step runs from Python, 64 at a time (what users
  wrote before ``for_each``).
* ``pool.execute``: N scripts straight on the pool, 64 at a time (no engine).
* ``loop in JS``: one step doing the loop itself (no per-element sandbox run).

    python benchmarks/bench_fanout.py                    # N = 1000 and 10000, best of 3
    python benchmarks/bench_fanout.py --sizes 10000 --repeat 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import Engine, Workflow
from runtime_pool import RuntimePool

JS = "return item * 2 + index;"
PARALLEL = 64
FOR_EACH = "ctx.event.items || Array.from({length: ctx.event.n}, (_, i) => i)"


def fan_out_workflow() -> Workflow:
    wf = Workflow("fan_out")
    wf.add_step("each", js=JS, for_each=FOR_EACH, max_parallel=PARALLEL)
    return wf


def one_element_workflow() -> Workflow:
    wf = Workflow("one")
    wf.add_step("each", js="const {item, index} = ctx.event;\n" + JS)
    return wf


def loop_workflow() -> Workflow:
    wf = Workflow("loop")
    wf.add_step("each", js="return ctx.event.items.map((item, index) => item * 2 + index);")
    return wf


async def for_each(engine: Engine, pool: RuntimePool, n: int) -> None:
    result = await engine.run(fan_out_workflow(), event={"items": list(range(n))})
    assert result.status == "completed" and len(result.output) == n, result.steps


async def for_each_small_event(engine: Engine, pool: RuntimePool, n: int) -> None:
    result = await engine.run(fan_out_workflow(), event={"n": n})
    assert result.status == "completed" and len(result.output) == n, result.steps


async def engine_loop(engine: Engine, pool: RuntimePool, n: int) -> None:
    wf = one_element_workflow()

    async def one(i: int) -> None:
        result = await engine.run(wf, event={"item": i, "index": i})
        assert result.output == 3 * i

    await limited(n, one)


async def pool_execute(engine: Engine, pool: RuntimePool, n: int) -> None:
    async def one(i: int) -> None:
        assert await pool.run(JS, globals={"item": i, "index": i}) == 3 * i

    await limited(n, one)


async def js_loop(engine: Engine, pool: RuntimePool, n: int) -> None:
    result = await engine.run(loop_workflow(), event={"items": list(range(n))})
    assert result.status == "completed" and len(result.output) == n


async def limited(n: int, one: Callable[[int], Awaitable[None]]) -> None:
    indices = iter(range(n))

    async def worker() -> None:
        for i in indices:
            await one(i)

    async with anyio.create_task_group() as tg:
        for _ in range(min(PARALLEL, n)):
            tg.start_soon(worker)


CONTENDERS = {
    "for_each (array in ctx.event)": for_each,
    "for_each (array made in JS)": for_each_small_event,
    "engine.run loop": engine_loop,
    "pool.execute": pool_execute,
    "loop in JS": js_loop,
}


async def main(sizes: list[int], repeat: int) -> None:
    async with RuntimePool() as pool, Engine(pool=pool, max_active_runs=PARALLEL) as engine:
        await for_each(engine, pool, 100)  # warm up: workers ready, scripts compiled
        await engine_loop(engine, pool, 100)
        print(f"pool size {pool.size}, concurrency {pool.concurrency}, repeat {repeat} (best)")
        print("| contender | N | total s | per element us |")
        print("|---|---:|---:|---:|")
        for n in sizes:
            for name, contender in CONTENDERS.items():
                best = float("inf")
                for _ in range(repeat):
                    began = time.perf_counter()
                    await contender(engine, pool, n)
                    best = min(best, time.perf_counter() - began)
                print(f"| {name} | {n} | {best:.3f} | {best / n * 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    anyio.run(main, args.sizes, args.repeat)
