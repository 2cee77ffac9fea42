"""Side-by-side benchmark: the floor, the seed-style baseline, and this engine.

Run: ``python -m benchmarks [--smoke] [--out DIR]``. One process, one invocation:
times every case for every contender (see ``_cases.py``), measures idle CPU and
memory, prints a Markdown report and writes it to ``DIR/results.md``, with the
plot of per-step cost against N in ``DIR/per_step.png`` (needs the ``bench``
extra, matplotlib). ``--smoke`` runs tiny sizes once each, for CI: no timing is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import logging
import os
import platform
import sys
from contextlib import AsyncExitStack
from importlib import metadata
from pathlib import Path

import anyio
import structlog

from runtime_pool import RuntimePool

from ._breakdown import measure_breakdown
from ._cases import CPU_STEP_SECONDS, SMOKE_CPU_STEP_SECONDS, Plan, full_plan, smoke_plan
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


async def run_benchmark(*, smoke: bool) -> Results:
    load, start_rss = os.getloadavg()[0], rss(os.getpid())
    await SeedStyleRun(seed_dag()).run()  # the first jsrun runtime of a process costs extra
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
        "--give-up-after",
        type=float,
        default=1800.0,
        help="seconds; then dump every thread's stack and exit 1 (jsrun can hang)",
    )
    args = parser.parse_args()
    faulthandler.dump_traceback_later(args.give_up_after, exit=True)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = anyio.run(lambda: run_benchmark(smoke=args.smoke))
    args.out.mkdir(parents=True, exist_ok=True)
    skipped = plot(results, args.out / "per_step.png")
    figure = "![Per-step cost against N](per_step.png)" if skipped is None else f"({skipped})"
    text = markdown(results) + f"\n## Per-step cost against N\n\n{figure}\n"
    (args.out / "results.md").write_text(text)
    print(text)
    print(
        f"written: {args.out / 'results.md'}"
        + (f", {args.out / 'per_step.png'}" if skipped is None else "")
    )
    sys.stdout.flush()
    # jsrun may segfault at interpreter exit after async bindings were used in-process
    # (the floor and the seed-style baseline do); everything is written, so leave now.
    os._exit(0)


if __name__ == "__main__":
    main()
