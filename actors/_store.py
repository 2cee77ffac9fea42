"""The run store interface: what the engine records about runs, whatever the backend.

The engine talks to a :class:`RunStore` only (never to SQL). A backend records
plain data: :class:`RunRecord` (one per run) and :class:`StepRecord` (one per step
outcome, and a ``"running"`` marker per attempt started). Values are JSON-like
data; a backend encodes them as it likes. ``actors.SQLiteStore`` is the embedded
backend, ``actors.PostgresStore`` the shared one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike, fspath
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from actors.errors import InvalidOption

__all__ = ("ENDED", "RunRecord", "RunStore", "StepRecord", "open_store")

# Run statuses a run ends with; "running" is the only other one.
ENDED = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run: its workflow ``definition`` (``Workflow.to_dict()`` data), ``event``,
    idempotency ``key``, ``status`` (``"running"`` or how it ended), Unix times,
    once ended, ``output``, and ``parent_run_id`` for a sub-workflow's run."""

    id: str
    workflow: str
    definition: Mapping[str, Any]
    event: Any
    key: str | None
    status: str
    created_at: float
    updated_at: float
    ended_at: float | None = None
    output: Any = None
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a run: its final outcome, or ``status="running"`` with the attempts
    started so far. ``error`` is plain data (see ``actors._store_codec``); ``logs``
    holds ``(level, text)`` pairs."""

    run_id: str
    step: str
    status: str
    attempts: int = 0
    result: Any = None
    error: Mapping[str, Any] | None = None
    reason: str | None = None
    duration: float = 0.0
    logs: tuple[tuple[str, str], ...] = ()
    updated_at: float = 0.0


@runtime_checkable
class RunStore(Protocol):
    """A durable record of runs. Open with ``async with``; one engine owns it at a time.

    Writes return once committed, except :meth:`record_attempt` (queued: losing it
    in a crash only lowers the next attempt number). Errors are
    :class:`~actors.errors.StoreError` leaves.
    """

    @property
    def location(self) -> str: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    async def create_run(self, run: RunRecord) -> RunRecord:
        """Record ``run``; if ``run.key`` names a recorded run, record nothing and
        return that one instead."""
        ...

    async def record_attempt(self, run_id: str, step: str, attempt: int) -> None: ...

    async def record_step(self, step: StepRecord) -> None: ...

    async def finish_run(
        self, run_id: str, *, status: str, output: Any, steps: Sequence[StepRecord]
    ) -> None:
        """The run ended with ``status``; ``steps`` are outcomes not recorded before."""
        ...

    async def reopen_run(self, run_id: str, *, keep: Collection[str]) -> None:
        """Mark an ended run ``"running"`` again, forgetting every step not in ``keep``."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def get_steps(self, run_id: str) -> list[StepRecord]: ...

    async def list_runs(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest first."""
        ...

    async def unfinished_runs(self) -> list[RunRecord]:
        """Every run whose status is ``"running"``, oldest first."""
        ...

    async def prune(self, *, ended_before: float) -> int:
        """Delete runs that ended before the Unix time ``ended_before``; return how many."""
        ...


def open_store(store: object) -> RunStore | None:
    """``Engine(store=...)``: ``None``, a path (SQLite), a ``postgresql://`` address or
    a :class:`RunStore` object."""
    if store is None or isinstance(store, RunStore):
        return store
    if isinstance(store, str) and store.startswith(("postgresql://", "postgres://")):
        from actors._store_postgres import PostgresStore

        return PostgresStore(store)
    if isinstance(store, str) and "://" in store:
        raise InvalidOption("store", "must be a file path or a postgresql:// address", value=store)
    if isinstance(store, str | PathLike) and fspath(store):
        from actors._store_sqlite import SQLiteStore

        return SQLiteStore(store)
    raise InvalidOption("store", "must be None, a file path or a RunStore", value=store)
