"""Chaos on a PostgreSQL cluster: engine processes killed and stopped while they share runs.

``pg_cluster_chaos(dsn, workdir, runs=300, engines=3)`` (``pg_cluster_case`` on a
throwaway server: ``python -m benchmarks.chaos --only pg_cluster``) starts ``engines`` engine
processes (``_pg_engine.py``) on the empty database ``dsn``; each publishes the
trigger events of its share of the runs. Every ``every`` seconds, at a random
point, one ready engine gets ``SIGKILL`` and is started again (up to ``kills``
times, while runs are unfinished);
after the first kill, the engine holding most runs is ``SIGSTOP``ped until the others took
them all over, then resumed (and spared until it logged the runs it lost).
Then it waits for every run to end. The report checks, from the database and the
shared log, only exact outcomes: every run exists once and completed with the
right output; no step ran again after its completion was recorded (but by an
engine that then logged ``run_lost`` for the run or was killed: an attempt it had
dispatched before it lost the run, see below); each step's
completion (the join's too) was announced once; the stopped engine, resumed,
announced no completion of a step it began before the stop in a run another
engine took over meanwhile. (Attempts the stopped engine had dispatched before
the stop, waiting for its sandbox worker, still run their JS once it resumes; their
outcome is not recorded. They are counted as ``stale_attempts``, not as re-runs.)
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import asyncpg

from actors import Workflow

__all__ = ("PgChaosReport", "pg_cluster_case", "pg_cluster_chaos")

ROOT = Path(__file__).resolve().parents[2]
NAMES = "ABCDEFGH"
LEASE = 1.0
STEP = "await mark(ctx.run.id, ctx.run.step, ctx.run.attempt);\nawait nap();\n"


def diamond() -> Workflow:
    wf = Workflow("diamond")
    wf.add_step("a", js=STEP + "return ctx.event.n + 1;")
    wf.add_step("b1", js=STEP + "return deps.a * 2;", after=["a"])
    wf.add_step("b2", js=STEP + "return deps.a * 3;", after=["a"])
    wf.add_step("join", js=STEP + "return deps.b1 + deps.b2;", after=["b1", "b2"])
    wf.add_step("out", js=STEP + "return {sum: deps.join, n: ctx.event.n};", after=["join"])
    return wf


def expected_output(n: int) -> dict[str, int]:
    return {"sum": 5 * (n + 1), "n": n}


@dataclass
class PgChaosReport:
    runs: int
    engines: int
    kills: int = 0
    stopped: str | None = None  # the incarnation stopped (not killed before it logs run_lost)
    stopped_name: str = ""
    lost: int = 0  # runs it held when stopped (all taken over before it resumed)
    stopped_for: float = 0.0  # seconds
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    wrong_outputs: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    step_executions: int = 0
    reruns: int = 0  # step executions past the first (a step cut off by a kill or stop)
    rerun_after_record: list[tuple[str, str]] = field(default_factory=list)
    announced_twice: list[tuple[str, str]] = field(default_factory=list)
    joins: int = 0  # join completions announced (a kill may beat an announcement)
    late_records: list[tuple[str, str]] = field(default_factory=list)
    stale_attempts: int = 0  # the resumed engine's queued attempts of runs it lost
    runs_lost_logged: int = 0  # run_lost lines the stopped engine logged once resumed
    crashed: list[str] = field(default_factory=list)  # engines that exited by themselves

    def problems(self) -> list[str]:
        found = []
        if self.missing or self.statuses != Counter({"completed": self.runs}):
            found.append(f"runs {dict(self.statuses)}, missing {self.missing[:10]}")
        if self.wrong_outputs:
            found.append(f"wrong outputs: runs {self.wrong_outputs[:10]}")
        if self.rerun_after_record:
            found.append(
                f"steps ran after their completion was recorded: {self.rerun_after_record[:5]}"
            )
        if self.announced_twice:
            found.append(f"steps completed twice: {self.announced_twice[:5]}")
        if self.crashed:
            found.append(f"engines exited by themselves (see their .out): {self.crashed}")
        if self.late_records:
            found.append(f"a resumed engine recorded lost runs: {self.late_records[:5]}")
        return found


class Cluster:
    """The engine processes and their shared log."""

    def __init__(
        self, dsn: str, workdir: Path, runs: int, engines: int, nap: float, pace: float
    ) -> None:
        self.dsn, self.workdir, self.nap, self.pace = dsn, workdir, nap, pace
        self.log = workdir / "events.log"
        share = -(-runs // engines)
        self.slices = {
            NAMES[i]: (i * share, max(0, min(share, runs - i * share))) for i in range(engines)
        }
        self.lives: Counter[str] = Counter()
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.lives[name] += 1
        inc = f"{name}.{self.lives[name]}"
        first, count = self.slices[name]
        args = [sys.executable, "-m", "benchmarks.chaos._pg_engine", self.dsn, str(self.log), inc]
        args += [str(first), str(count), str(self.nap), str(self.pace)]
        with open(self.workdir / f"{inc}.out", "wb") as out:
            self.children[name] = subprocess.Popen(args, stdout=out, stderr=out, cwd=ROOT)

    def incarnation(self, name: str) -> str:
        return f"{name}.{self.lives[name]}"

    def lines(self) -> list[list[str]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split() for line in text.splitlines() if line.strip()]

    def ready(self) -> set[str]:
        up = {line[1] for line in self.lines() if line[0] == "R"}
        return {name for name in self.children if self.incarnation(name) in up}

    def note(self, *fields: str) -> None:
        with open(self.log, "a") as log:
            log.write(" ".join(fields) + "\n")

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.children[name].send_signal(sig)

    def kill(self, name: str) -> None:
        child = self.children[name]
        child.kill()
        child.wait()
        self.note("K", self.incarnation(name))

    def restart_exited(self) -> list[str]:
        """Start again the engines that exited by themselves; their incarnations."""
        exited = [name for name, child in self.children.items() if child.poll() is not None]
        gone = [self.incarnation(name) for name in exited]
        for name in exited:
            self.start(name)
        return gone

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)
                child.kill()
            child.wait()


def pg_cluster_chaos(
    dsn: str,
    workdir: Path,
    *,
    runs: int = 300,
    engines: int = 3,
    kills: int = 30,
    every: float = 1.0,
    nap: float = 0.02,
    pace: float = 0.0,
    timeout: float = 600.0,
) -> PgChaosReport:
    """Run the case (see the module docstring); blocks until done (or ``timeout``).
    ``nap``: up to this many seconds in each step; ``pace``: seconds between an
    engine's publishes (so runs start throughout the storm)."""
    cluster = Cluster(dsn, workdir, runs, engines, nap, pace)
    report = PgChaosReport(runs=runs, engines=engines)
    began = time.monotonic()
    try:
        for name in cluster.slices:
            cluster.start(name)
        while len(cluster.ready()) < engines and time.monotonic() < began + timeout:
            time.sleep(0.05)  # (the first one up creates the schema)
        _storm(cluster, report, kills, every)
        _wait_all_ended(cluster, report, began + timeout)
        if report.stopped is not None:  # what it logs once resumed
            _wait_for_text(workdir / f"{report.stopped}.out", "run_lost", began + timeout)
    finally:
        cluster.stop_all()
    report.seconds = time.monotonic() - began
    _check(cluster, report)
    return report


