"""Compiling a script in a worker without running it: the syntax check."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio

from . import errors
from ._inbox import Frame, RunInbox
from ._run import WorkerGone, check_code, check_name
from ._slot import ActiveRun, Slot

__all__ = ("CheckLost", "check_request", "drive_check", "syntax_error")


class CheckLost(Exception):
    """The worker ended or restarted its runtime before it answered: ask another."""


def check_request(code: str, names: Iterable[str]) -> tuple[str, list[str]]:
    """Check the arguments of a syntax check; raise before any worker is involved."""
    check_code(code)
    listed = list(names)
    for name in listed:
        check_name(name)
    return code, listed


async def drive_check(
    slot: Slot,
    run: ActiveRun,
    inbox: RunInbox,
    code: str,
    names: list[str],
    timeout: float,
) -> Any:
    """Send the check to the slot's worker; return its outcome (``None`` or a list)."""
    header = {"op": "check", "id": run.token, "code": code, "names": names}
    try:
        try:
            await slot.process.send(header)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            slot.dead = True
            raise WorkerGone from None
        frame: Frame | None = None
        with anyio.move_on_after(timeout):
            try:
                frame = await inbox.receive()
            except anyio.EndOfStream:
                frame = None
    finally:
        inbox.close()
    if frame is None or frame[0].get("kind") != "checked":
        raise CheckLost
    return frame[0].get("syntax")


def syntax_error(outcome: Any) -> errors.ScriptSyntaxError | None:
    """The error a check's outcome describes, if any."""
    if outcome is None:
        return None
    message, line, column = outcome
    return errors.ScriptSyntaxError(str(message), line, column)
