"""What many waiting runs cost (not a test): ``wait_for`` and ``sleep`` at scale.

N runs of a one-step workflow are started; each waits (``wait_for`` an event with
its own ``match`` value, or a ``sleep``). Reported: time to get all N waiting,
the engine's process CPU and memory meanwhile, and time from the releasing
publishes (one per run) to the last run's end. ``max_active_runs`` is left at its
default (100): waiting runs lend their places, so the N starts do not queue.

    python benchmarks/bench_waits.py                 # N = 1000 and 10000
    python benchmarks/bench_waits.py --sizes 2000 --store /tmp/waits.db
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import Engine, Workflow
from runtime_pool import RuntimePool


def workflow(kind: str) -> Workflow:
    wf = Workflow(f"wait_{kind}")
    if kind == "wait_for":
        wf.add_step("wait", wait_for={"topic": "go", "match": "n", "timeout": 3600})
    else:
        wf.add_step("wait", sleep=1.0)
    return wf


async def measure(kind: str, n: int, store: str | None) -> None:
    wf = workflow(kind)
    async with Engine(pool=RuntimePool(size=1), store=store) as engine:
        cpu0, t0 = time.process_time(), time.perf_counter()
        async with engine.bus.subscribe("step.waiting", max_buffer=n + 10) as events:
            handles = [await engine.start(wf, event={"n": i}) for i in range(n)]
            for _ in range(n):
                await events.receive()
        waiting = time.perf_counter() - t0
        cpu_idle = time.process_time()
        await anyio.sleep(0.5)  # while they wait: the engine's CPU
        idle = (time.process_time() - cpu_idle) / 0.5
        t1 = time.perf_counter()
        if kind == "wait_for":
            for i in range(n):
                await engine.bus.publish("go", {"n": i})
        for handle in handles:
            await handle.wait()
        released = time.perf_counter() - t1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{kind:8} N={n:6} store={'sqlite' if store else 'none':6}"
            f"  all waiting in {waiting:6.2f} s ({waiting / n * 1e3:5.2f} ms/run,"
            f" cpu {time.process_time() - cpu0:5.2f} s)"
            f"  idle cpu {idle:4.2f}  released+ended in {released:6.2f} s  peak rss {rss:6.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--store", help="a SQLite file path (a new file per size)")
    args = parser.parse_args()
    for n in args.sizes:
        for kind in ("wait_for", "sleep"):
            store = None if args.store is None else f"{args.store}.{kind}.{n}"
            anyio.run(measure, kind, n, store)


if __name__ == "__main__":
    main()
