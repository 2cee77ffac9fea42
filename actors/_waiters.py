"""Who waits for what: the registrations of waiting steps, found by topic or by run.

A waiting step holds no worker and no task of its own: its actor registers a
:class:`Waiter` and awaits its event. The bus keeps a :class:`WaiterTable`:
``bus.publish(topic, payload)`` completes every waiter on ``topic`` whose match
value equals ``payload[match]`` (every waiter without ``match``), with one dict
look-up per match field. An engine's :class:`Waits` adds the deadlines (one
:class:`~actors._timers.Timers` task) and ``engine.send`` (to one run's waiter;
kept in a small mailbox until that run waits on the topic).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Hashable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from actors._log import get_logger
from actors._timers import Timer, Timers
from actors.errors import UnknownRun

if TYPE_CHECKING:
    from actors._admission import Admission

__all__ = ("MAILBOX_SIZE", "Waiter", "WaiterTable", "Waits")

logger = get_logger(__name__)

MAILBOX_SIZE = 64  # payloads engine.send keeps per run until it waits for them
_ANY = object()  # the match value of a waiter without ``match``


class Waiter:
    """One waiting step: the event it waits for (``topic``; ``None`` for a sleep) and
    how it ended: ``payload`` delivered, or ``expired`` at its deadline."""

    __slots__ = ("done", "expired", "match", "payload", "run_id", "timer", "topic", "value")

    def __init__(
        self, run_id: str, topic: str | None, match: str | None = None, value: Any = None
    ) -> None:
        self.run_id = run_id
        self.topic = topic
        self.match = match
        self.value = value
        self.done = anyio.Event()
        self.payload: Any = None
        self.expired = False
        self.timer: Timer | None = None

    def deliver(self, payload: Any) -> bool:
        if self.done.is_set():
            return False
        self.payload = payload
        self.done.set()
        return True

    def expire(self) -> None:
        if not self.done.is_set():
            self.expired = True
            self.done.set()


def _key(value: Any) -> Hashable:
    """A dict key for a match value: the value itself when hashable (so ``==`` decides),
    else its canonical JSON."""
    try:
        hash(value)
    except TypeError:
        return ("json", json.dumps(value, sort_keys=True, default=repr))
    return value  # type: ignore[no-any-return]


class WaiterTable:
    """The bus's waiters by topic, match field and match value (see the module)."""

    def __init__(self) -> None:
        self._topics: dict[str, dict[str | None, dict[Hashable, dict[Waiter, None]]]] = {}

    def __len__(self) -> int:
        return sum(
            len(waiters)
            for fields in self._topics.values()
            for values in fields.values()
            for waiters in values.values()
        )

    def add(self, waiter: Waiter) -> None:
        assert waiter.topic is not None
        fields = self._topics.setdefault(waiter.topic, {})
        key = _ANY if waiter.match is None else _key(waiter.value)
        fields.setdefault(waiter.match, {}).setdefault(key, {})[waiter] = None

    def remove(self, waiter: Waiter) -> None:
        if waiter.topic is None:
            return
        fields = self._topics.get(waiter.topic, {})
        values = fields.get(waiter.match, {})
        key = _ANY if waiter.match is None else _key(waiter.value)
        waiters = values.get(key, {})
        waiters.pop(waiter, None)
        if not waiters:
            values.pop(key, None)
            if not values:
                fields.pop(waiter.match, None)
                if not fields:
                    self._topics.pop(waiter.topic, None)

    def publish(self, topic: str, payload: Any) -> int:
        """Deliver ``payload`` to every waiter it matches; return how many."""
        fields = self._topics.get(topic)
        if not fields:
            return 0
        found: list[Waiter] = []
        for match, values in fields.items():
            if match is None:
                found.extend(values.get(_ANY, {}))
            elif isinstance(payload, Mapping) and match in payload:
                found.extend(values.get(_key(payload[match]), {}))
        for waiter in found:
            self.remove(waiter)
            waiter.deliver(payload)
        return len(found)


