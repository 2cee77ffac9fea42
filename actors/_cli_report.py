"""The CLI's closing words on stderr: why a run failed, what a timeout cut short.

Plain text (``actors: ...``) by default; with ``--json`` each message is one JSON
object per line, like the progress lines, so stderr holds only JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from actors._results import RunResult
from actors.errors import StepError

__all__ = ("failure_messages", "say", "timeout_message")

Message = tuple[str, str, dict[str, Any]]  # (event name, text, fields)


def say(event: str, text: str, *, json_logs: bool, **fields: Any) -> None:
    """Print one closing message on stderr: ``actors: text``, or a JSON line whose
    ``message`` is the text's first line (the rest is in the fields)."""
    if json_logs:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        first_line = text.splitlines()[0] if text else text
        line = {"event": event, "level": "error", "timestamp": stamp, "message": first_line}
        line.update(fields)
        print(json.dumps(line, ensure_ascii=False, default=str), file=sys.stderr)
    else:
        print(f"actors: {text}", file=sys.stderr)


def failure_messages(result: RunResult) -> list[Message]:
    """One message per failed step: ``step 'x' line 4: TypeError: ...`` and its source."""
    messages = []
    for name in result.failed_steps:
        error = result.steps[name].error
        if error is not None:
            messages.append(("step_error", "run failed: " + describe(error), _fields(error)))
    return messages


def describe(error: StepError) -> str:
    """``step 'x' line 4: TypeError: msg (attempt 2)`` plus the source line and a caret."""
    if error.line is None:
        return f"step {error.step!r} attempt {error.attempt}: {error.name}: {error.message}"
    text = f"step {error.step!r} line {error.line}: {error.name}: {error.message}"
    text += f" (attempt {error.attempt})"
    if error.source_line is not None:
        gutter = f"    {error.line} | "
        text += f"\n{gutter}{error.source_line}"
        if error.column is not None:
            text += "\n" + " " * (len(gutter) - 2) + "| " + " " * (error.column - 1) + "^"
    return text


def _fields(error: StepError) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "step": error.step,
        "attempt": error.attempt,
        "error_name": error.name,
        "error": error.message,
    }
    for key in ("line", "column", "source_line", "stack"):
        value = getattr(error, key, None)
        if value is not None:
            fields[key] = value
    return fields


def timeout_message(result: RunResult, timeout: float) -> Message:
    """``run cancelled after 2 s (--timeout); still running: 'slow' (attempt 1, 2.0 s)``."""
    running: Mapping[str, Any] = {
        name: step for name, step in result.steps.items() if step.status == "cancelled"
    }
    text = f"run cancelled after {timeout:g} s (--timeout)"
    if running:
        text += "; still running: " + ", ".join(
            f"{name!r} (attempt {step.attempts}, {step.duration:.1f} s)"
            for name, step in running.items()
        )
    return "run_timed_out", text, {"timeout": timeout, "running": list(running)}
