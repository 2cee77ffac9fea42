"""A trivial chain of 100 steps, run back to back and after a pause, per step.

Run: ``python -m benchmarks.chain_pause [--runs 20] [--pause 0.1] [--smoke]``. The
engine on the default pool runs the chain ``--runs`` times with no pause between
runs, then ``--runs`` times each after ``--pause`` seconds of doing nothing (as
``python -m benchmarks`` does before every timed batch, so the other contenders'
workers park). After a pause the pool has parked its workers and their runtimes'
dispatch loops have stopped: the first steps of a run pay for waking them, which
is a fixed cost per run, not per step. Prints the median and minimum per step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio

from actors import Engine
from runtime_pool import RuntimePool

from ._shapes import chain


async def main(runs: int, pause: float, length: int) -> None:
    shape = chain(length)
    workflow = shape.workflow()
    async with (
        RuntimePool() as pool,
        Engine(pool=pool, api=shape.api, context=shape.context) as engine,
    ):
        for _ in range(3):  # warm-up
            await engine.run(workflow, event=dict(shape.event))
        for label, wait in (("back to back", 0.0), (f"after a {pause} s pause", pause)):
            times = []
            for _ in range(runs):
                await anyio.sleep(wait)
                began = time.perf_counter()
                result = await engine.run(workflow, event=dict(shape.event))
                times.append(time.perf_counter() - began)
                if result.status != "completed":
                    raise RuntimeError(f"chain: run {result.status}")
            print(
                f"chain N={length}, {label}: median {statistics.median(times) / length * 1e3:.3f}"
                f" ms/step, min {min(times) / length * 1e3:.3f} ms/step ({runs} runs)"
            )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.1)
    parser.add_argument("--smoke", action="store_true", help="a chain of 6, 2 runs each")
    args = parser.parse_args()
    if args.smoke:
        anyio.run(main, 2, args.pause, 6)
    else:
        anyio.run(main, args.runs, args.pause, 100)


if __name__ == "__main__":
    _cli()
