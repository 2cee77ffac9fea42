"""Triggers: ``engine.on(pattern, workflow)`` starts a run for each matching publish.

A :class:`Trigger` is the handle ``engine.on`` returns: ``off()`` stops it, and it
is a context manager (sync or async) that calls ``off()`` on exit. The bus keeps a
:class:`TriggerTable` of the triggers of its running engines; ``bus.publish`` fires
the matching ones and returns the handles of the runs they started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from actors._subscription import topic_matches

if TYPE_CHECKING:
    from actors._run import RunHandle
    from actors._workflow import Workflow

__all__ = ("Starter", "Trigger", "TriggerTable")

Starter = Callable[[Any], Awaitable["RunHandle"]]
"""Starts one run with ``ctx.event = payload`` and returns its handle."""


class Trigger:
    """A registered trigger: ``pattern``, ``workflow``, ``active``; ``off()`` stops it."""

    def __init__(
        self,
        pattern: str,
        workflow: Workflow,
        *,
        on_off: Callable[[Trigger], None],
        key: Callable[[Any], str] | None = None,
    ):
        self.pattern = pattern
        self.workflow = workflow
        self.key = key
        self._on_off: Callable[[Trigger], None] | None = on_off

    def __repr__(self) -> str:
        state = "active" if self.active else "off"
        return f"<Trigger {self.pattern!r} -> {self.workflow.name!r} {state}>"

    @property
    def active(self) -> bool:
        return self._on_off is not None

    def off(self) -> None:
        """Stop starting runs (runs already started go on). Idempotent."""
        on_off, self._on_off = self._on_off, None
        if on_off is not None:
            on_off(self)

    def __enter__(self) -> Trigger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.off()

    async def __aenter__(self) -> Trigger:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.off()


class TriggerTable:
    """The bus's live triggers, each with the function that starts its runs."""

    def __init__(self) -> None:
        self._entries: tuple[tuple[Trigger, Starter], ...] = ()

    def add(self, trigger: Trigger, start: Starter) -> None:
        self._entries = (*self._entries, (trigger, start))

    def remove(self, trigger: Trigger) -> None:
        self._entries = tuple(entry for entry in self._entries if entry[0] is not trigger)

    async def fire(self, topic: str, payload: Any) -> tuple[RunHandle, ...]:
        """Start a run for each trigger matching ``topic``; return their handles."""
        handles = []
        for trigger, start in self._entries:
            if trigger.active and topic_matches(trigger.pattern, topic):
                handles.append(await start(payload))
        return tuple(handles)
