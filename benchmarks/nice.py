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

import anyio

from runtime_pool import RuntimePool

from ._shapes import chain, diamond_io, seed_dag
from ._turns import print_side_by_side


async def main(levels: list[int], rounds: int, smoke: bool) -> None:
    cases = [(diamond_io(0.01), 1000), (seed_dag(), 100), (chain(100), 1)]
    if smoke:
        cases = [(diamond_io(0.01), 10), (seed_dag(), 10), (chain(6), 1)]
    pools = {str(level): RuntimePool(js_nice=level) for level in levels}
    await print_side_by_side("js_nice", "---:", pools, cases, rounds)


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
