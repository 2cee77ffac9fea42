"""Durable runs: stop this script with Ctrl-C while it runs, start it again, and the
run resumes where it stopped; the steps already recorded do not run again.

    python examples/durable.py               # Ctrl-C while it is "calling charge"...
    python examples/durable.py               # ...and the run resumes after reserve
    python examples/durable.py --order o-43  # another order (one run per order key)

Runs are recorded in ``actors-durable-example.db`` in the temp directory
(``--db F`` to choose). Each host call prints the idempotency key a real service
would get: ``ctx.run.id`` and the step name, stable across resumes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import anyio

from actors import Engine, SQLiteStore, Workflow

DELAY = float(os.environ.get("DURABLE_DELAY", "0.4"))  # seconds per service call

wf = Workflow("invoice")
CALL = "return await service('{0}', ctx.run.id + ':' + ctx.run.step, ctx.event.order);"
wf.add_step("reserve", js=CALL.format("reserve"))
wf.add_step("charge", js=CALL.format("charge"), after=["reserve"])
wf.add_step("ship", js=CALL.format("ship"), after=["charge"])
wf.add_step("notify", js=CALL.format("notify"), after=["ship"])


async def service(name: str, key: str, order: str) -> str:
    """A remote service that would dedupe on ``key``."""
    print(f"  calling {name} for {order} (idempotency key {key})", flush=True)
    await anyio.sleep(DELAY)
    return f"{name}: ok"


async def show_unfinished(db: Path) -> None:
    """What an earlier, interrupted process left (read-only: no engine needed)."""
    if not await anyio.Path(db).exists():
        return
    async with SQLiteStore(db, read_only=True) as store:
        for run in await store.unfinished_runs():
            done = [s.step for s in await store.get_steps(run.id) if s.status == "completed"]
            recorded = ", ".join(done) or "none"
            print(f"resuming run {run.id} ({run.key}); steps recorded: {recorded}", flush=True)


async def main(db: Path, order: str) -> None:
    await show_unfinished(db)
    async with Engine(api={"service": service}, store=db) as engine:  # resumes them
        handle = await engine.start(wf, event={"order": order}, key=order)
        if handle.done:  # the key names a run that ended: nothing runs again
            print(f"order {order} was done already")
        result = await handle.wait()
    print(f"run {result.id} {result.status}: {result.output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(tempfile.gettempdir(), "actors-durable-example.db")
    parser.add_argument("--db", type=Path, default=default, help="the run store file")
    parser.add_argument("--order", default="o-42", help="the order (and the run's key)")
    options = parser.parse_args()
    try:
        anyio.run(main, options.db, options.order)
    except KeyboardInterrupt:
        print("interrupted: run the script again to resume")
