"""Cost of one trivial script run: the in-process floor, the pool, and a fresh runtime per run.

Run: ``python -m benchmarks.bench_pool [--runs N] [--smoke]``. Prints medians
(and p90) per run and the ratios between the contenders. Contenders:

- floor: ``eval_async`` on one warm in-process jsrun runtime (no sandbox at all);
- pool: ``RuntimePool.run`` with the default hardened reuse of runtimes;
- pool-fresh: ``RuntimePool(isolation="fresh")``: a new runtime for every run,
  created in the worker after the previous run (the other isolation design);
- fresh-runtime: a new ``jsrun.Runtime`` per run in-process, as the jsrun guide does.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import anyio
import structlog
from jsrun import Runtime, RuntimeConfig

from runtime_pool import RuntimePool

CODE = "return deps.x + 1"
HOST_CODE = "return await lookup(deps.x)"


async def lookup(x: int) -> int:
    return x * 2


async def timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def floor(runs: int) -> list[float]:
    runtime = Runtime(RuntimeConfig(max_heap_size=64 * 2**20))
    runtime.bind_object("deps", {"x": 1})
    try:
        source = f"(async () => {{ {CODE} }})()"
        await runtime.eval_async(source)
        return await timed(lambda: runtime.eval_async(source), runs)
    finally:
        runtime.close()


async def fresh_runtime(runs: int) -> list[float]:
    async def once() -> object:  # what the jsrun guide's StepBuilder does for every step
        with Runtime(RuntimeConfig(max_heap_size=50 * 2**20)) as runtime:
            runtime.bind_function("lookup", lookup)
            runtime.bind_object("deps", {"x": 1})
            runtime.bind_object("ctx", {"event": {}, "config": {}})
            return await runtime.eval_async(f"(async () => {{ {CODE} }})()", timeout=5.0)

    return await timed(once, runs)


async def pooled(runs: int, *, isolation: str, code: str = CODE) -> list[float]:
    async with RuntimePool(isolation=isolation) as pool:  # type: ignore[arg-type]
        api = {"lookup": lookup} if code == HOST_CODE else None
        call = lambda: pool.run(code, globals={"deps": {"x": 1}}, api=api)  # noqa: E731
        await timed(call, 20)  # warm-up
        return await timed(call, runs)


def describe(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3


async def main(runs: int) -> None:
    fresh_runs = max(5, runs // 10)
    results = {
        "floor (in-process eval_async, warm runtime)": await floor(runs),
        "pool.run (hardened reuse, default)": await pooled(runs, isolation="reuse"),
        "pool.run with a host call": await pooled(runs, isolation="reuse", code=HOST_CODE),
        "pool.run (isolation='fresh')": await pooled(fresh_runs, isolation="fresh"),
        "fresh Runtime per run (jsrun guide)": await fresh_runtime(fresh_runs),
    }
    medians = {name: describe(samples)[0] for name, samples in results.items()}
    base = medians["floor (in-process eval_async, warm runtime)"]
    pool = medians["pool.run (hardened reuse, default)"]
    fresh = medians["fresh Runtime per run (jsrun guide)"]
    print(f"| contender | median ms | p90 ms | x floor | fresh-runtime / this |  (runs={runs})")
    print("|---|---|---|---|---|")
    for name, samples in results.items():
        median, p90 = describe(samples)
        print(f"| {name} | {median:.3f} | {p90:.3f} | {median / base:.1f} | {fresh / median:.1f} |")
    print()
    print(f"pool.run median {pool:.3f} ms (target <= 1 ms); {fresh / pool:.1f}x faster than a")
    print(f"fresh Runtime per run (target >= 20x); {pool / base:.1f}x the in-process floor.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--smoke", action="store_true", help="tiny run, for CI")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main, 20 if args.smoke else args.runs)
    # jsrun can segfault at interpreter exit after in-process async bindings were used
    # (JSRUN_FACTS.md): everything is printed, so leave without the teardown.
    sys.stdout.flush()
    os._exit(0)
