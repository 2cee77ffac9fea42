"""Worker CPU while every run in flight only waits: on a slow host call, or on a JS timer.

Run: ``python -m benchmarks.wait_cpu [--runs 50] [--wait 2.0]``. It opens the default
pool, starts ``--runs`` runs that each await one host call answering after ``--wait``
seconds, and reads the workers' CPU from ``/proc`` over the middle of the wait (and
their state letters: ``T`` is stopped); then the same with a JS ``setTimeout``.
A jsrun runtime spins a core while its JS only waits, unless the pool parks it.
"""

from __future__ import annotations

import argparse
import time

import anyio

from runtime_pool import RuntimePool

from ._procfs import cpu_seconds


def _states(pids: tuple[int, ...]) -> str:
    found = []
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            found.append(f.read().rsplit(")", 1)[1].split()[0])
    return " ".join(found)


async def _measure(pool: RuntimePool, code: str, runs: int, wait: float) -> str:
    async def slow() -> int:
        await anyio.sleep(wait)
        return 1

    pids = pool.worker_pids()
    async with anyio.create_task_group() as tg:
        for _ in range(runs):
            tg.start_soon(lambda: pool.run(code, api={"slow": slow}))
        await anyio.sleep(wait * 0.15)  # all started and waiting
        used, began = cpu_seconds(pids), time.perf_counter()
        await anyio.sleep(wait * 0.7)
        cores = (cpu_seconds(pids) - used) / (time.perf_counter() - began)
        return f"{cores:.2f} cores over {len(pids)} workers (states: {_states(pids)})"


async def main(runs: int, wait: float) -> None:
    async with RuntimePool() as pool:
        await pool.run("return 1")
        host = await _measure(pool, "return await slow();", runs, wait)
        print(f"{runs} runs awaiting a {wait:g} s host call: workers {host}")
        timer = f"await new Promise((r) => setTimeout(r, {wait * 1000:g})); return 1;"
        timed = await _measure(pool, timer, runs, wait)
        print(f"{runs} runs awaiting a {wait:g} s JS timer: workers {timed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--wait", type=float, default=2.0)
    args = parser.parse_args()
    anyio.run(main, args.runs, args.wait)
