"""Side-by-side benchmark: the floor, the seed-style baseline, and this engine.

Run: ``python -m benchmarks [--smoke] [--only concurrency] [--out DIR]``. One
process, one invocation: times every case for every contender (see ``_cases.py``),
measures idle CPU and memory, then the many-runs-per-worker cases (see
``_concurrency.py``), prints a Markdown report and writes it to ``DIR/results.md``,
with the plot of per-step cost against N in ``DIR/per_step.png`` (needs the
``bench`` extra, matplotlib). ``--only concurrency`` runs only the latter cases.
``--smoke`` runs tiny sizes once each, for CI: no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import logging
import os
import platform
import subprocess
import sys
from contextlib import AsyncExitStack
from importlib import metadata
from pathlib import Path

import anyio
import structlog

from runtime_pool import RuntimePool

from ._breakdown import measure_breakdown
from ._cases import CPU_STEP_SECONDS, SMOKE_CPU_STEP_SECONDS, Plan, full_plan, smoke_plan
from ._concurrency import (
    full_concurrency_plan,
    measure_concurrency,
    open_engines,
    smoke_concurrency_plan,
    supports_concurrency,
)
from ._concurrency_report import ConcurrencyResults, concurrency_markdown
from ._contenders import Contender, engine_contender, floor_contender, seed_contender
from ._floor import calibrate_loops
from ._footprint import Footprint, engine_footprint, floor_footprint, seed_footprint
from ._measure import Sample, measure, measure_alternating
from ._plot import plot
from ._procfs import rss
from ._report import ENGINE, Results, markdown
from ._seed_style import SeedStyleRun
from ._shapes import fan_out, seed_dag

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _engines(default: RuntimePool, pools: dict[int, RuntimePool]) -> list[Contender]:
    label = f"engine, default pool ({default.size} workers = cores)"
    engines = [engine_contender(default, label, ENGINE)]
    engines += [
        engine_contender(pool, f"engine, pool size {size}", f"engine-{size}")
        for size, pool in pools.items()
    ]
    return engines


async def _time_all(plan: Plan, contenders: list[Contender]) -> list[Sample]:
    samples = []
    for case in plan.cases:
        expected: list[object] = []
        for contender in contenders:
            samples.append(await measure(contender, case, expected))
    return samples + await measure_alternating(contenders, plan.cpu_cases)


async def _footprints(plan: Plan, engines: list[Contender]) -> list[Footprint]:
    found = [
        await floor_footprint(seed_dag(), plan.idle_window),
        await seed_footprint(fan_out(plan.seed_fan_out)),
    ]
    for engine in engines:
        found.append(await engine_footprint(engine, seed_dag(), plan.idle_window))
    return found


async def run_benchmark(*, smoke: bool, only: str | None) -> tuple[Results | None, str]:
    """The main cases (unless ``only``) and the concurrency cases, as Markdown for the latter."""
    load, start_rss = os.getloadavg()[0], rss(os.getpid())
    await SeedStyleRun(seed_dag()).run()  # the first jsrun runtime of a process costs extra
    main = None if only else await _main_cases(smoke, load, start_rss)
    return main, concurrency_markdown(await run_concurrency(smoke=smoke))


async def run_concurrency(*, smoke: bool) -> ConcurrencyResults:
    supported, load = supports_concurrency(), os.getloadavg()[0]
    plan = smoke_concurrency_plan(supported) if smoke else full_concurrency_plan(supported)
    async with open_engines(supported) as engines:
        timed = await measure_concurrency(plan, engines)
        labels = [engine.label for engine in engines]
    header = _concurrency_header(supported, labels, load, smoke)
    return ConcurrencyResults(tuple(timed), plan, header, smoke)


def _concurrency_header(supported: bool, labels: list[str], load: float, smoke: bool) -> str:
    option = (
        "`RuntimePool` takes `concurrency=` here"
        if supported
        else "`RuntimePool` has NO `concurrency=` option on this checkout, so both engine rows "
        "are the same kind of pool (one run per worker at once): their difference is noise"
    )
    mode = "--smoke: tiny sizes, 1 repetition, no verdicts" if smoke else "full sizes"
    return (
        f"Checkout {_commit()}; {mode}; load average {load:.2f} at the start of this part, "
        f"{os.getloadavg()[0]:.2f} at the end. {option}. Engine rows: "
        + "; ".join(f"*{label}*" for label in labels)
        + ". Each case opens every contender, warms each with one untimed batch, then the "
        "contenders take turns for each timed batch. *runs at once* is the batch size; "
        "*CPU ms/step* is the median CPU per batch (from /proc) / steps in the batch; "
        "*peak RSS* is the largest sum of this process's and the pool's workers' resident "
        "memory sampled every 10 ms during the timed batches."
    )


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h (%s)"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"`{out.stdout.strip()}`"


async def _main_cases(smoke: bool, load: float, start_rss: int) -> Results:
    cpu_seconds = SMOKE_CPU_STEP_SECONDS if smoke else CPU_STEP_SECONDS
    loops = await calibrate_loops(cpu_seconds)
    plan = smoke_plan(loops) if smoke else full_plan(loops)
    async with AsyncExitStack() as stack:
        default = await stack.enter_async_context(RuntimePool())
        pools = {
            size: await stack.enter_async_context(RuntimePool(size=size))
            for size in (1, 2)
            if size != default.size
        }
        return await _measure_all(plan, default, pools, (load, start_rss), smoke)


async def _measure_all(
    plan: Plan,
    default: RuntimePool,
    pools: dict[int, RuntimePool],
    start: tuple[float, int],
    smoke: bool,
) -> Results:
    engines = _engines(default, pools)
    contenders = [floor_contender(), seed_contender(), *engines]
    samples = await _time_all(plan, contenders)
    footprints = await _footprints(plan, engines)
    breakdown = await measure_breakdown(pools.get(1, default), runs=100 if smoke else 2000)
    header = _header(default.size, start, smoke)
    return Results(tuple(samples), tuple(footprints), plan, header, breakdown)


def _header(workers: int, start: tuple[float, int], smoke: bool) -> str:
    load, start_rss = start
    today = datetime.date.today().isoformat()
    mode = "--smoke (tiny sizes, 1 repetition: not meaningful)" if smoke else "full run"
    same = " (the same as pool size 2 here, so run once)" if workers == 2 else ""
    return (
        f"`python -m benchmarks`, {mode}, {today}: {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, jsrun {metadata.version('jsrun')}, "
        f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.\n\n"
        "Median of `reps` timed runs after one untimed warm-up run (none for the seed-style "
        "baseline, which keeps nothing warm), with min-max. *per step* = median / steps; "
        "*x floor* = this row's per-step cost / the floor's; *seed-style / this* = the "
        "baseline's per-step cost / this row's. Every contender runs the same JS and must "
        "return the same output. The seed DAG's `fetch_data` answers at once (the guide's "
        f"0.1 s sleep would hide every cost). The default pool has {workers} workers{same}. "
        f"This process held {start_rss / 2**20:.0f} MB before its first runtime; the floor "
        "and the seed-style baseline run their runtimes in it, the engine in worker processes."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repetition (CI)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument(
        "--only", choices=("concurrency",), help="run only these cases (many runs per worker)"
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=1800.0,
        help="seconds; then dump every thread's stack and exit 1 (jsrun can hang)",
    )
    args = parser.parse_args()
    faulthandler.dump_traceback_later(args.give_up_after, exit=True)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results, concurrency = anyio.run(lambda: run_benchmark(smoke=args.smoke, only=args.only))
    args.out.mkdir(parents=True, exist_ok=True)
    text, written = concurrency + "\n", [args.out / "results.md"]
    if results is not None:
        skipped = plot(results, args.out / "per_step.png")
        figure = "![Per-step cost against N](per_step.png)" if skipped is None else f"({skipped})"
        text = markdown(results) + f"\n{text}\n## Per-step cost against N\n\n{figure}\n"
        written += [args.out / "per_step.png"] if skipped is None else []
    (args.out / "results.md").write_text(text)
    print(text)
    print("written: " + ", ".join(str(path) for path in written))
    sys.stdout.flush()
    # jsrun may segfault at interpreter exit after async bindings were used in-process
    # (the floor and the seed-style baseline do); everything is written, so leave now.
    os._exit(0)


if __name__ == "__main__":
    main()
