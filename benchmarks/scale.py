"""Scaling out: runs/s and per-step latency for 1, 2 and 4 engine processes on one
PostgreSQL database, beside one engine on a SQLite store and one in memory.

Run: ``python -m benchmarks.scale [--smoke] [--runs N] [--dsn postgresql://...]``.
Without ``--dsn`` a throwaway server is started from Debian's binaries (as the
tests do). Each PostgreSQL case gets a new database: N engine processes each
register a trigger; the parent records N runs' events in the store (as a publish
on any replica does) and times until every run completed. Steps: a chain of 3,
either trivial or each awaiting a 50 ms host call. Per-step latency is the mean
recorded step duration (waiting for a sandbox included); run latency, from the
run's start to its end, is given as median and 95th percentile. Every engine has
one sandbox worker. PostgreSQL engines share their bus events (``share_events``,
the default); one row per kind shows a single engine without. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import asyncpg

from actors import Engine, PostgresStore, Workflow
from runtime_pool import RuntimePool

KINDS = {"trivial": "return (deps.s0 || 0) + 1;", "host 50 ms": "await pause(); return 1;"}
STEPS = 3


def workflow(kind: str) -> Workflow:
    wf = Workflow("bench")
    for i in range(STEPS):
        wf.add_step(f"s{i}", js=KINDS[kind], after=[f"s{i - 1}"] if i else [])
    return wf


async def pause() -> None:
    await anyio.sleep(0.05)


def engine_for(store: Any) -> Engine:
    return Engine(api={"pause": pause}, pool=RuntimePool(size=1), store=store)


Figures = tuple[float, float, float, float]  # runs/s, ms/step, run p50 ms, run p95 ms


def latency(durations: list[float]) -> tuple[float, float]:
    """Median and 95th percentile, in ms, of run durations in seconds."""
    if len(durations) < 2:
        return (durations or [0.0])[0] * 1000, (durations or [0.0])[0] * 1000
    cuts = statistics.quantiles(durations, n=20)
    return statistics.median(durations) * 1000, cuts[-1] * 1000


async def worker(dsn: str, kind: str, share: str = "share") -> None:
    engine = engine_for(PostgresStore(dsn, share_events=share == "share"))
    engine.on("bench.*", workflow(kind))
    async with engine:
        print("ready", flush=True)
        await anyio.sleep_forever()


def spawn(dsn: str, kind: str, engines: int, share: bool) -> list[subprocess.Popen[str]]:
    """``engines`` engine processes, each ready (its trigger served)."""
    sharing = "share" if share else "alone"
    command = [sys.executable, "-m", "benchmarks.scale", "--worker", dsn, kind, sharing]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(engines)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return children


async def on_postgres(dsn: str, runs: int) -> Figures:
    async with PostgresStore(dsn) as store:
        began = time.perf_counter()
        for n in range(runs):
            await store.record_event("bench.go", {"n": n})
        conn = await asyncpg.connect(dsn)
        try:
            query = "SELECT count(*) FROM actors_runs WHERE status <> 'running'"
            while True:  # every run ended (a failed one is reported, not waited for)
                if await conn.fetchval(query) >= runs:
                    break
                await anyio.sleep(0.02)
            elapsed = time.perf_counter() - began
            step = await conn.fetchval("SELECT avg(duration) FROM actors_steps")
            spans = await conn.fetch("SELECT ended_at - created_at FROM actors_runs")
            failed = await conn.fetchval(
                "SELECT count(*) FROM actors_runs WHERE status <> 'completed'"
            )
            if failed:
                print(f"  ({failed} of {runs} runs did not complete)")
        finally:
            await conn.close()
    return (runs / elapsed, float(step) * 1000, *latency([float(r[0]) for r in spans]))


async def in_process(store: Any, kind: str, runs: int) -> Figures:
    wf = workflow(kind)
    async with engine_for(store) as engine:
        await engine.run(wf)  # warm
        began = time.perf_counter()
        handles = [await engine.start(wf) for _ in range(runs)]
        results = [await handle.wait() for handle in handles]
        elapsed = time.perf_counter() - began
    durations = [s.duration for r in results for s in r.steps.values()]
    spans = latency([r.duration for r in results])
    return (runs / elapsed, sum(durations) / len(durations) * 1000, *spans)


async def new_database(server_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server_dsn.rsplit("/", 1)[0] + "/" + name


def row(label: str, kind: str, figures: Figures) -> None:
    rate, step, p50, p95 = figures
    print(f"{label:<30} {kind:<11} {rate:8.1f} {step:8.1f} {p50:8.0f} {p95:8.0f}")


def on_engines(server_dsn: str, kind: str, runs: int, count: int, share: bool) -> Figures:
    dsn = asyncio.run(new_database(server_dsn, f"bench_{count}_{kind[:4]}_{int(share)}"))
    children = spawn(dsn, kind, count, share)
    try:
        return asyncio.run(on_postgres(dsn, runs))
    finally:
        for child in children:
            child.kill()
            child.wait()


def main(server_dsn: str, runs: int, engine_counts: list[int]) -> None:
    print(f"{runs} runs of a {STEPS}-step chain; one sandbox worker per engine")
    header = ("contender", "steps", "runs/s", "ms/step", "run p50", "run p95")
    print("{:<30} {:<11} {:>8} {:>8} {:>8} {:>8}".format(*header))
    for kind in KINDS:
        for label, store in (("in memory", None), ("SQLite, 1 engine", "sqlite")):
            if store == "sqlite":
                store = str(Path(tempfile.mkdtemp()) / "runs.db")
            row(label, kind, asyncio.run(in_process(store, kind, runs)))
        for count in engine_counts:
            figures = on_engines(server_dsn, kind, runs, count, share=True)
            row(f"PostgreSQL, {count} engine(s)", kind, figures)
        figures = on_engines(server_dsn, kind, runs, 1, share=False)
        row("PostgreSQL, 1, not sharing", kind, figures)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dsn", help="a PostgreSQL server (default: start one)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(*args.worker))
        return
    runs, counts = (10, [1, 2]) if args.smoke else (args.runs, [1, 2, 4])
    if args.dsn:
        main(args.dsn, runs, counts)
        return
    from tests import pg_server

    binaries = pg_server.find_binaries()
    if binaries is None:
        sys.exit("no PostgreSQL server binaries: pass --dsn or apt install postgresql")
    server = pg_server.start(binaries)
    try:
        main(server.dsn(), runs, counts)
    finally:
        server.stop()


if __name__ == "__main__":
    cli()
