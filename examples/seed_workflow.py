"""The jsrun guide's workflow example, ported: same JS, same output.

Run it: ``python examples/seed_workflow.py``. ``fetch_a`` and ``fetch_b`` start
before either finishes (both ``→`` lines come first); ``combine`` waits for both.

The same workflow as data is in ``seed_workflow.toml`` (and ``.json``); ``API``
here gives the CLI its host function::

    python -m actors run examples/seed_workflow.toml --api examples.seed_workflow:API \\
        --event '{"source_a": "a", "source_b": "b", "user_id": 123}' \\
        --context '{"config": {"multiplier": 2}}'
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import structlog

from actors import Engine, StepCompleted, StepStarted, Workflow


# API functions that workflows can call
async def fetch_data(source: str) -> list[int]:
    await anyio.sleep(0.1)
    return [1, 2, 3, 4, 5] if source == "a" else [10, 20, 30]


API = {"fetch_data": fetch_data}


wf = Workflow("my_workflow")


@wf.step()
def fetch_a() -> None:
    """
    // Access event data via ctx
    const source = ctx.event.source_a || 'foo';
    return await fetch_data(source);
    """


@wf.step()
def fetch_b() -> None:
    """
    const source = ctx.event.source_b || 'bar';
    return await fetch_data(source);
    """


@wf.step(after=[fetch_a, fetch_b])
def combine() -> None:
    """
    const a = deps.fetch_a;
    const b = deps.fetch_b;
    // Use multiplier from context
    const multiplier = ctx.config.multiplier;
    return [...a, ...b].map(x => x * multiplier);
    """


@wf.step(after=[combine])
def aggregate() -> None:
    """
    const data = deps.combine;
    return {
      sum: data.reduce((a, b) => a + b, 0),
      count: data.length,
      event: ctx.event
    };
    """


async def main() -> dict[str, Any]:
    async with (
        Engine(api=API, context={"config": {"multiplier": 2}}) as engine,
        engine.bus.subscribe("step.*") as events,
        anyio.create_task_group() as tg,
    ):

        async def show_progress() -> None:
            async for event in events:
                if isinstance(event, StepStarted):
                    print(f" → {event.step}")
                elif isinstance(event, StepCompleted):
                    print(f" ✓ {event.step}")

        tg.start_soon(show_progress)
        result = await engine.run(wf, event={"source_a": "a", "source_b": "b", "user_id": 123})
        await anyio.wait_all_tasks_blocked()  # let the last progress line print
        tg.cancel_scope.cancel()
    print(f"Result: {result.output}")
    return dict(result.output)


if __name__ == "__main__":
    # Library logs (worker start-up, ...) go to stderr, warnings and up only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    anyio.run(main)
