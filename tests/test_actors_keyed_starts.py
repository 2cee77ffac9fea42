"""Starts with one ``key`` in one engine share one run, whatever order the store answers in."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, SQLiteStore, Workflow
from actors._store import RunRecord
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


def workflow() -> Workflow:
    wf = Workflow("keyed")
    wf.add_step("a", js="A")
    return wf


def runner() -> FakeRunner:
    async def a(s: FakeScript) -> Any:
        return s.ctx["event"]["n"] * 2

    return FakeRunner({"A": a})


class SlowFirstStore(SQLiteStore):
    """The first recorded run's answer comes late: a later start of its key sees it first."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.created = 0

    async def create_run(self, run: RunRecord) -> RunRecord:
        stored = await super().create_run(run)
        self.created += 1
        if self.created == 1:
            await anyio.sleep(0.3)
        return stored


class StaleStore(SQLiteStore):
    """Answers a start of a recorded key with the record as it was while the run ran."""

    async def create_run(self, run: RunRecord) -> RunRecord:
        stored = await super().create_run(run)
        if stored.id != run.id:
            return dataclasses.replace(stored, status="running")
        return stored


async def test_a_start_whose_key_is_being_recorded_waits_for_that_run(tmp_path: Path) -> None:
    handles = []
    async with Engine(pool=runner(), store=SlowFirstStore(tmp_path / "runs.db")) as engine:

        async def start() -> None:
            handles.append(await engine.start(workflow(), event={"n": 2}, key="k"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(start)
        assert len({handle.id for handle in handles}) == 1
        assert [(await handle.wait()).output for handle in handles] == [4, 4, 4]
        assert len(await engine.runs()) == 1


async def test_a_run_that_ended_after_its_record_was_read_is_returned_ended(
    tmp_path: Path,
) -> None:
    async with Engine(pool=runner(), store=StaleStore(tmp_path / "runs.db")) as engine:
        first = await engine.start(workflow(), event={"n": 3}, key="k")
        assert (await first.wait()).output == 6
        again = await engine.start(workflow(), event={"n": 3}, key="k")
        assert again.id == first.id
        assert (await again.wait()).output == 6
