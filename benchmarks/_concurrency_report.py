"""The Markdown section of the many-runs-per-worker cases, with issue 8's targets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ._concurrency import ONE, ConcurrencyPlan, Timed
from ._measure import Case
from ._report import ENGINE

__all__ = ("ConcurrencyResults", "concurrency_markdown", "concurrency_targets")

MB = 2**20
SEED = "seed"


@dataclass(frozen=True, slots=True)
class ConcurrencyResults:
    timed: tuple[Timed, ...]
    plan: ConcurrencyPlan
    header: str  # how and where it was measured, which concurrency each side used
    smoke: bool  # tiny sizes: no verdicts

    def find(self, case: Case, key: str) -> Timed | None:
        for t in self.timed:
            if t.sample.case is case and t.sample.contender.key == key:
                return t
        return None


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _rows(results: ConcurrencyResults) -> Iterator[str]:
    yield (
        "| case | contender | runs at once | reps | median ms | min-max ms | runs/s "
        "| per step ms | concurrency=1 / this, per step | CPU ms/step: this process "
        "| CPU ms/step: workers | peak RSS MB: this process + workers | note |"
    )
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    for t in results.timed:
        s = t.sample
        one = results.find(s.case, ONE)
        ratio = f"{one.sample.per_step / s.per_step:.2f}x" if one else "—"
        host = _ms(t.host_cpu / s.steps)
        workers = _ms(t.worker_cpu / s.steps) if t.worker_cpu is not None else "—"
        peak = f"{t.peak.total / MB:.0f} = {t.peak.host / MB:.0f} + {t.peak.workers / MB:.0f}"
        yield (
            f"| {s.case.shape.name} | {s.contender.label} | {s.runs} | {len(s.times)} "
            f"| {_ms(s.median)} | {_ms(min(s.times))}-{_ms(max(s.times))} "
            f"| {s.runs_per_second:.0f} | {_ms(s.per_step)} | {ratio} | {host} "
            f"| {workers} | {peak} | {s.note or ''} |"
        )


def _median(results: ConcurrencyResults, case: Case, key: str) -> tuple[float, float, int] | None:
    """(median seconds, per step seconds, runs) of one contender on one case."""
    t = results.find(case, key)
    return (t.sample.median, t.sample.per_step, t.sample.runs) if t else None


def _verdict(results: ConcurrencyResults, met: bool) -> bool | None:
    return None if results.smoke else met


def concurrency_targets(results: ConcurrencyResults) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for each target of issue 8; met is None if unknown."""
    plan, out = results.plan, []
    engine, one = _median(results, plan.seed_io, ENGINE), _median(results, plan.seed_io, ONE)
    if engine and one:
        out.append(
            (
                f"{plan.seed_io.title}: total <= 0.3 s (5.6 s before), vs concurrency=1",
                f"{engine[0]:.3f} s; concurrency=1 {one[0]:.2f} s ({one[0] / engine[0]:.1f}x)",
                _verdict(results, engine[0] <= 0.3),
            )
        )
    out.append(_io_target(results))
    engine, one = _median(results, plan.seed_dag, ENGINE), _median(results, plan.seed_dag, ONE)
    if engine and one:
        out.append(
            (
                f"{plan.seed_dag.title}: >= 1000 runs/s (143-211 before)",
                f"{engine[2] / engine[0]:.0f} runs/s; concurrency=1 {one[2] / one[0]:.0f} runs/s",
                _verdict(results, engine[2] / engine[0] >= 1000),
            )
        )
    out += _chain_targets(results)
    return out


def _io_target(results: ConcurrencyResults) -> tuple[str, str, bool | None]:
    case = results.plan.io_dag
    target = f"{case.title}: >= 500 runs/s, peak RSS of this process + workers reported"
    engine, one = results.find(case, ENGINE), results.find(case, ONE)
    if engine is None or one is None:
        return target, "not measured", None
    e, o = engine.sample, one.sample
    peak = engine.peak
    measured = (
        f"{e.runs_per_second:.0f} runs/s at {e.runs} at once; concurrency=1 "
        f"{o.runs_per_second:.0f} runs/s at {o.runs}; peak RSS {peak.total / MB:.0f} MB "
        f"(this process {peak.host / MB:.0f} + workers {peak.workers / MB:.0f})"
    )
    full = e.runs == case.concurrency
    return target, measured, _verdict(results, full and e.runs_per_second >= 500)


def _chain_targets(results: ConcurrencyResults) -> list[tuple[str, str, bool | None]]:
    case = results.plan.chain
    engine, one, seed = (_median(results, case, key) for key in (ENGINE, ONE, SEED))
    if not (engine and one and seed):
        return []
    return [
        (
            f"{case.title}: per step no slower than before (0.7-0.8 ms)",
            f"{engine[1] * 1e3:.3f} ms; concurrency=1 {one[1] * 1e3:.3f} ms",
            _verdict(results, engine[1] <= 0.8e-3),
        ),
        (
            f"{case.title}: seed-style >= 20x slower per step than the engine (9-16x before)",
            f"{seed[1] / engine[1]:.1f}x ({seed[1] * 1e3:.1f} ms / {engine[1] * 1e3:.3f} ms)",
            _verdict(results, seed[1] / engine[1] >= 20),
        ),
    ]


def concurrency_markdown(results: ConcurrencyResults) -> str:
    rows = list(_rows(results))
    targets = ["| target (engine, default pool) | measured | |", "|---|---|---|"]
    for target, measured, met in concurrency_targets(results):
        verdict = "met" if met else "missed" if met is False else "—"
        targets.append(f"| {target} | {measured} | {verdict} |")
    return "\n\n".join(
        [
            "## Many runs per worker (issue 8)",
            results.header,
            "\n".join(rows),
            "### Targets of issue 8 (reported, not asserted)",
            "\n".join(targets),
        ]
    )
