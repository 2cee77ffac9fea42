"""Timing one contender on one case: warm-up, repetitions, and a check of the output."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ._contenders import Contender, Run
from ._shapes import Shape

__all__ = ("Case", "Sample", "check_outputs", "measure", "measure_alternating", "run_batch")


@dataclass(frozen=True, slots=True)
class Case:
    """A shape, how often to time it, and how many runs of it go at once."""

    shape: Shape
    reps: int
    concurrency: int = 1
    skip: Mapping[str, str] = field(default_factory=dict)  # contender key -> why not run
    limit: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # key -> (at most, why)

    @property
    def title(self) -> str:
        if self.concurrency > 1:
            return f"{self.shape.name} x{self.concurrency} concurrent"
        return self.shape.name if self.shape.n is None else f"{self.shape.name} N={self.shape.n}"


@dataclass(frozen=True, slots=True)
class Sample:
    """The timings (seconds per batch of ``runs`` concurrent runs) of one contender on one case."""

    case: Case
    contender: Contender
    times: tuple[float, ...] = ()
    runs: int = 1
    note: str | None = None

    @property
    def measured(self) -> bool:
        return bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def steps(self) -> int:
        return self.case.shape.size * self.runs

    @property
    def per_step(self) -> float:
        return self.median / self.steps

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.median


async def run_batch(run: Run, runs: int) -> list[Any]:
    outputs: list[Any] = [None] * runs

    async def one(i: int) -> None:
        outputs[i] = await run()

    async with anyio.create_task_group() as tg:
        for i in range(runs):
            tg.start_soon(one, i)
    return outputs


async def measure(contender: Contender, case: Case, expected: list[Any]) -> Sample:
    """Time ``case.reps`` batches; ``expected`` holds the first output seen (checked, filled)."""
    if contender.key in case.skip:
        return Sample(case, contender, note=case.skip[contender.key])
    runs, note = case.concurrency, None
    if contender.key in case.limit:
        runs, why = case.limit[contender.key]
        note = f"{runs} concurrent runs, not {case.concurrency}: {why}"
    times = []
    async with contender.open(case.shape) as run:
        if contender.warm:
            check_outputs(case, contender, await run_batch(run, runs), expected)
        for _ in range(case.reps):
            started = time.perf_counter()
            outputs = await run_batch(run, runs)
            times.append(time.perf_counter() - started)
            check_outputs(case, contender, outputs, expected)
    return _progress(Sample(case, contender, tuple(times), runs, note))


def _progress(sample: Sample) -> Sample:
    print(
        f"  {sample.case.title:28} {sample.contender.key:9} median {sample.median * 1e3:10.2f} ms"
        f"  per step {sample.per_step * 1e3:8.3f} ms",
        file=sys.stderr,
        flush=True,
    )
    return sample


async def measure_alternating(contenders: list[Contender], cases: tuple[Case, ...]) -> list[Sample]:
    """Time ``cases`` taking turns: every repetition runs each case once for each contender.

    For cases compared with each other (two CPU-heavy steps in parallel vs in
    sequence) on a shared, noisy machine: load that comes and goes hits both alike.
    No warm-up run; each contender is opened afresh for each run (outside the timing).
    """
    times: dict[tuple[str, str], list[float]] = {
        (case.title, c.key): [] for case in cases for c in contenders
    }
    expected: dict[str, list[Any]] = {case.title: [] for case in cases}
    for _ in range(max(case.reps for case in cases)):
        for contender in contenders:
            for case in cases:
                async with contender.open(case.shape) as run:
                    started = time.perf_counter()
                    outputs = await run_batch(run, 1)
                    times[case.title, contender.key].append(time.perf_counter() - started)
                check_outputs(case, contender, outputs, expected[case.title])
    note = "taking turns with the other CPU case"
    return [
        _progress(Sample(case, c, tuple(times[case.title, c.key]), note=note))
        for case in cases
        for c in contenders
    ]


def check_outputs(
    case: Case, contender: Contender, outputs: list[Any], expected: list[Any]
) -> None:
    """Every contender must compute the same output: they run the same JS."""
    if not expected:
        expected.append(outputs[0])
    for output in outputs:
        if output != expected[0]:
            raise RuntimeError(
                f"{case.title}: {contender.key} returned {output!r:.200}, "
                f"others {expected[0]!r:.200}"
            )
