"""Real crashes: an engine process on a SQLite store, killed with SIGKILL again and again.

Each life of ``crash_child.py`` resumes what the previous lives left and starts a
few new keyed runs; the test kills it at a random moment after it is ready, 50
times, then lets a last life finish everything. The shared log orders what
happened: ``E`` (a step's JS started), ``C`` (a subscriber saw ``step.completed``),
``K`` (a kill). Checks: every run ends completed with the right output; no step
runs again once its completion was observed; no step runs twice in one life.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.crash_child import expected_output

KILLS = 50
NEW_RUNS_PER_LIFE = 3
CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parent.parent


def start_child(db: Path, log: Path, life: int, new_runs: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(CHILD), str(db), str(log), str(life), str(new_runs)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def wait_ready(child: subprocess.Popen[str]) -> bool:
    assert child.stdout is not None
    line = child.stdout.readline()  # the child prints "ready" once its engine is open
    return line.strip() == "ready"


def sandbox_workers_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pid and b"runtime_pool._sandbox" in command:
            found.append(int(entry))
    return found


def kill(child: subprocess.Popen[str], log: Path) -> None:
    workers = sandbox_workers_of(child.pid)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.stdout is not None
    child.stdout.close()
    with log.open("a") as file:
        file.write("K\n")
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):  # they die with it
        assert time.monotonic() < deadline, "sandbox workers outlived their killed engine"
        time.sleep(0.05)


def check_log(log: Path) -> tuple[int, Counter[tuple[str, str]]]:
    """Apply the invariants to the log; return the kills and executions per step."""
    observed: set[tuple[str, str]] = set()
    this_life: set[tuple[str, str]] = set()
    executions: Counter[tuple[str, str]] = Counter()
    kills = 0
    for line in log.read_text().splitlines():
        kind, *fields = line.split()
        if kind == "K":
            kills += 1
            this_life.clear()
            continue
        step = (fields[0], fields[1])
        if kind == "C":
            observed.add(step)
            continue
        assert step not in observed, f"{step} ran again after its completion was observed"
        assert step not in this_life, f"{step} ran twice in one life"
        this_life.add(step)
        executions[step] += 1
    return kills, executions


def crash_loop(folder: Path, kills: int) -> tuple[int, int, int, int]:
    """Kill an engine ``kills`` times, finish, check; return kills, runs, steps and
    re-executions seen."""
    folder.mkdir()
    db, log = folder / "runs.db", folder / "events.log"
    rng = random.Random()
    for life in range(kills):
        child = start_child(db, log, life, NEW_RUNS_PER_LIFE)
        assert wait_ready(child), "the engine process did not start"
        time.sleep(rng.uniform(0.0, 0.5))
        kill(child, log)
    final = start_child(db, log, kills, 0)
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0
    runs = json.loads(out.splitlines()[-1])
    seen, executions = check_log(log)
    assert seen == kills
    assert runs, "no run was recorded"
    for run in runs:
        assert run["status"] == "completed", run
        assert run["output"] == expected_output(run["output"]["n"])
    steps = {(run["id"], step) for run in runs for step in ("a", "b1", "b2", "join", "out")}
    assert steps <= set(executions)  # every step of every run ran
    again = sum(count - 1 for count in executions.values())
    return seen, len(runs), len(steps), again


@pytest.mark.timeout(600)
def test_runs_survive_sigkill_at_random_points(tmp_path: Path) -> None:
    loops = 2  # two engines on two files at once: the same kills in less time
    with ThreadPoolExecutor(loops) as executor:
        futures = [
            executor.submit(crash_loop, tmp_path / f"loop{i}", KILLS // loops) for i in range(loops)
        ]
        totals = [sum(f.result()[k] for f in futures) for k in range(4)]
    kills, runs, steps, again = totals
    assert kills >= KILLS
    print(f"\n{kills} kills, {runs} runs, {steps} steps, {again} re-executions")
