"""One engine process of the PostgreSQL chaos case (see ``_pg_cluster.py``).

``python -m benchmarks.chaos._pg_engine DSN LOG INCARNATION FIRST COUNT NAP PACE``: an
engine on ``DSN`` (1-second lease, one sandbox worker) with a trigger on
``chaos.*`` that starts a keyed diamond run per event; it publishes the events of
runs ``FIRST`` to ``FIRST + COUNT - 1`` (again after each restart: the keys start
each run once; ``PACE`` seconds between the events of runs not started yet) and
serves until killed. Lines in ``LOG`` (single ``O_APPEND``
writes): ``R inc`` ready, ``E inc run step attempt`` a step's JS started (it then
naps up to ``NAP`` s), ``C inc run step`` a ``step.completed`` event (published
once the step was recorded).
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sys
from typing import Any

import anyio

from actors import Engine, PostgresStore, Retry, StepCompleted
from actors.errors import StoreError
from runtime_pool import RuntimePool

from ._pg_cluster import LEASE, diamond


class Log:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, *fields: object) -> None:
        os.write(self._fd, (" ".join(map(str, fields)) + "\n").encode())


async def main(
    dsn: str, log_path: str, inc: str, first: int, count: int, nap_s: float, pace: float
) -> None:
    log = Log(log_path)

    def mark(run_id: str, step: str, attempt: int) -> None:
        log.line("E", inc, run_id, step, attempt)

    async def nap() -> None:
        await anyio.sleep(random.uniform(0, nap_s))

    def key(payload: Any) -> str:
        return f"run-{payload['n']}"

    store = PostgresStore(dsn, lease=LEASE)
    engine = Engine(
        api={"mark": mark, "nap": nap},
        pool=RuntimePool(size=1),
        store=store,
        retry=Retry(attempts=1),
    )
    engine.on("chaos.*", diamond(), key=key)
    async with (
        engine,
        engine.bus.subscribe("step.completed", policy="block") as events,
        anyio.create_task_group() as tg,
    ):
        log.line("R", inc)
        tg.start_soon(publish, engine, store, first, count, pace)
        async for event in events:
            if isinstance(event, StepCompleted):
                log.line("C", inc, event.run_id, event.step)


async def publish(
    engine: Engine, store: PostgresStore, first: int, count: int, pace: float
) -> None:
    """Publish the events of runs not started yet, ``pace`` seconds apart, again after
    a store error (as a client would)."""
    for n in range(first, first + count):
        if await store.known_keys([f"run-{n}"]):
            continue
        await anyio.sleep(pace)
        for attempt in range(100):
            try:
                await engine.bus.publish("chaos.go", {"n": n})
                break
            except StoreError as exc:
                print("publish_failed", n, attempt, exc, flush=True)
                await anyio.sleep(0.1)


def _die_with_parent() -> None:
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    _die_with_parent()
    dsn, log_path, inc = sys.argv[1], sys.argv[2], sys.argv[3]
    first, count, nap_s = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    pace = float(sys.argv[7])
    anyio.run(main, dsn, log_path, inc, first, count, nap_s, pace)
