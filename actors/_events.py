"""What travels on the event bus: lifecycle events of runs, and published messages.

Each is a frozen dataclass with a ``topic``. Lifecycle events carry ``run_id``,
``workflow``, ``step`` (``None`` for run events), ``attempt`` (``None`` for run
events, ``0`` for a step skipped before any attempt) and ``timestamp`` (Unix
seconds), plus what applies: ``result`` / ``error`` / ``duration`` / ``logs`` (the
console lines of that event's attempt). Run events carry ``parent_run_id``: the run
whose sub-workflow step started this run (``None`` for a top-level run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from actors._runner import LogEntry
from actors.errors import StepError

__all__ = (
    "BusEvent",
    "HostCalled",
    "LifecycleEvent",
    "Published",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "StepCancelled",
    "StepCompleted",
    "StepFailed",
    "StepLogged",
    "StepRetrying",
    "StepSkipped",
    "StepStarted",
    "StepWaiting",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """A message published with ``bus.publish(topic, payload)``."""

    topic: str
    payload: Any = None
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleEvent:
    """Base of the events the engine publishes about runs and steps."""

    topic: str = field(default="", init=False)
    run_id: str
    workflow: str
    step: str | None = None
    attempt: int | None = None
    timestamp: float = field(default_factory=time.time)
    index: int | None = None  # the element of a for_each step, else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(LifecycleEvent):
    topic: str = field(default="run.started", init=False)
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted(LifecycleEvent):
    """An attempt of ``step`` started (``attempt`` counts from 1)."""

    topic: str = field(default="step.started", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepWaiting(LifecycleEvent):
    """A ``sleep``/``sleep_until``/``wait_for`` step is waiting (``step.waiting``, after
    its ``step.started``): for an event on ``waits_for`` whose field ``match`` equals
    ``value`` (``None``: no event), until the Unix time ``until`` (``None``: no limit)."""

    topic: str = field(default="step.waiting", init=False)
    waits_for: str | None = None
    match: str | None = None
    value: Any = None
    until: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepLogged(LifecycleEvent):
    """A console line the step's JS wrote, published as it was written (``step.log``).

    ``timestamp`` is when the line was written; ``level`` is the console method
    (``"log"``, ``"warn"``...). Only runners that stream console lines publish it.
    """

    topic: str = field(default="step.log", init=False)
    level: str = "log"
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostCalled(LifecycleEvent):
    """Attempt ``attempt`` of ``step`` called host function ``function`` (``host.called``).

    ``duration``: seconds in the function; ``error``: the exception's class name, or
    ``None`` when it returned. ``arguments`` only with ``Engine(audit_arguments=True)``.
    """

    topic: str = field(default="host.called", init=False)
    function: str = ""
    duration: float = 0.0
    error: str | None = None
    arguments: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCompleted(LifecycleEvent):
    topic: str = field(default="step.completed", init=False)
    result: Any = None
    duration: float = 0.0
    logs: tuple[LogEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed(LifecycleEvent):
    """The step failed for good (its last attempt's ``error``)."""

    topic: str = field(default="step.failed", init=False)
    error: StepError | None = None
    duration: float = 0.0
    logs: tuple[LogEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRetrying(LifecycleEvent):
    """Attempt ``attempt`` failed with ``error``; the next starts after ``delay`` s."""

    topic: str = field(default="step.retrying", init=False)
    error: StepError | None = None
    delay: float = 0.0
    logs: tuple[LogEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSkipped(LifecycleEvent):
    """The step did not run; ``reason`` says which upstream failed or was skipped."""

    topic: str = field(default="step.skipped", init=False)
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCancelled(LifecycleEvent):
    """The run was cancelled while attempt ``attempt`` of the step ran or waited to
    start; ``logs`` are the console lines that attempt wrote up to the stop."""

    topic: str = field(default="step.cancelled", init=False)
    reason: str = ""
    duration: float = 0.0
    logs: tuple[LogEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCompleted(LifecycleEvent):
    topic: str = field(default="run.completed", init=False)
    output: Any = None
    duration: float = 0.0
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFailed(LifecycleEvent):
    """Some step failed: ``failed`` names them, ``error`` is the first one's error."""

    topic: str = field(default="run.failed", init=False)
    output: Any = None
    error: StepError | None = None
    failed: tuple[str, ...] = ()
    duration: float = 0.0
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCancelled(LifecycleEvent):
    topic: str = field(default="run.cancelled", init=False)
    duration: float = 0.0
    parent_run_id: str | None = None


BusEvent = LifecycleEvent | Published
"""Anything a subscriber receives."""
