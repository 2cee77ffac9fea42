"""Which cases a benchmark run times, at full size or as a smoke test for CI."""

from __future__ import annotations

from dataclasses import dataclass

from ._measure import Case
from ._shapes import big_values, chain, cpu_pair, fan_out, lattice, seed_dag

__all__ = ("CPU_STEP_SECONDS", "SMOKE_CPU_STEP_SECONDS", "Plan", "full_plan", "smoke_plan")

CPU_STEP_SECONDS = 0.3
SMOKE_CPU_STEP_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Plan:
    cases: tuple[Case, ...]
    cpu_cases: tuple[Case, ...]  # timed taking turns (see measure_alternating)
    sizes: tuple[int, ...]  # the N of the chain and fan-out cases
    cpu_seconds: float  # how long one CPU-heavy step should take
    idle_window: float  # seconds of idleness over which idle CPU is measured
    seed_fan_out: int  # width of the seed-style fan-out whose memory is sampled


def _reps(n: int) -> int:
    return 10 if n <= 10 else 5 if n <= 100 else 3


def full_plan(cpu_loops: int) -> Plan:
    sizes = (10, 30, 100, 1000)
    wide = "not run: a trial fan-out of 100 took ~80 s (100 live runtimes, each spinning a core)"
    dense = "not run: 20 live runtimes per layer, 20 layers"
    crowd = (
        "in trials 10 at once took 4-5 s a batch, and at 20 at once 16 of 20 runs failed "
        "with the guide's 5 s timeout (promise still pending); cancelling the rest then "
        "hung the process in Runtime.close()"
    )
    cases = [Case(seed_dag(), 20), Case(seed_dag(), 3, 100, limit={"seed": (5, crowd)})]
    cases += [Case(chain(n), _reps(n)) for n in sizes]
    cases += [Case(fan_out(n), _reps(n), skip={"seed": wide} if n > 30 else {}) for n in sizes]
    cases += [
        Case(lattice(10, 5), 5),
        Case(lattice(20, 20), 3, skip={"seed": dense}),
        Case(big_values(3), 5),
    ]
    return Plan(tuple(cases), _cpu_cases(cpu_loops, 5), sizes, CPU_STEP_SECONDS, 2.0, 10)


def smoke_plan(cpu_loops: int) -> Plan:
    sizes = (3, 6)
    cases = [Case(seed_dag(), 1), Case(seed_dag(), 1, 4)]
    cases += [Case(chain(n), 1) for n in sizes]
    cases += [Case(fan_out(n), 1) for n in sizes]
    cases += [
        Case(lattice(3, 3), 1),
        Case(big_values(1), 1),
    ]
    return Plan(tuple(cases), _cpu_cases(cpu_loops, 1), sizes, SMOKE_CPU_STEP_SECONDS, 0.2, 3)


def _cpu_cases(cpu_loops: int, reps: int) -> tuple[Case, ...]:
    return (
        Case(cpu_pair(cpu_loops, parallel=False), reps),
        Case(cpu_pair(cpu_loops, parallel=True), reps),
    )
