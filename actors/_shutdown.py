"""What leaving ``async with Engine`` does to runs in flight: cancel them, or drain.

``"cancel"`` (the default) stops every running run at once. ``"drain"`` stops the
triggers, lets the runs in flight finish for up to ``drain_timeout`` seconds, then
cancels what is left. A block left by an exception (or by cancellation) always
cancels: there is nobody to wait for the results.
"""

from __future__ import annotations

import math
from typing import Literal

import anyio

from actors._run import RunHandle
from actors.errors import InvalidOption

__all__ = ("ActiveRuns", "Shutdown", "check_shutdown", "drain", "sole_exception")

Shutdown = Literal["cancel", "drain"]
_SHUTDOWNS = ("cancel", "drain")


def check_shutdown(shutdown: object, drain_timeout: object) -> None:
    """Raise :class:`InvalidOption` for a bad ``shutdown`` or ``drain_timeout``."""
    if shutdown not in _SHUTDOWNS:
        raise InvalidOption("shutdown", f"must be one of {_SHUTDOWNS}", value=shutdown)
    if (
        isinstance(drain_timeout, bool)
        or not isinstance(drain_timeout, int | float)
        or not drain_timeout >= 0
    ):
        reason = "must be a number of seconds >= 0 (math.inf: no limit)"
        raise InvalidOption("drain_timeout", reason, value=drain_timeout)


class ActiveRuns:
    """The handles of the runs an engine started that have not ended yet."""

    def __init__(self) -> None:
        self._handles: list[RunHandle] = []
        self._kept = 0  # handles after the last sweep of ended ones

    def add(self, handle: RunHandle) -> None:
        self._handles.append(handle)
        # Sweep ended handles once the list doubled: O(1) per start, amortized, even
        # with many long-lived (waiting) runs.
        if len(self._handles) > max(64, 2 * self._kept):
            self._handles = [h for h in self._handles if not h.done]
            self._kept = len(self._handles)

    def running(self) -> tuple[RunHandle, ...]:
        return tuple(h for h in self._handles if not h.done)

    async def wait_all_done(self, timeout: float) -> bool:
        """Wait until every run (including runs started meanwhile) has ended, or for
        ``timeout`` seconds; return whether they all ended."""
        with anyio.move_on_after(None if math.isinf(timeout) else timeout):
            while running := self.running():
                await running[0].wait()
            return True
        return False


async def drain(active: ActiveRuns, timeout: float) -> BaseException | None:
    """Wait for the runs in flight (see :meth:`ActiveRuns.wait_all_done`). Return the
    exception that interrupted the wait (e.g. the caller's cancellation), for the
    engine to re-raise once it has cancelled the runs and closed its pool."""
    try:
        await active.wait_all_done(timeout)
    except BaseException as exc:  # re-raised by the engine after its clean-up
        return exc
    return None


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception in the engine task group's ``group``, or ``None`` if several.

    The engine raises it as itself, so ``except KeyError`` around ``async with
    Engine(...)`` catches the body's KeyError as if there were no task group inside.
    """
    return group.exceptions[0] if len(group.exceptions) == 1 else None