def _storm(cluster: Cluster, report: PgChaosReport, kills: int, every: float) -> None:
    """``kills`` kills, one at a random point of each period; after the first (once
    two engines are up), a stop of the engine holding most runs, until the others
    took all of them over."""
    while report.kills < kills and not _all_ended(cluster.dsn, report.runs):
        pause = random.uniform(0, every)
        time.sleep(pause)
        report.crashed += cluster.restart_exited()
        ready = sorted(cluster.ready() - _spared(cluster, report))
        if report.kills and report.stopped is None and len(ready) > 1:
            ready = [] if _stop(cluster, report, ready) else ready  # no kill meanwhile
        if ready:
            victim = random.choice(ready)
            cluster.kill(victim)
            cluster.start(victim)
            report.kills += 1
        time.sleep(every - pause)


def _spared(cluster: Cluster, report: PgChaosReport) -> set[str]:
    """The stopped engine, until it has logged the runs it lost (then it may be killed)."""
    if report.stopped is None:
        return set()
    out = cluster.workdir / f"{report.stopped}.out"
    return set() if "run_lost" in out.read_text(errors="replace") else {report.stopped_name}


def _stop(cluster: Cluster, report: PgChaosReport, ready: list[str]) -> bool:
    """SIGSTOP an engine holding runs; SIGCONT once its lease lapsed and the others
    took every run it held (or after 30 s). A stop during which no run was taken
    over (each one ended by a commit already under way) does not count (``U``)."""
    holding = {name: _held(cluster, name) for name in ready}
    name = max(holding, key=lambda n: len(holding[n]))
    if not holding[name]:
        return False
    inc = cluster.incarnation(name)
    cluster.signal(name, signal.SIGSTOP)
    cluster.note("S", inc)
    began = time.monotonic()
    time.sleep(2 * LEASE)
    while _held(cluster, name) and time.monotonic() < began + 30:
        time.sleep(0.1)
    taken = _taken(cluster.dsn, holding[name])
    cluster.signal(name, signal.SIGCONT)
    cluster.note("T" if taken else "U", inc)
    if taken:
        report.stopped, report.stopped_name, report.lost = inc, name, taken
        report.stopped_for = time.monotonic() - began
    return True


def _held(cluster: Cluster, name: str) -> dict[str, int]:
    """The running runs engine ``name`` holds, with their fencing tokens."""
    pid = cluster.children[name].pid
    sql = f"SELECT id, fence FROM actors_runs WHERE status = 'running' AND owner LIKE '%:{pid}:%'"
    return {row["id"]: row["fence"] for row in _query(cluster.dsn, sql)}


