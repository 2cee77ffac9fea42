"""One engine process of the PostgreSQL cluster test (see test_pg_chaos.py).

``python tests/pg_child.py DSN LOG NAME NEW_RUNS NAP``: opens an engine on the
database ``DSN`` with a 1-second lease, starts ``NEW_RUNS`` keyed diamond runs, and
then serves (taking over runs other engines left) until it is killed. Each step's
JS calls ``mark`` as it starts (``E NAME run step attempt``) and naps up to ``NAP``
seconds; a subscriber writes ``C NAME run step`` for each ``step.completed``.
"""

from __future__ import annotations

import random
import sys

import anyio

from actors import Engine, PostgresStore, Retry, StepCompleted
from runtime_pool import RuntimePool
from tests.crash_child import Log, diamond

LEASE = 1.0


async def main(dsn: str, log_path: str, name: str, new_runs: int, nap_s: float) -> None:
    log = Log(log_path)

    def mark(run_id: str, step: str, attempt: int) -> None:
        log.line("E", name, run_id, step, attempt)

    async def nap() -> None:
        await anyio.sleep(random.uniform(0, nap_s))

    store = PostgresStore(dsn, lease=LEASE)
    api = {"mark": mark, "nap": nap}
    e = Engine(api=api, pool=RuntimePool(size=1), store=store, retry=Retry(attempts=1))
    async with e, e.bus.subscribe("step.completed", policy="block") as events:
        log.line("R", name)
        workflow = diamond()
        for j in range(new_runs):
            await e.start(workflow, event={"n": j}, key=f"run-{j}")
        async for event in events:
            if isinstance(event, StepCompleted):
                log.line("C", name, event.run_id, event.step)


if __name__ == "__main__":
    dsn, log_path, name = sys.argv[1], sys.argv[2], sys.argv[3]
    anyio.run(main, dsn, log_path, name, int(sys.argv[4]), float(sys.argv[5]))
