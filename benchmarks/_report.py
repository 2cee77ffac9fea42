"""The Markdown report: timings, multi-core speed-up, idle footprint, and the targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ._breakdown import Breakdown
from ._cases import Plan
from ._footprint import Footprint
from ._measure import Sample

__all__ = ("ENGINE", "Results", "markdown", "targets")

ENGINE = "engine"  # the contender the targets are about: the engine with its default pool
MB = 2**20


@dataclass(frozen=True, slots=True)
class Results:
    samples: tuple[Sample, ...]
    footprints: tuple[Footprint, ...]
    plan: Plan
    header: str  # how and where it was measured
    breakdown: Breakdown

    def find(self, title: str, key: str) -> Sample | None:
        for sample in self.samples:
            if sample.case.title == title and sample.contender.key == key and sample.measured:
                return sample
        return None

    def titles(self) -> list[str]:
        return list(dict.fromkeys(s.case.title for s in self.samples))


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _ratio(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def _time_rows(results: Results) -> Iterator[str]:
    yield "| case | steps | contender | reps | median ms | min-max ms | per step ms | x floor "
    yield "| seed-style / this | note |"
    yield "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"
    for title in results.titles():
        floor, seed = results.find(title, "floor"), results.find(title, "seed")
        for s in (s for s in results.samples if s.case.title == title):
            name = (
                f"| {title} | {s.steps if s.measured else s.case.shape.size} | {s.contender.label} "
            )
            if not s.measured:
                yield name + f"| 0 | — | — | — | — | — | {s.note or ''} |"
                continue
            spread = f"{_ms(min(s.times))}-{_ms(max(s.times))}"
            x_floor = _ratio(s.per_step / floor.per_step) if floor else "—"
            x_seed = _ratio(seed.per_step / s.per_step) if seed else "—"
            notes = [s.note] if s.note else []
            if s.runs > 1:
                notes.append(f"{s.runs / s.median:.0f} runs/s")
            yield (
                f"{name}| {len(s.times)} | {_ms(s.median)} | {spread} | {_ms(s.per_step)} "
                f"| {x_floor} | {x_seed} | {'; '.join(notes)} |"
            )


def _time_table(results: Results) -> str:
    rows = list(_time_rows(results))
    return "\n".join([rows[0] + rows[1], *rows[2:]])


def speedups(results: Results) -> dict[str, tuple[float, float]]:
    """Contender key -> (sequential median, parallel median) of the two CPU-heavy steps."""
    found = {}
    for key in dict.fromkeys(s.contender.key for s in results.samples):
        seq = results.find("cpu x2 sequential", key)
        par = results.find("cpu x2 parallel", key)
        if seq and par:
            found[key] = (seq.median, par.median)
    return found


def _speedup_table(results: Results) -> str:
    labels = {s.contender.key: s.contender.label for s in results.samples}
    rows = [
        "| contender | one after the other ms | in parallel ms | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for key, (seq, par) in speedups(results).items():
        rows.append(f"| {labels[key]} | {_ms(seq)} | {_ms(par)} | {seq / par:.2f}x |")
    return "\n".join(rows)


def _footprint_table(results: Results) -> str:
    rows = [
        "| contender | CPU, cores | this process, MB | workers, MB | measured |",
        "|---|---:|---:|---:|---|",
    ]
    for f in results.footprints:
        workers = " + ".join(f"{w / MB:.0f}" for w in f.worker_rss) or "—"
        rows.append(f"| {f.label} | {f.cores:.3f} | {f.host_rss / MB:.0f} | {workers} | {f.note} |")
    return "\n".join(rows)


def _per_step(results: Results, shape: str, n: int, key: str) -> float | None:
    sample = results.find(f"{shape} N={n}", key)
    return sample.per_step if sample else None


def _ratios(results: Results, num: str, den: str) -> dict[str, list[tuple[int, float]]]:
    """Per-step cost of ``num`` over ``den``, by shape, for each N both ran."""
    found: dict[str, list[tuple[int, float]]] = {}
    for shape in ("chain", "fan-out"):
        for n in results.plan.sizes:
            a, b = _per_step(results, shape, n, num), _per_step(results, shape, n, den)
            if a and b:
                found.setdefault(shape, []).append((n, a / b))
    return found


def _ratio_target(
    target: str, ratios: dict[str, list[tuple[int, float]]], met: Callable[[float], bool]
) -> tuple[str, str, bool | None]:
    if not ratios:
        return target, "not measured", None
    text = "; ".join(
        f"{shape} " + ", ".join(f"N={n}: {r:.1f}x" for n, r in by_n)
        for shape, by_n in ratios.items()
    )
    return target, text, all(met(r) for by_n in ratios.values() for _, r in by_n)


def targets(results: Results) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for each target of the issue; met is None if unknown."""
    out = [
        _ratio_target(
            "per step >= 20x below seed-style (chain, fan-out; seed-style / engine)",
            _ratios(results, "seed", ENGINE),
            lambda r: r >= 20,
        ),
        _ratio_target(
            "per step within 5x of the floor (chain, fan-out; engine / floor)",
            _ratios(results, ENGINE, "floor"),
            lambda r: r <= 5,
        ),
    ]
    out.append(_flatness(results))
    cpu = speedups(results).get(ENGINE)
    out.append(
        (
            "two CPU-heavy steps >= 1.6x faster in parallel (2 cores)",
            f"{cpu[0] / cpu[1]:.2f}x" if cpu else "not measured",
            cpu[0] / cpu[1] >= 1.6 if cpu else None,
        )
    )
    idle = next((f.cores for f in results.footprints if f.key == ENGINE), None)
    out.append(
        (
            "warm idle engine < 0.05 of a core",
            f"{idle:.3f} cores" if idle is not None else "not measured",
            idle < 0.05 if idle is not None else None,
        )
    )
    return out


