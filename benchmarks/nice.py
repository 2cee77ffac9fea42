"""The workers' JS threads at different CPU priorities (``RuntimePool(js_nice=)``), side by side.

Run: ``python -m benchmarks.nice [--levels 0,10,19] [--rounds 5] [--smoke]``. It opens
one default-size pool per nice level, then for each case (the 1-3-1 DAG whose steps
await a 10 ms host call, 1000 concurrent runs; the seed DAG with ``fetch_data``
answering at once, 100 concurrent runs; a trivial chain of 100 steps) warms every
pool with one batch and times ``--rounds`` batches, the levels taking turns. It
prints, per case and level, the median wall time, runs/s, its ratio to the first
level, and the CPU of this process and of the workers per step (from ``/proc``).
jsrun's thread spins while its JS waits; niced, the spin takes only CPU nothing
else wants, and the host process keeps the core it needs.
"""

from __future__ import annotations

import argparse
import os
from contextlib import AsyncExitStack

import anyio

from runtime_pool import RuntimePool

from ._shapes import chain, diamond_io, seed_dag
from ._turns import rows, time_case


async def main(levels: list[int], rounds: int, smoke: bool) -> None:
    cases = [(diamond_io(0.01), 1000), (seed_dag(), 100), (chain(100), 1)]
    if smoke:
        cases = [(diamond_io(0.01), 10), (seed_dag(), 10), (chain(6), 1)]
    load = os.getloadavg()[0]
    print(
        "| case | js_nice | runs at once | median ms (min-max) | runs/s | speed vs first "
        "level | ms/step | CPU ms/step: this process | CPU ms/step: workers | workers' peak "
        "RSS, MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    async with AsyncExitStack() as stack:
        pools = {
            str(level): await stack.enter_async_context(RuntimePool(js_nice=level))
            for level in levels
        }
        for shape, runs in cases:
            timed = await time_case(shape, runs, pools, rounds)
            for row in rows(shape.name, runs, runs * shape.size, timed):
                print(row, flush=True)
    print(f"\nload average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="0,10,19", help="nice levels, the first is the base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    anyio.run(main, levels, 1 if args.smoke else args.rounds, args.smoke)


if __name__ == "__main__":
    _cli()
