"""Scaling out: two engine processes on one PostgreSQL database share the work.

    python examples/scale_out.py postgresql://USER@HOST/DATABASE

starts two replicas (engine processes). Each registers the same trigger and
publishes 4 order events; every event starts exactly one run, on whichever
replica gets to it, and each replica waits until all 8 runs have completed.
The parent then reads the shared history: 8 runs, each once.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import anyio

from actors import Engine, PostgresStore, Workflow
from runtime_pool import RuntimePool

EVENTS_PER_REPLICA = 4

wf = Workflow("order")
wf.add_step("price", js="return ctx.event.qty * 2.5;")
wf.add_step("ship", js="return {order: ctx.event.id, total: deps.price, by: await where()};",
            after=["price"])  # fmt: skip


async def replica(dsn: str, name: str) -> None:
    def where() -> str:
        return name

    engine = Engine(api={"where": where}, pool=RuntimePool(size=1), store=dsn)
    engine.on("order.placed", wf)
    async with engine:
        for n in range(EVENTS_PER_REPLICA):
            await engine.bus.publish("order.placed", {"id": f"{name}-{n}", "qty": n + 1})
        while True:  # the other replica's runs complete in another process
            if len(await engine.runs(status="completed", limit=100)) == 2 * EVENTS_PER_REPLICA:
                break
            await anyio.sleep(0.1)


async def report(dsn: str) -> None:
    async with PostgresStore(dsn, read_only=True) as store:
        runs = await store.list_runs(status="completed", limit=100)
    orders = sorted(run.output["order"] for run in runs)
    print(f"{len(runs)} runs for {len(set(orders))} orders: {', '.join(orders)}")
    for by, count in sorted(Counter(run.output["by"] for run in runs).items()):
        print(f"replica {by} ran {count}")


def main(dsn: str) -> None:
    replicas = [subprocess.Popen([sys.executable, __file__, dsn, name]) for name in ("A", "B")]
    codes = [process.wait(timeout=120) for process in replicas]
    if any(codes):
        sys.exit(f"a replica failed: exit codes {codes}")
    anyio.run(report, dsn)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        anyio.run(replica, sys.argv[1], sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
