"""ETL pipeline: extract from three sources in parallel, transform, load.

The workflow is data, in ``etl.toml`` (no Python needed to change it); the host
functions are the in-memory services of ``hosts.py``: an SQLite orders database, a
paginated CRM API and an FX-rates feed, loaded into a warehouse table.

Run it: ``python examples/etl.py``. The HTTP/DB timeline it prints shows the three
extracts overlapping. The same workflow from the shell::

    python -m actors run examples/etl.toml --api examples.hosts:API --event '{"day": "2024-05-01"}'
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import anyio
import structlog
from hosts import Services  # examples/hosts.py, beside this script

from actors import Engine, StepCompleted, StepStarted, Workflow

WORKFLOW_FILE = Path(__file__).with_name("etl.toml")


async def main() -> int:
    workflow = Workflow.from_file(WORKFLOW_FILE)
    services = Services()
    spans: dict[str, list[float]] = {}
    async with (
        Engine(api=services.api()) as engine,
        engine.bus.subscribe("step.*") as events,
        anyio.create_task_group() as tg,
    ):

        async def record_spans() -> None:
            async for event in events:
                if isinstance(event, StepStarted | StepCompleted) and event.step is not None:
                    spans.setdefault(event.step, []).append(event.timestamp)

        tg.start_soon(record_spans)
        result = await engine.run(workflow, event={"day": "2024-05-01"})
        await anyio.wait_all_tasks_blocked()  # let the last events be recorded
        tg.cancel_scope.cancel()

    if result.status != "completed":
        print(f"ETL {result.status}: {[str(result.steps[s].error) for s in result.failed_steps]}")
        return 1
    print_timeline(spans)
    summary = result.output
    print(f"\nLoaded {summary['rows_loaded']} rows into {summary['table']} for {summary['day']}:")
    for row in services.warehouse["daily_revenue"]:
        orders = f"{row['orders']} order" + ("s" if row["orders"] != 1 else "")
        print(f"  {row['country']}  {orders:<8}  EUR {row['revenue_eur']:>8.2f}")
    print(f"Total EUR {summary['revenue_eur']:.2f}; rejected orders: {summary['rejected_orders']}")
    return 0


def print_timeline(spans: dict[str, list[float]]) -> None:
    """One bar per step, 1 char = 10 ms, from the first step's start."""
    t0 = min(times[0] for times in spans.values())
    print("Step timeline (1 char = 10 ms):")
    for step, times in spans.items():
        start, end = (times[0] - t0) * 100, (times[-1] - t0) * 100
        bar = " " * round(start) + "#" * max(1, round(end - start))
        print(f"  {step:<18} {bar}")


if __name__ == "__main__":
    # Library logs (worker start-up, ...) go to stderr, warnings and up only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    sys.exit(anyio.run(main))