def _flatness(results: Results) -> tuple[str, str, bool | None]:
    target = "per step flat (<= 1.5x) from N=100 to N=1000"
    ratios = []
    for shape in ("chain", "fan-out"):
        small, large = (_per_step(results, shape, n, ENGINE) for n in (100, 1000))
        if small and large:
            ratios.append(f"{shape} {large / small:.2f}x")
    if not ratios:
        return target, "not measured (needs N=100 and N=1000)", None
    worst = max(float(r.split()[-1].rstrip("x")) for r in ratios)
    return target, ", ".join(ratios), worst <= 1.5


def _targets_table(results: Results) -> str:
    rows = ["| target (engine, default pool) | measured | |", "|---|---|---|"]
    for target, measured, met in targets(results):
        verdict = "met" if met else "missed" if met is False else "—"
        rows.append(f"| {target} | {measured} | {verdict} |")
    return "\n".join(rows)


def _breakdown_table(b: Breakdown) -> str:
    rows = [
        "| one trivial step, sequential | ms |",
        "|---|---:|",
        f"| floor: one `call_async` on a warm in-process runtime | {_ms(b.floor)} |",
        f"| engine scheduling alone (in-process fake runner, chain) | {_ms(b.scheduling)} |",
        f"| `pool.execute` round trip to 1 worker (wall) | {_ms(b.round_trip)} |",
    ]
    rows += [f"| CPU per run, {thread} | {_ms(cpu)} |" for thread, cpu in b.threads]
    return "\n".join(rows)


def markdown(results: Results) -> str:
    cpu = results.plan.cpu_seconds
    return (
        "\n\n".join(
            [
                "# Benchmark: floor vs seed-style baseline vs this engine",
                results.header,
                "## Time per run",
                _time_table(results),
                f"## Multi-core: two CPU-heavy steps (~{cpu:g} s each)",
                _speedup_table(results),
                "## Idle CPU and resident memory",
                _footprint_table(results),
                "## Where a step's time goes",
                _breakdown_table(results.breakdown),
                "## Targets (reported, not asserted)",
                _targets_table(results),
            ]
        )
        + "\n"
    )
