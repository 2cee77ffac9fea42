"""The engine's side of a run store: new runs (with keys), resume, history, retry, prune.

:class:`Durable` turns store records into :class:`Run` objects and results; the
engine admits and executes the runs. It keeps the runs under way in this engine
(``live``), so a key or a run id names the running object when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import anyio

from actors._graph import Plan
from actors._journal import RunJournal
from actors._log import get_logger
from actors._results import RunResult, StepResult
from actors._run import Run, RunEnvironment, RunHandle
from actors._store import RunRecord, RunStore
from actors._store_codec import FINAL, attempts_started, run_result, step_from_record
from actors._values import first_non_json
from actors._workflow import Workflow
from actors.errors import DefinitionError, InvalidOption, StoreError, UnknownRun

__all__ = ("Durable", "check_key")

logger = get_logger(__name__)

_MAX_ANCESTORS = 1000
_NOT_HERE = "is unfinished in the store but not running in this engine (open it with resume=True)"


class Durable:
    """Runs recorded in ``store``; ``live`` maps run ids to the runs under way here."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.live: dict[str, Run] = {}
        self._keyed: dict[str, anyio.Event] = {}  # keys whose run is being recorded here
        self._definitions: dict[int, tuple[Workflow, dict[str, Any]]] = {}

    async def create(
        self,
        workflow: Workflow,
        *,
        event: Any,
        key: str | None,
        env: RunEnvironment,
        parent_run_id: str | None = None,
        depth: int = 0,
    ) -> Run | RunHandle:
        """Record a new run and return it, or the handle of the run ``key`` names."""
        found = first_non_json(event, "event")
        if found is not None:
            raise InvalidOption(found[0], f"{found[1]} (a stored run's event is JSON data)")
        if key is None:
            return await self._create(workflow, event, None, env, parent_run_id, depth)
        while (other := self._keyed.get(key)) is not None:
            await other.wait()  # a start of the same key goes first: its run is then live
        self._keyed[key] = recorded = anyio.Event()
        try:
            return await self._create(workflow, event, key, env, parent_run_id, depth)
        finally:
            del self._keyed[key]
            recorded.set()

    async def _create(
        self,
        workflow: Workflow,
        event: Any,
        key: str | None,
        env: RunEnvironment,
        parent_run_id: str | None,
        depth: int,
    ) -> Run | RunHandle:
        run = Run(workflow, event=event, env=env, parent_run_id=parent_run_id, depth=depth)
        now = time.time()
        record = RunRecord(
            id=run.id,
            workflow=workflow.name,
            definition=self._definition(workflow),
            event=run.event,
            key=key,
            status="running",
            created_at=now,
            updated_at=now,
            parent_run_id=parent_run_id,
        )
        stored = await self.store.create_run(record)
        if stored.id != run.id:
            return await self.handle(stored)
        run.attach(RunJournal(self.store, run.id))
        self.live[run.id] = run
        return run

    async def handle(self, record: RunRecord) -> RunHandle:
        """The handle of a recorded run: live here, or ended."""
        live = self.live.get(record.id)
        if live is not None:
            return RunHandle(live)
        if record.status == "running":
            # It may have ended here since ``record`` was read (a run's end is
            # recorded before it leaves ``live``).
            record = await self.store.get_run(record.id) or record
            if record.status == "running":
                raise UnknownRun(record.id, _NOT_HERE)
        return RunHandle(EndedRun(await self._result(record)))

    async def resumable(self, env: RunEnvironment, *, limit: int | None = None) -> list[Run]:
        """A run for each unfinished record, its recorded steps filled in. ``limit``: on
        a shared store, take over at most this many."""
        claim = getattr(self.store, "claim_runs", None)
        if claim is None or limit is None:
            records = await self.store.unfinished_runs()
        else:
            records = await claim(limit)
        runs = []
        # not unfinished_runs() again: on a shared store that claims every orphaned run;
        # _depth reads an ancestor not among these from the store
        parents = {record.id: record.parent_run_id for record in records}
        for record in records:
            if record.id in self.live:
                continue
            try:
                workflow = _workflow_of(record)
            except DefinitionError as exc:
                logger.error("run_not_resumed", run_id=record.id, error=str(exc))
                continue
            steps = {s.step: s for s in await self.store.get_steps(record.id)}
            recorded = {n: step_from_record(s) for n, s in steps.items() if s.status in FINAL}
            attempts = attempts_started(record.definition, steps)
            waiting = {n: s.result for n, s in steps.items() if s.status == "waiting"}
            depth = await self._depth(record, parents)
            runs.append(self._revive(workflow, record, env, recorded, attempts, depth, waiting))
        return runs

    async def take_over(
        self,
        env: RunEnvironment,
        admit: Callable[[list[Run]], Awaitable[None]],
        room: Callable[[], Awaitable[int]],
    ) -> None:
        """With a shared store (one with a ``takeover_interval``): look for runs other
        engines left (lease lapsed) every interval, and admit here as many as there is
        ``room`` for (waiting for room; looking again at once while runs are left)."""
        interval = getattr(self.store, "takeover_interval", None)
        if interval is None:
            return
        more = False
        while True:
            if not more:
                await anyio.sleep(interval)
            limit = await room()
            try:
                runs = await self.resumable(env, limit=limit)
            except StoreError as exc:
                logger.warning("store_takeover_failed", error=str(exc))
                more = False
                continue
            more = len(runs) >= limit
            if runs:
                logger.info("runs_taken_over", run_ids=[run.id for run in runs])
                await admit(runs)

    async def retry(self, run_id: str, from_step: str | None, env: RunEnvironment) -> Run:
        """The ended run ``run_id`` again, keeping its completed steps (but ``from_step``
        and what depends on it)."""
        record = await self._ended(run_id)
        workflow = _workflow_of(record)
        if from_step is not None and from_step not in workflow.steps:
            raise InvalidOption("from_step", "is not a step of the run's workflow", value=from_step)
        again = _downstream(workflow.compiled(), from_step)
        keep = {
            s.step: step_from_record(s)
            for s in await self.store.get_steps(run_id)
            if s.status == "completed" and s.step not in again
        }
        await self.store.reopen_run(run_id, keep=keep)
        return self._revive(workflow, record, env, keep, {}, await self._depth(record, {}))

    def ended(self, run: Run) -> None:
        if self.live.get(run.id) is run:  # (a retry may have replaced it already)
            del self.live[run.id]

    async def get_run(self, run_id: str) -> RunResult:
        record = await self.store.get_run(run_id)
        if record is None:
            raise UnknownRun(run_id)
        return await self._result(record)

    async def wait(self, run_id: str) -> RunResult:
        live = self.live.get(run_id)
        if live is not None:
            return await live.wait()
        result = await self.get_run(run_id)
        if result.status == "running":
            raise UnknownRun(run_id, _NOT_HERE)
        return result

    async def runs(
        self, *, workflow: str | None, status: str | None, limit: int
    ) -> list[RunResult]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidOption("limit", "must be a positive integer", value=limit)
        records = await self.store.list_runs(workflow=workflow, status=status, limit=limit)
        return [await self._result(record) for record in records]

    async def prune(self, older_than: float | timedelta) -> int:
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise InvalidOption(
                "older_than", "must be seconds >= 0 or a timedelta", value=older_than
            )
        return await self.store.prune(ended_before=time.time() - seconds)

    # -- helpers -----------------------------------------------------------------------

    def _revive(
        self,
        workflow: Workflow,
        record: RunRecord,
        env: RunEnvironment,
        recorded: Mapping[str, StepResult],
        attempts: Mapping[str, int],
        depth: int,
        waiting: Mapping[str, Any] | None = None,
    ) -> Run:
        journal = RunJournal(self.store, record.id, attempts, waiting)
        journal.recorded(recorded)
        run = Run(
            workflow,
            event=record.event,
            env=env,
            run_id=record.id,
            recorded=recorded,
            parent_run_id=record.parent_run_id,
            depth=depth,
        )
        run.attach(journal)
        self.live[run.id] = run
        return run

    async def _depth(self, record: RunRecord, parents: Mapping[str, str | None]) -> int:
        """How deep the run is nested: its ancestors, read from ``parents`` (run ids to
        their parents' ids) or else the store (at most ``_MAX_ANCESTORS`` of them)."""
        depth, parent = 0, record.parent_run_id
        while parent is not None and depth < _MAX_ANCESTORS:
            depth += 1
            if parent in parents:
                parent = parents[parent]
                continue
            found = await self.store.get_run(parent)
            parent = None if found is None else found.parent_run_id
        return depth

    async def _ended(self, run_id: str) -> RunRecord:
        record = await self.store.get_run(run_id)
        if record is None:
            raise UnknownRun(run_id)
        if run_id in self.live or record.status == "running":
            raise UnknownRun(run_id, "is still running; only an ended run can be retried")
        return record

    async def _result(self, record: RunRecord) -> RunResult:
        return run_result(record, await self.store.get_steps(record.id))

    def _definition(self, workflow: Workflow) -> dict[str, Any]:
        cached = self._definitions.get(id(workflow))
        if cached is not None and cached[0] is workflow:
            return cached[1]
        if len(self._definitions) >= 256:
            self._definitions.clear()
        data = workflow.to_dict()
        self._definitions[id(workflow)] = (workflow, data)
        return data


class EndedRun:
    """A run that ended earlier (read from a store), for a :class:`RunHandle`."""

    def __init__(self, result: RunResult) -> None:
        self.id = result.id
        self.workflow = result.workflow
        self.parent_run_id = result.parent_run_id
        self.result: RunResult | None = result

    def cancel(self, reason: str = "run cancelled") -> None:
        """It has ended: nothing to cancel."""

    async def wait(self) -> RunResult:
        assert self.result is not None
        return self.result


def check_key(key: object) -> str | None:
    if key is None or (isinstance(key, str) and key):
        return key
    raise InvalidOption("key", "must be a non-empty string", value=key)


def _workflow_of(record: RunRecord) -> Workflow:
    workflow = Workflow.from_dict(record.definition)
    workflow.freeze()
    return workflow


def _downstream(plan: Plan, start: str | None) -> set[str]:
    if start is None:
        return set()
    found, todo = {start}, [start]
    while todo:
        for child in plan.downstream[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
