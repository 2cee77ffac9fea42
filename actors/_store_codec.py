"""Step outcomes and run results to and from the plain records a store keeps.

Pure functions, no I/O: ``StepResult`` <-> :class:`~actors._store.StepRecord`
(errors as plain data, console lines as ``(level, text)`` pairs), the message a
recorded step sends downstream, and a :class:`RunResult` rebuilt from records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from actors._messages import Completed, Failed, Message, Skipped
from actors._results import RunResult, RunStatus, StepResult, StepStatus
from actors._store import RunRecord, StepRecord
from actors.errors import (
    SandboxFailed,
    ScriptFailed,
    StepError,
    StepTimedOut,
    SubflowFailed,
    WaitFailed,
    WaitTimedOut,
)

__all__ = (
    "StoredLog",
    "attempts_started",
    "error_from_data",
    "error_to_data",
    "message_of",
    "run_result",
    "step_from_record",
    "step_record",
)

# A step record with one of these statuses is the step's final outcome.
FINAL = frozenset({"completed", "failed", "skipped", "cancelled"})


@dataclass(frozen=True, slots=True)
class StoredLog:
    """A console line read back from a store."""

    level: str
    text: str


def error_to_data(error: StepError) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": type(error).__name__,
        "step": error.step,
        "name": error.name,
        "message": error.message,
        "attempt": error.attempt,
        "retryable": error.retryable,
        "line": error.line,
        "column": error.column,
        "source_line": error.source_line,
    }
    if isinstance(error, ScriptFailed):
        data["stack"] = error.stack
    if isinstance(error, StepTimedOut | WaitTimedOut):
        data["timeout"] = error.timeout
    if isinstance(error, WaitTimedOut):
        data["topic"] = error.topic
    if isinstance(error, SubflowFailed):
        data["child"] = {"run_id": error.run_id, "workflow": error.workflow}
        data["child"]["failed_step"] = error.failed_step
    return data


def error_from_data(data: Mapping[str, Any]) -> StepError:
    """The recorded error, as the class it was (its ``cause`` is not kept)."""
    kind, step, attempt = data.get("type"), str(data["step"]), int(data["attempt"])
    where = {k: data.get(k) for k in ("line", "column", "source_line")}
    if kind == "StepTimedOut":
        return StepTimedOut(step, float(data.get("timeout") or 0), attempt=attempt)
    if kind == "WaitTimedOut":
        return WaitTimedOut(step, str(data.get("topic")), float(data.get("timeout") or 0))
    if kind == "WaitFailed":
        return WaitFailed(step, data["message"])
    if kind == "ScriptFailed":
        return ScriptFailed(
            step, data["name"], data["message"], attempt=attempt, stack=data.get("stack"), **where
        )
    child = data.get("child")
    if kind == "SubflowFailed" and isinstance(child, Mapping):
        return SubflowFailed(
            step,
            data["message"],
            run_id=str(child.get("run_id")),
            workflow=str(child.get("workflow")),
            failed_step=child.get("failed_step"),
            attempt=attempt,
        )
    cls = SandboxFailed if kind == "SandboxFailed" else StepError
    retryable = bool(data.get("retryable"))
    return cls(step, data["name"], data["message"], attempt=attempt, retryable=retryable, **where)


def step_record(run_id: str, result: StepResult) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        step=result.name,
        status=result.status,
        attempts=result.attempts,
        result=result.result,
        error=None if result.error is None else error_to_data(result.error),
        reason=result.reason,
        duration=result.duration,
        logs=tuple((line.level, line.text) for line in result.logs),
        updated_at=time.time(),
    )


def step_from_record(record: StepRecord) -> StepResult:
    status = record.status if record.status in FINAL else "running"
    return StepResult(
        record.step,
        cast(StepStatus, status),
        result=record.result,
        error=None if record.error is None else error_from_data(record.error),
        reason=record.reason,
        attempts=record.attempts,
        duration=record.duration,
        logs=tuple(StoredLog(level, text) for level, text in record.logs),
    )


def message_of(result: StepResult) -> Message:
    """What a step that ended with ``result`` sends downstream."""
    if result.status == "completed":
        return Completed(result.name, result.result)
    if result.status == "failed" and result.error is not None:
        return Failed(result.name, result.error)
    return Skipped(result.name, result.reason or f"was {result.status}")


def attempts_started(
    definition: Mapping[str, Any], steps: Mapping[str, StepRecord]
) -> dict[str, int]:
    """Attempts that may have started, per step without an outcome: its recorded count,
    and at least 1 once every upstream step completed (a first attempt is not recorded,
    so a step that was ready counts as started)."""
    started = {}
    for name, spec in definition.get("steps", {}).items():
        record = steps.get(name)
        if record is not None and record.status in FINAL:
            continue
        upstream = [steps.get(up) for up in spec.get("after", ())]
        ready = all(up is not None and up.status == "completed" for up in upstream)
        attempts = max(record.attempts if record is not None else 0, 1 if ready else 0)
        if attempts:
            started[name] = attempts
    return started


def run_result(record: RunRecord, steps: Sequence[StepRecord]) -> RunResult:
    """A :class:`RunResult` from the store; a step without an outcome is ``"running"``
    once it may have started (see :func:`attempts_started`), else ``"pending"``."""
    by_name = {s.step: s for s in steps}
    started = attempts_started(record.definition, by_name)
    results = {}
    for name in record.definition.get("steps", {}):
        step = by_name.get(name)
        if step is not None and step.status in FINAL:
            results[name] = step_from_record(step)
        elif name in started:
            results[name] = StepResult(name, "running", attempts=started[name])
        else:
            results[name] = StepResult(name, "pending")
    end = record.ended_at if record.ended_at is not None else time.time()
    return RunResult(
        id=record.id,
        workflow=record.workflow,
        status=cast(RunStatus, record.status),
        output=record.output,
        steps=MappingProxyType(results),
        duration=max(0.0, end - record.created_at),
        parent_run_id=record.parent_run_id,
    )
