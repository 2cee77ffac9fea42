"""What every chaos case runs: the 5-step workflow, its host call, and what was seen.

The workflow is ``a`` -> ``b1``, ``b2``, ``b3`` (in parallel) -> ``c``; each of the
first four awaits one host call ``call(n, step, attempt)``, where ``n`` numbers the
run (``ctx.event.n``). Faults are decided by a hash of ``(seed, n, step, attempt)``,
so the outcome of every attempt of every run is known in advance and a case can
compare what happened with what had to happen, exactly.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from actors import Engine, Retry, RunResult, StepRetrying, Workflow
from actors.errors import StepError

__all__ = (
    "CALLING_STEPS",
    "Fate",
    "FaultPlan",
    "HostCalls",
    "RetryLog",
    "fan_workflow",
    "observed_fates",
)

Fate = Literal["ok", "fault", "hang", "crash", "other"]
CALLING_STEPS = ("a", "b1", "b2", "b3")
_STEP_JS = "return await call(ctx.event.n, ctx.run.step, ctx.run.attempt);"


def fan_workflow(*, timeout: float, attempts: int, name: str = "chaos") -> Workflow:
    """``a`` -> three parallel steps -> ``c``; every host-calling step retries per policy."""
    retry = Retry(attempts=attempts, delay=0.01)
    wf = Workflow(name)
    wf.add_step("a", js=_STEP_JS, timeout=timeout, retry=retry)
    for b in CALLING_STEPS[1:]:
        wf.add_step(b, js=_STEP_JS, timeout=timeout, retry=retry, after=["a"])
    wf.add_step("c", js="return deps.b1 + deps.b2 + deps.b3;", after=list(CALLING_STEPS[1:]))
    return wf


def expected_output(n: int) -> int:
    return 3 * n


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which host calls raise (``fault_rate``) and which never answer (``hang_rate``)."""

    fault_rate: float = 0.0
    hang_rate: float = 0.0
    seed: int = 9

    def fate(self, n: int, step: str, attempt: int) -> Fate:
        digest = hashlib.blake2b(f"{self.seed}:{n}:{step}:{attempt}".encode(), digest_size=8)
        u = int.from_bytes(digest.digest()) / 2**64
        if u < self.fault_rate:
            return "fault"
        if u < self.fault_rate + self.hang_rate:
            return "hang"
        return "ok"

    def expected(self, n: int, attempts: int) -> tuple[str, dict[tuple[str, int], Fate]]:
        """The run's status and the fate of every attempt that must run."""
        fates: dict[tuple[str, int], Fate] = {}

        def step_succeeds(step: str) -> bool:
            for attempt in range(1, attempts + 1):
                fates[step, attempt] = fate = self.fate(n, step, attempt)
                if fate == "ok":
                    return True
            return False

        if not step_succeeds("a"):
            return "failed", fates
        results = [step_succeeds(b) for b in CALLING_STEPS[1:]]
        return ("completed" if all(results) else "failed"), fates

    def completed_share(self, attempts: int) -> float:
        """The share of runs expected to complete (the analytic prediction)."""
        p_step = 1 - (self.fault_rate + self.hang_rate) ** attempts
        return float(p_step ** len(CALLING_STEPS))


@dataclass(slots=True)
class HostCalls:
    """The host function ``call``; counts calls and hung calls that were cancelled."""

    plan: FaultPlan = field(default_factory=FaultPlan)
    io_delay: float = 0.0
    before_call: Callable[[int, str], None] | None = None
    calls: int = 0
    hangs_started: int = 0
    hangs_cancelled: int = 0

    async def call(self, n: int, step: str, attempt: int) -> int:
        if self.before_call is not None:
            self.before_call(n, step)
        self.calls += 1
        fate = self.plan.fate(n, step, attempt)
        if fate == "fault":
            raise RuntimeError("injected fault")
        if fate == "hang":
            self.hangs_started += 1
            try:
                await anyio.sleep_forever()
            finally:
                self.hangs_cancelled += 1
        if self.io_delay:
            await anyio.sleep(self.io_delay)
        return n


class RetryLog:
    """Collects every ``step.retrying`` event (a failed attempt that was retried)."""

    def __init__(self) -> None:
        self.events: list[StepRetrying] = []

    async def collect(self, engine: Engine, *, task_status: Any) -> None:
        async with engine.bus.subscribe(
            "step.retrying", policy="block", block_timeout=float("inf"), max_buffer=4096
        ) as events:
            task_status.started()
            async for event in events:
                if isinstance(event, StepRetrying):
                    self.events.append(event)


def _fate_of(error: StepError | None) -> Fate:
    if error is None:
        return "other"
    if error.name == "ScriptTimeout":
        return "hang"
    if error.name == "SandboxCrashed":
        return "crash"
    if error.name == "Error" and "injected fault" in error.message:
        return "fault"
    return "other"


def observed_fates(
    results: dict[int, RunResult], retries: list[StepRetrying]
) -> dict[int, dict[tuple[str, int], Fate]]:
    """The fate of every attempt that ran, per run, from results and retry events."""
    by_id = {result.id: n for n, result in results.items()}
    fates: dict[int, dict[tuple[str, int], Fate]] = {n: {} for n in results}
    for event in retries:
        assert event.step is not None and event.attempt is not None
        fates[by_id[event.run_id]][event.step, event.attempt] = _fate_of(event.error)
    for n, result in results.items():
        for name in CALLING_STEPS:
            step = result.steps[name]
            if step.status == "completed":
                fates[n][name, step.attempts] = "ok"
            elif step.status == "failed":
                fates[n][name, step.attempts] = _fate_of(step.error)
    return fates


def fate_counts(fates: dict[int, dict[tuple[str, int], Fate]]) -> Counter[Fate]:
    return Counter(f for per_run in fates.values() for f in per_run.values())