def _taken(dsn: str, held: dict[str, int]) -> int:
    """How many of ``held`` were taken over since (their token moved on)."""
    rows = _query(dsn, "SELECT id, fence FROM actors_runs")
    return sum(1 for row in rows if row["id"] in held and row["fence"] > held[row["id"]])


def _query(dsn: str, sql: str) -> list[asyncpg.Record]:
    async def read() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(read())


def _all_ended(dsn: str, runs: int) -> bool:
    sql = "SELECT count(*) FILTER (WHERE status <> 'running'), count(*) FROM actors_runs"
    ended, total = _query(dsn, sql)[0]
    return bool(total >= runs and ended == total)


def _wait_all_ended(cluster: Cluster, report: PgChaosReport, deadline: float) -> None:
    while time.monotonic() < deadline and not _all_ended(cluster.dsn, report.runs):
        report.crashed += cluster.restart_exited()
        time.sleep(0.2)


def _wait_for_text(path: Path, text: str, deadline: float) -> None:
    while time.monotonic() < deadline and text not in path.read_text(errors="replace"):
        time.sleep(0.1)


def _check(cluster: Cluster, report: PgChaosReport) -> None:
    rows = _query(cluster.dsn, "SELECT key, status, output FROM actors_runs")
    outputs = {int(r["key"].split("-")[1]): r for r in rows}
    report.statuses = Counter(r["status"] for r in rows)
    report.missing = [n for n in range(report.runs) if n not in outputs]
    report.wrong_outputs = [
        n
        for n, r in outputs.items()
        if r["status"] == "completed" and json.loads(str(r["output"])) != expected_output(n)
    ]
    _check_log(cluster.lines(), report, _runs_lost(cluster.workdir))
    if report.stopped is not None:
        out = cluster.workdir / f"{report.stopped}.out"
        report.runs_lost_logged = out.read_text(errors="replace").count("run_lost")


def _lost_or_killed(inc: str, run: str, after: list[list[str]], lost: set[tuple[str, str]]) -> bool:
    """Whether ``inc`` logged ``run_lost`` for ``run`` (it had lost the run: a stalled
    engine's attempt dispatched before, see the docstring) or was killed later."""
    return (inc, run) in lost or ["K", inc] in after


def _runs_lost(workdir: Path) -> set[tuple[str, str]]:
    """``(incarnation, run id)`` of every ``run_lost`` line the engines logged."""
    found = set()
    for path in workdir.glob("*.out"):
        for text in path.read_text(errors="replace").splitlines():
            match = re.search(r"run_lost.*run_id=(\w+)", text)
            if match:
                found.add((path.stem, match[1]))
    return found


def _check_log(lines: list[list[str]], report: PgChaosReport, lost: set[tuple[str, str]]) -> None:
    recorded: set[tuple[str, str]] = set()
    started: Counter[tuple[str, str]] = Counter()
    announced: Counter[tuple[str, str]] = Counter()
    stopped = resumed = False
    rerun_elsewhere: set[tuple[str, str]] = set()  # steps others ran after the stop
    again: set[tuple[str, str]] = set()  # steps the stopped engine began after resuming
    for i, line in enumerate(lines):
        kind, inc, step = line[0], line[1], tuple(line[2:4])
        if kind == "S":
            stopped = True
        elif kind == "U":  # a stop that does not count: nothing was taken over
            stopped, rerun_elsewhere = False, set()
        elif kind == "T":
            resumed = True
        elif kind == "E":
            started[step] += 1
            if resumed and inc == report.stopped and step in rerun_elsewhere:
                report.stale_attempts += 1  # dispatched before the stop (see the docstring)
            elif step in recorded and not _lost_or_killed(inc, step[0], lines[i:], lost):
                report.rerun_after_record.append(step)
            if stopped and inc != report.stopped:
                rerun_elsewhere.add(step)
            if resumed and inc == report.stopped:
                again.add(step)
        elif kind == "C":
            recorded.add(step)
            announced[step] += 1
            if announced[step] == 2:
                report.announced_twice.append(step)
            report.joins += step[1] == "join"
            if resumed and inc == report.stopped and step in rerun_elsewhere - again:
                report.late_records.append(step)  # begun before the stop, run elsewhere
    report.step_executions = sum(started.values())
    report.reruns = report.step_executions - len(started)


async def pg_cluster_case(**sizes: Any) -> PgChaosReport:
    """:func:`pg_cluster_chaos` on a new database of a throwaway server."""
    from tests import pg_server

    binaries = pg_server.find_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server binaries (apt install postgresql)")
    server = pg_server.start(binaries)
    try:
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute("CREATE DATABASE chaos")
        finally:
            await conn.close()
        with tempfile.TemporaryDirectory() as workdir:
            run = partial(pg_cluster_chaos, server.dsn("chaos"), Path(workdir), **sizes)
            return await anyio.to_thread.run_sync(run)
    finally:
        server.stop()
