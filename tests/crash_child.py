"""One life of the crash test's engine process (see test_actors_crash.py).

``python tests/crash_child.py DB LOG LIFE NEW_RUNS``: opens an engine on the store
``DB`` (resuming what earlier lives left), starts ``NEW_RUNS`` keyed runs of a
diamond workflow, and waits for every run. Each step's JS calls the host function
``mark`` as it starts (an ``E run step attempt`` line in ``LOG``); a subscriber
writes ``C run step`` for each ``step.completed`` event it sees. Lines are single
``O_APPEND`` writes, so the parent's ``K`` line after each kill orders them.
With ``NEW_RUNS`` 0 it prints every run's status and output as JSON at the end.
"""

from __future__ import annotations

import json
import os
import random
import sys

import anyio

from actors import Engine, Retry, StepCompleted, Workflow
from runtime_pool import RuntimePool

STEP = "await mark(ctx.run.id, ctx.run.step, ctx.run.attempt);\nawait nap();\n"


def diamond() -> Workflow:
    wf = Workflow("diamond")
    wf.add_step("a", js=STEP + "return ctx.event.n + 1;")
    wf.add_step("b1", js=STEP + "return deps.a * 2;", after=["a"])
    wf.add_step("b2", js=STEP + "return deps.a * 3;", after=["a"])
    wf.add_step("join", js=STEP + "return deps.b1 + deps.b2;", after=["b1", "b2"])
    wf.add_step("out", js=STEP + "return {sum: deps.join, n: ctx.event.n};", after=["join"])
    return wf


def expected_output(n: int) -> dict[str, int]:
    return {"sum": 5 * (n + 1), "n": n}


class Log:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, *fields: object) -> None:
        os.write(self._fd, (" ".join(map(str, fields)) + "\n").encode())


async def main(db: str, log_path: str, life: int, new_runs: int) -> None:
    log = Log(log_path)

    def mark(run_id: str, step: str, attempt: int) -> None:
        log.line("E", run_id, step, attempt)

    async def nap() -> None:
        await anyio.sleep(random.uniform(0, 0.03))

    api = {"mark": mark, "nap": nap}
    pool = RuntimePool(size=1)
    async with Engine(api=api, pool=pool, store=db, retry=Retry(attempts=1)) as engine:
        async with anyio.create_task_group() as tg:
            await tg.start(_observe, engine, log)
            print("ready", flush=True)
            workflow = diamond()
            for j in range(new_runs):
                await engine.start(workflow, event={"n": j}, key=f"life-{life}-run-{j}")
            for run in await engine.runs(status="running", limit=10_000):
                await engine.wait(run.id)
            tg.cancel_scope.cancel()
        if new_runs == 0:
            runs = await engine.runs(limit=10_000)
            print(json.dumps([{"id": r.id, "status": r.status, "output": r.output} for r in runs]))


async def _observe(engine: Engine, log: Log, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    async with engine.bus.subscribe("step.completed", policy="block") as events:
        task_status.started()
        async for event in events:
            if isinstance(event, StepCompleted):
                log.line("C", event.run_id, event.step)


if __name__ == "__main__":
    db, log_path, life, new_runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    anyio.run(main, db, log_path, life, new_runs)
