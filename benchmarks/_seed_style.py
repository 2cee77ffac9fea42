"""The seed-style baseline: the jsrun guide's StepBuilder, re-implemented for any shape.

Faithful to the guide (``workflow_dag.py`` of jsrun's "Workflow Orchestration"
page): every step runs in a fresh ``Runtime(RuntimeConfig(max_heap_size=50 MB))``
created in this process; the host API is bound with ``bind_function``, the
dependency results and the context with ``bind_object("deps"/"ctx")``; the step is
``eval_async("(async () => { code })()", timeout=5.0)``; a step first awaits its
dependencies recursively with ``asyncio.gather``. Results are cached per step so a
step shared by several dependents (a diamond, a fan-out's root) runs once, as the
guide intends. The guide caches only finished results, so dependents that ask at the
same time would each run the shared step again; here the in-flight task is cached
instead, which only makes the baseline faster. The guide's progress prints are left out.
The module uses asyncio directly, as the guide does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from jsrun import Runtime, RuntimeConfig

from ._shapes import Shape

__all__ = ("SeedStyleRun",)

HEAP = 50 * 1024 * 1024
TIMEOUT = 5.0


class SeedStyleRun:
    """One run of ``shape``: ``await SeedStyleRun(shape).run()`` returns the run's output."""

    def __init__(self, shape: Shape) -> None:
        self._shape = shape
        self._context = {"event": dict(shape.event), **shape.context}
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def run(self) -> Any:
        sinks = self._shape.sinks
        values = await asyncio.gather(*(self._result(name) for name in sinks))
        return self._shape.output(dict(zip(sinks, values, strict=True)))

    def _result(self, name: str) -> asyncio.Task[Any]:
        task = self._tasks.get(name)
        if task is None:  # the in-flight task is cached, so a shared step runs once
            task = self._tasks[name] = asyncio.ensure_future(self._execute(name))
        return task

    async def _execute(self, name: str) -> Any:
        step = self._shape.steps[name]
        depends = step.after
        dep_results: dict[str, Any] = {}
        if depends:
            results = await asyncio.gather(*(self._result(d) for d in depends))
            dep_results = dict(zip(depends, results, strict=True))
        return await _run_step(step.js, self._shape.api, dep_results, self._context)


async def _run_step(
    code: str, api: Mapping[str, Any], deps: dict[str, Any], context: dict[str, Any]
) -> Any:
    with Runtime(RuntimeConfig(max_heap_size=HEAP)) as runtime:
        for key, fn in api.items():
            runtime.bind_function(key, fn)
        runtime.bind_object("deps", deps)
        runtime.bind_object("ctx", context)
        return await runtime.eval_async(f"(async () => {{ {code} }})()", timeout=TIMEOUT)
