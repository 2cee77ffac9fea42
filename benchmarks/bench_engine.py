"""Engine overhead per step, beyond the runner's own ``execute`` (not a test).

Shapes: a chain of N steps, and a fan-out of N steps from one root joined by
one step. For each, the same scripts are run twice: through the engine, and
straight through ``runner.execute`` in the same dependency order (the baseline).
Overhead per step = (engine time - baseline time) / steps. Targets (issue 3):
under 0.2 ms per step, and the per-step cost at N=1000 within 1.5x of N=100.

    python benchmarks/bench_engine.py                 # fake runner, plus the pool if importable
    python benchmarks/bench_engine.py --runner fake   # pure scheduling overhead
    python benchmarks/bench_engine.py --runner pool --sizes 100 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import Engine, StepRunner, Workflow
from actors.testing import FakeRunner

JS = "return 1;"
TARGET_MS = 0.2
TARGET_RATIO = 1.5


def chain(n: int) -> Workflow:
    wf = Workflow(f"chain{n}")
    for i in range(n):
        wf.add_step(f"s{i}", js=JS, after=[f"s{i - 1}"] if i else [])
    return wf


def fan_out(n: int) -> Workflow:
    wf = Workflow(f"fan{n}")
    wf.add_step("root", js=JS)
    for i in range(n - 2):
        wf.add_step(f"leaf{i}", js=JS, after=["root"])
    wf.add_step("join", js=JS, after=[f"leaf{i}" for i in range(n - 2)])
    return wf


def _globals(step: str, deps: dict[str, Any]) -> dict[str, Any]:
    run = {"id": "bench", "workflow": "bench", "step": step, "attempt": 1}
    return {"deps": deps, "ctx": {"event": {}, "run": run}}


async def baseline_chain(runner: StepRunner, n: int) -> None:
    value: Any = None
    for i in range(n):
        deps = {f"s{i - 1}": value} if i else {}
        value = (await runner.execute(JS, globals=_globals(f"s{i}", deps), timeout=30)).value


async def baseline_fan_out(runner: StepRunner, n: int) -> None:
    root = (await runner.execute(JS, globals=_globals("root", {}), timeout=30)).value
    results: dict[str, Any] = {}

    async def leaf(i: int) -> None:
        name = f"leaf{i}"
        execution = await runner.execute(JS, globals=_globals(name, {"root": root}), timeout=30)
        results[name] = execution.value

    async with anyio.create_task_group() as tg:
        for i in range(n - 2):
            tg.start_soon(leaf, i)
    await runner.execute(JS, globals=_globals("join", results), timeout=30)


async def best_of(repeat: int, action: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure(runner: StepRunner, sizes: list[int], repeat: int) -> dict[str, dict[int, float]]:
    shapes = {"chain": (chain, baseline_chain), "fan-out+join": (fan_out, baseline_fan_out)}
    per_step: dict[str, dict[int, float]] = {}
    async with Engine(pool=runner) as engine:
        await engine.run(chain(10))  # warm up
        for shape, (build, baseline) in shapes.items():
            per_step[shape] = {}
            for n in sizes:
                wf = build(n)
                engine_s = await best_of(repeat, partial(engine.run, wf))
                base_s = await best_of(repeat, partial(baseline, runner, n))
                overhead_ms = (engine_s - base_s) / n * 1000
                per_step[shape][n] = overhead_ms
                print(
                    f"  {shape:13} N={n:5}  engine {engine_s * 1000:9.1f} ms  "
                    f"runner alone {base_s * 1000:9.1f} ms  overhead/step {overhead_ms:7.3f} ms"
                )
    return per_step


def verdict(per_step: dict[str, dict[int, float]]) -> bool:
    ok = True
    for shape, by_size in per_step.items():
        small, large = min(by_size), max(by_size)
        worst = max(by_size.values())
        ratio = by_size[large] / by_size[small] if by_size[small] > 0 else float("nan")
        fine = worst < TARGET_MS and (small == large or ratio <= TARGET_RATIO or worst < 0.02)
        ok = ok and fine
        print(
            f"  {shape:13} worst {worst:.3f} ms/step (target < {TARGET_MS}), "
            f"N={large} vs N={small}: {ratio:.2f}x (target <= {TARGET_RATIO}) "
            f"{'OK' if fine else 'MISSED'}"
        )
    return ok


def runners(choice: str) -> list[tuple[str, Callable[[], StepRunner]]]:
    chosen: list[tuple[str, Callable[[], StepRunner]]] = []
    if choice in ("fake", "both"):
        chosen.append(("fake runner (pure scheduling)", lambda: FakeRunner(copy_values=False)))
    if choice in ("pool", "both"):
        try:
            pool_class = importlib.import_module("runtime_pool").RuntimePool
        except (ImportError, AttributeError):
            if choice == "pool":
                raise SystemExit("runtime_pool.RuntimePool is not importable") from None
            print("(runtime_pool.RuntimePool not importable: real pool skipped)")
        else:
            chosen.append(("real RuntimePool", pool_class))
    return chosen


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runner", choices=("fake", "pool", "both"), default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ok = True
    for label, make in runners(args.runner):
        print(f"{label}:")
        per_step = await measure(make(), sorted(args.sizes), args.repeat)
        ok = verdict(per_step) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