class Waits:
    """An engine's side of waiting: its runs' waiters, deadlines and mailboxes."""

    def __init__(self, table: WaiterTable, admission: Admission | None = None) -> None:
        self.table = table
        self.timers = Timers()
        self._admission = admission
        self._runs: dict[str, dict[Waiter, None]] = {}  # live runs -> their waiters
        self._mail: dict[str, deque[tuple[str, Any]]] = {}
        self._lent: dict[str, int] = {}  # runs whose place is lent -> their waiting steps
        self._ended_lent: set[str] = set()  # runs cancelled while their place was lent
        self._children: set[str] = set()  # sub-workflow runs: take a place back at once

    def lent(self, run_id: str) -> bool:
        """Whether run ``run_id``'s place is lent out (so it holds none)."""
        return run_id in self._lent or run_id in self._ended_lent

    @asynccontextmanager
    async def lending(self, run_id: str) -> AsyncIterator[None]:
        """While a step of run ``run_id`` waits: lend the run's place (``max_active_runs``)
        to other runs; take one again (waiting for it, but a child run, whose parent
        holds a place and waits for it, takes it at once) before the step goes on."""
        if self._admission is None or run_id not in self._runs:
            yield
            return
        if run_id not in self._lent:
            self._admission.abandon()
        self._lent[run_id] = self._lent.get(run_id, 0) + 1
        try:
            yield
        except BaseException:
            self._return(run_id, ending=True)
            raise
        await self._return_place(run_id)

    async def _return_place(self, run_id: str) -> None:
        if self._lent.get(run_id) != 1:
            self._return(run_id, ending=False)
            return
        assert self._admission is not None
        try:
            if run_id in self._children:
                self._admission.enter_nowait()
            else:
                await self._admission.enter()  # (cancelled: it holds nothing then)
        except BaseException:
            self._return(run_id, ending=True)
            raise
        if self._lent[run_id] > 1:  # another step began waiting meanwhile: lend it again
            self._admission.abandon()
        self._return(run_id, ending=False)

    def _return(self, run_id: str, *, ending: bool) -> None:
        """One waiting step of the run is done; the last one ends the loan (``ending``:
        the run is ending without a place, and its end gives none back)."""
        left = self._lent.pop(run_id) - 1
        if left:
            self._lent[run_id] = left
        elif ending:
            self._ended_lent.add(run_id)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.timers.serve(task_status=task_status)

    def enter(self, run_id: str, *, child: bool = False) -> None:
        """Run ``run_id`` is under way (``child``: a sub-workflow's run)."""
        self._runs.setdefault(run_id, {})
        if child:
            self._children.add(run_id)

    def leave(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        self._mail.pop(run_id, None)
        self._lent.pop(run_id, None)
        self._ended_lent.discard(run_id)
        self._children.discard(run_id)

    def register(self, waiter: Waiter, deadline: float | None) -> None:
        """Start waiting (at once, before any await): take mail sent ahead, else wait
        for a publish on the topic and the ``deadline`` (``anyio.current_time()``)."""
        if waiter.topic is not None and self._take_mail(waiter):
            return
        if deadline is not None:
            waiter.timer = self.timers.add(deadline, waiter.expire)
        if waiter.topic is not None:
            self.table.add(waiter)
        self._runs.setdefault(waiter.run_id, {})[waiter] = None

    def unregister(self, waiter: Waiter) -> None:
        if waiter.timer is not None:
            self.timers.cancel(waiter.timer)
        self.table.remove(waiter)
        self._runs.get(waiter.run_id, {}).pop(waiter, None)

    def send(self, run_id: str, topic: str, payload: Any) -> bool:
        """Deliver to run ``run_id``'s waiter on ``topic`` (True), or keep it for the run
        until it waits on ``topic`` (False). Raises :class:`UnknownRun` if the run is not
        under way in this engine."""
        waiters = self._runs.get(run_id)
        if waiters is None:
            raise UnknownRun(run_id, "is not running in this engine")
        waiter = next((w for w in waiters if w.topic == topic), None)
        if waiter is not None:
            self.unregister(waiter)
            return waiter.deliver(payload)
        mail = self._mail.setdefault(run_id, deque())
        if len(mail) >= MAILBOX_SIZE:
            dropped, _ = mail.popleft()
            logger.warning("send_dropped", run_id=run_id, topic=dropped, kept=MAILBOX_SIZE)
        mail.append((topic, payload))
        return False

    def _take_mail(self, waiter: Waiter) -> bool:
        mail = self._mail.get(waiter.run_id)
        if not mail:
            return False
        for n, (topic, payload) in enumerate(mail):
            if topic == waiter.topic:
                del mail[n]
                return waiter.deliver(payload)
        return False
