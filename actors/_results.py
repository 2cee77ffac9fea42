"""What a run returns: :class:`RunResult` with one :class:`StepResult` per step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from actors._runner import LogEntry
from actors.errors import StepError

__all__ = ("RunResult", "RunStatus", "StepResult", "StepStatus")

StepStatus = Literal["completed", "failed", "skipped", "cancelled", "running", "pending"]
RunStatus = Literal["completed", "failed", "cancelled", "running"]


@dataclass(frozen=True, slots=True)
class StepResult:
    """How one step ended.

    ``result`` is the JS return value (``completed`` only); ``error`` the last
    attempt's :class:`~actors.errors.StepError` (``failed``); ``reason`` says why a
    step was ``skipped`` or ``cancelled``. ``attempts`` counts the JS runs started;
    ``duration`` is the wall time from the first attempt to the end (retry waits
    included); ``logs`` holds the console lines of every attempt. A run read from a
    store while under way (``engine.get_run``) has steps still ``"running"`` or
    ``"pending"``.
    """

    name: str
    status: StepStatus
    result: Any = None
    error: StepError | None = None
    reason: str | None = None
    attempts: int = 0
    duration: float = 0.0
    logs: tuple[LogEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended. ``output`` is the single sink's result, or ``{sink: result}``.

    ``status`` is ``"running"`` only for a run read from a store while under way.
    ``parent_run_id``: the run whose sub-workflow step started this one, if any.
    """

    id: str
    workflow: str
    status: RunStatus
    output: Any
    steps: Mapping[str, StepResult]
    duration: float
    parent_run_id: str | None = None

    @property
    def failed_steps(self) -> tuple[str, ...]:
        """The names of the steps that failed, in definition order."""
        return tuple(name for name, step in self.steps.items() if step.status == "failed")
