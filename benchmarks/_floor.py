"""The floor: the same JS on one warm in-process jsrun runtime, with no engine at all.

One runtime is created (outside the timings) with the shape's host API bound.
A run calls each step in topological order, one ``JsFunction.call_async`` per
step; values travel as JSON strings (the cheapest way across), and each step's
value is decoded in Python, as any orchestrator has to see it. Each step's JS is
compiled once per runtime. No sandbox, no isolation between steps, no timeouts,
no parallelism: the least any engine can do.

Keep a floor runtime open only while timing it: an idle jsrun runtime spins a core.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any

from jsrun import Runtime, RuntimeConfig

from ._shapes import Shape, StepDef, cpu_js, topological

__all__ = ("calibrate_loops", "floor_runtime", "open_floor")

DISPATCH = """(() => {
  const AsyncFunction = (async () => {}).constructor;
  const compiled = new Map();
  return async (code, depsJson, ctxJson) => {
    let step = compiled.get(code);
    if (step === undefined) {
      step = new AsyncFunction("deps", "ctx", code);
      compiled.set(code, step);
    }
    const value = await step(JSON.parse(depsJson), JSON.parse(ctxJson));
    return JSON.stringify(value === undefined ? null : value);
  };
})()"""


@asynccontextmanager
async def floor_runtime(shape: Shape) -> AsyncIterator[Runtime]:
    """A warm runtime with the shape's API bound; closed on exit."""
    runtime = Runtime(RuntimeConfig(max_heap_size=256 * 2**20))
    try:
        for name, fn in shape.api.items():
            runtime.bind_function(name, fn)
        yield runtime
    finally:
        runtime.close()


@asynccontextmanager
async def open_floor(shape: Shape) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """Yield ``run()``: one run of ``shape`` on a warm runtime, returning its output."""
    async with floor_runtime(shape) as runtime:
        dispatch = runtime.eval(DISPATCH)
        order = topological(shape)
        ctx = json.dumps({"event": dict(shape.event), **shape.context})

        async def run() -> Any:
            results: dict[str, Any] = {}
            for name in order:
                step = shape.steps[name]
                deps = json.dumps({d: results[d] for d in step.after})
                results[name] = json.loads(await dispatch.call_async(step.js, deps, ctx))
            return shape.output(results)

        yield run


async def calibrate_loops(seconds: float) -> int:
    """The loop count that makes ``cpu_js(loops)`` take about ``seconds`` on this machine."""
    probe = 2_000_000
    shape = Shape("calibrate", MappingProxyType({"cpu": StepDef(cpu_js(probe))}))
    async with open_floor(shape) as run:
        await run()
        times = []
        for _ in range(3):
            started = time.perf_counter()
            await run()
            times.append(time.perf_counter() - started)
    return max(1000, int(probe * seconds / min(times)))
