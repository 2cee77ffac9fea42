"""Where runs go (``RuntimePool(placement=, concurrency=)``), the pools side by side.

Run: ``python -m benchmarks.placement [--configs spread:64,pack:64,pack:256] [--rounds 5]
[--smoke]``. One default-size pool per configuration (placement:concurrency; the
first is the base the others are compared with). For each case (the 1-3-1 DAG
whose steps await a 10 ms host call, 1000 concurrent runs; the seed DAG with
``fetch_data`` answering at once, 100 concurrent runs; the seed workflow whose
``fetch_data`` takes 0.1 s, 50 and 200 concurrent runs; a trivial chain of 100
steps) it warms every pool with one batch and times ``--rounds`` batches, the
pools taking turns. It prints per case and pool the median wall time, runs/s, the
ratio to the base, CPU per step (this process, the workers) and the workers' peak
resident memory. jsrun's thread spins while its JS waits, so every worker with
runs in flight takes a core: packing light runs onto one worker leaves the other
idle and parked, its core free for the host.
"""

from __future__ import annotations

import argparse
from typing import Any, cast

import anyio

from runtime_pool import RuntimePool

from ._shapes import chain, diamond_io, seed_dag, seed_workflow
from ._turns import print_side_by_side


async def main(configs: list[tuple[str, int]], rounds: int, smoke: bool) -> None:
    cases = [
        (diamond_io(0.01), 1000),
        (seed_dag(), 100),
        (seed_workflow(), 50),
        (seed_workflow(), 200),
        (chain(100), 1),
    ]
    if smoke:
        cases = [(diamond_io(0.01), 10), (seed_dag(), 10), (chain(6), 1)]
    pools = {
        f"{placement}:{concurrency}": RuntimePool(
            placement=cast(Any, placement), concurrency=concurrency
        )
        for placement, concurrency in configs
    }
    await print_side_by_side("placement:concurrency", "---", pools, cases, rounds)


def _config(text: str) -> tuple[str, int]:
    placement, _, concurrency = text.partition(":")
    if placement not in ("pack", "spread") or not concurrency.isdigit():
        raise argparse.ArgumentTypeError(f"not placement:concurrency: {text!r}")
    return placement, int(concurrency)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        default="spread:64,pack:64,pack:128,pack:256,pack:512",
        help="placement:concurrency pairs, the first is the base",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    args = parser.parse_args()
    configs = [_config(text) for text in args.configs.split(",")]
    anyio.run(main, configs, 1 if args.smoke else args.rounds, args.smoke)


if __name__ == "__main__":
    _cli()
