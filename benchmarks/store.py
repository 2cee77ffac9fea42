"""Durable runs: the engine with and without a SQLite store, side by side in one run.

Run: ``python -m benchmarks.store [--smoke] [--reps N]``. Cases: a chain of N
trivial steps (ms per step, and what the store adds per step), a fan-out of N
(ms per step), and 100 concurrent seed-DAG runs (runs per second, and the store's
share of the in-memory rate). One pool serves both engines; the two contenders
alternate repetition by repetition, and the median is reported. The store file
is new for each engine, in a temporary directory. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from actors import Engine, StepRunner
from actors.testing import FakeRunner, FakeScript
from runtime_pool import RuntimePool

from ._shapes import TRIVIAL, Shape, chain, fan_out, seed_dag

Case = Callable[[Engine], Awaitable[float]]


def _one_run(shape: Shape) -> Case:
    workflow = shape.workflow()

    async def case(engine: Engine) -> float:
        began = time.perf_counter()
        result = await engine.run(workflow, event=dict(shape.event))
        assert result.status == "completed", result
        return (time.perf_counter() - began) * 1000 / shape.size  # ms per step

    return case


def _cpu_per_step(shape: Shape) -> Case:
    """CPU time of the whole process (all threads) per step: steadier than wall time
    on a busy machine; with the fake runner it is the engine's own cost."""
    workflow = shape.workflow()

    async def case(engine: Engine) -> float:
        began = time.process_time()
        result = await engine.run(workflow, event=dict(shape.event))
        assert result.status == "completed", result
        return (time.process_time() - began) * 1000 / shape.size

    return case


def _concurrent(shape: Shape, runs: int) -> Case:
    workflow = shape.workflow()

    async def case(engine: Engine) -> float:
        began = time.perf_counter()
        handles = [await engine.start(workflow, event=dict(shape.event)) for _ in range(runs)]
        for handle in handles:
            assert (await handle.wait()).status == "completed"
        return runs / (time.perf_counter() - began)  # runs per second

    return case


async def _measure(
    pool: StepRunner, case: Case, reps: int, folder: Path
) -> tuple[list[float], list[float]]:
    """Samples of ``case`` without and with a store, alternating."""
    shape = seed_dag()
    plain: list[float] = []
    stored: list[float] = []
    for rep in range(reps + 1):  # the first repetition warms up and is dropped
        for samples, store in ((plain, None), (stored, folder / f"runs-{rep}-{time.time_ns()}.db")):
            async with Engine(pool=pool, store=store, api=shape.api, context=shape.context) as e:
                value = await case(e)
            if rep:
                samples.append(value)
    return plain, stored


async def main(smoke: bool, reps: int) -> None:
    n = 10 if smoke else 200
    runs = 10 if smoke else 100
    cases: list[tuple[str, Case, str]] = [
        (f"chain N={n}, engine only (fake runner)", _cpu_per_step(chain(n)), "CPU ms/step"),
        (f"chain N={n}", _one_run(chain(n)), "ms/step"),
        (f"fan-out N={n}", _one_run(fan_out(n)), "ms/step"),
        (f"{runs} concurrent seed DAG runs", _concurrent(seed_dag(), runs), "runs/s"),
    ]
    print(f"median (best) of {reps} repetitions each, alternating")
    print("| case | unit | in memory | SQLite store | with the store |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        fake = FakeRunner({TRIVIAL: _trivial})
        async with RuntimePool() as pool, fake:  # open: the engines leave them open
            for name, case, unit in cases:
                runner: StepRunner = fake if "fake" in name else pool
                plain, stored = await _measure(runner, case, reps, Path(folder))
                best = max if unit == "runs/s" else min
                cells = [f"{statistics.median(x):.3f} ({best(x):.3f})" for x in (plain, stored)]
                change = _change(unit, statistics.median(plain), statistics.median(stored))
                change += f" ({_change(unit, best(plain), best(stored))})"
                print(f"| {name} | {unit} | {cells[0]} | {cells[1]} | {change} |", flush=True)


async def _trivial(script: FakeScript) -> int:
    return max([0, *script.deps.values()]) + 1


def _change(unit: str, plain: float, stored: float) -> str:
    if unit == "runs/s":
        return f"{stored / plain:.0%} of the rate"
    return f"{stored - plain:+.3f} ms/step"


def _args(argv: Any = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--reps", type=int, default=9, help="repetitions per contender")
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = _args()
    anyio.run(main, options.smoke, 1 if options.smoke else options.reps)
