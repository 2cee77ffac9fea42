"""Trigger rules (``run_if``) and conditions (``when``): whether a step fires.

Pure logic over the reports a step's inbox received; no I/O. A step with a
``when`` expression has it evaluated in the sandbox once its rule lets it fire
(see :func:`condition_js`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from actors._messages import Completed, Failed, Message, Skipped

__all__ = (
    "CONDITION_FALSE",
    "RUN_IF",
    "RunIf",
    "check_expression",
    "condition_js",
    "rule_blocks",
    "upstream_view",
)

RunIf = Literal["all_completed", "all_done", "any_failed", "any_completed"]
RUN_IF: tuple[str, ...] = get_args(RunIf)
DEFAULT_RUN_IF: RunIf = "all_completed"
CONDITION_FALSE = "condition false"


def rule_blocks(rule: RunIf, upstream: Sequence[str], reports: Mapping[str, Message]) -> str | None:
    """Why ``rule`` keeps the step from firing (its skip reason), or ``None`` to fire.

    ``all_completed``: every upstream completed. ``all_done``: every upstream
    ended, whatever its status. ``any_failed``: at least one failed.
    ``any_completed``: at least one completed. A step without upstream fires.
    """
    if not upstream:
        return None
    got = [reports.get(name) for name in upstream]
    if rule == "all_completed":
        blocked = [
            f"{name!r} {_status_of(report)}"
            for name, report in zip(upstream, got, strict=True)
            if not isinstance(report, Completed)
        ]
        return "upstream " + ", ".join(blocked) if blocked else None
    if rule == "all_done":
        missing = [f"{name!r} ended without a result" for name in upstream if name not in reports]
        return "upstream " + ", ".join(missing) if missing else None
    if rule == "any_failed":
        if any(isinstance(r, Failed) for r in got):
            return None
        return "run_if any_failed: no upstream failed"
    if any(isinstance(r, Completed) for r in got):
        return None
    return "run_if any_completed: no upstream completed"


def upstream_view(upstream: Sequence[str], reports: Mapping[str, Message]) -> dict[str, Any]:
    """``ctx.upstream``: ``{name: {"status", "error"}}`` for each upstream step.

    ``error`` is ``{"name", "message"}`` for a failed step, else ``None``; a
    skipped step also gives its ``reason``.
    """
    view: dict[str, Any] = {}
    for name in upstream:
        report = reports.get(name)
        entry: dict[str, Any] = {"status": _status_word(report), "error": None}
        if isinstance(report, Failed):
            entry["error"] = {"name": report.error.name, "message": report.error.message}
        elif isinstance(report, Skipped):
            entry["reason"] = report.reason
        view[name] = entry
    return view


def condition_js(expression: str) -> str:
    """The script that evaluates a ``when`` expression to a boolean (JS truthiness)."""
    return f"return !!(\n{expression}\n);"


def check_expression(value: object) -> bool:
    """Whether ``value`` can be a JS expression option (a non-empty string)."""
    return isinstance(value, str) and bool(value.strip())


def _status_word(report: Message | None) -> str:
    if isinstance(report, Completed):
        return "completed"
    if isinstance(report, Failed):
        return "failed"
    if isinstance(report, Skipped):
        return "skipped"
    return "missing"


def _status_of(report: Message | None) -> str:
    if isinstance(report, Failed):
        return "failed"
    if isinstance(report, Skipped):
        return "was skipped"
    if report is None:
        return "ended without a result"
    return "completed"
