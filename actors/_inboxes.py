"""The inboxes of one run's steps: the reports each step has from its upstream steps.

Pure bookkeeping, no I/O: :meth:`Inboxes.report` files a step's report with every
step after it and says which of them it made ready (all their reports are in).
A step gets one report per upstream step, so an inbox never holds more than that.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors._actor import StepActor
from actors._graph import Plan
from actors._messages import Message
from actors._results import StepResult
from actors._store_codec import message_of

__all__ = ("Inboxes", "Ready")

Ready = tuple[StepActor, dict[str, Message]]


class Inboxes:
    """Reports by step, for the steps in ``actors``; ``recorded`` steps (a resumed run)
    have reported already."""

    __slots__ = ("_actors", "_plan", "_reports")

    def __init__(
        self,
        plan: Plan,
        actors: Mapping[str, StepActor],
        recorded: Mapping[str, StepResult],
    ) -> None:
        self._plan = plan
        self._actors = actors
        self._reports: dict[str, dict[str, Message]] = {name: {} for name in actors}
        for name, result in recorded.items():
            message = message_of(result)
            for child in plan.downstream[name]:
                if child in self._reports:
                    self._reports[child][name] = message

    def ready_at_start(self) -> list[Ready]:
        """The steps with every report in before any step ran, in plan order."""
        return [
            (actor, self._reports[name])
            for name, actor in self._actors.items()
            if self._is_full(name)
        ]

    def report(self, message: Message) -> list[Ready]:
        """File ``message`` (from step ``message.step``) downstream; return the steps
        it made ready, in plan order."""
        ready = []
        for child in self._plan.downstream[message.step]:
            reports = self._reports.get(child)
            if reports is None:  # recorded already (a resumed run)
                continue
            reports[message.step] = message
            if self._is_full(child):
                ready.append((self._actors[child], reports))
        return ready

    def _is_full(self, name: str) -> bool:
        return len(self._reports[name]) == len(self._plan.upstream[name])
