"""The engine on a SQLite run store: recording, resume, keys, history, retry, prune.

The scheduler is under test here, so steps run on the fake runner; a real SQLite
file backs every test. Crashes of real processes are in test_actors_crash.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, SQLiteStore, StepCompleted, Workflow
from actors._store import RunRecord, StepRecord
from actors.errors import StoreLocked, StoreRequired, UnknownRun
from actors.testing import FakeRunner, FakeScript

pytestmark = pytest.mark.anyio


def chain() -> Workflow:
    wf = Workflow("chain")
    wf.add_step("a", js="A")
    wf.add_step("b", js="B", after=["a"])
    wf.add_step("c", js="C", after=["b"])
    return wf


def runner(**overrides: Any) -> FakeRunner:
    async def a(s: FakeScript) -> Any:
        return s.ctx["event"]["n"] + 1

    async def b(s: FakeScript) -> Any:
        return s.deps["a"] * 10

    async def c(s: FakeScript) -> Any:
        return {"c": s.deps["b"], "attempt": s.attempt}

    return FakeRunner({"A": a, "B": b, "C": c, **overrides})


def steps_in_file(path: Path, run_id: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT step, status FROM steps WHERE run_id = ?", (run_id,))
        return dict(rows.fetchall())


async def test_a_run_is_recorded_with_its_definition_and_outcomes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Engine(pool=runner(), store=db) as engine:
        result = await engine.run(chain(), event={"n": 1})
        stored = await engine.get_run(result.id)
    assert result.output == {"c": 20, "attempt": 1}
    assert stored.status == "completed" and stored.output == result.output
    assert {n: s.status for n, s in stored.steps.items()} == dict.fromkeys("abc", "completed")
    assert stored.steps["b"].result == 20 and stored.steps["b"].attempts == 1
    with sqlite3.connect(db) as conn:
        definition, event = conn.execute(
            "SELECT d.data, r.event FROM runs r JOIN definitions d ON d.hash = r.definition"
        ).fetchone()
    assert json.loads(definition) == chain().to_dict() and json.loads(event) == {"n": 1}


async def test_a_step_outcome_is_committed_before_its_event(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    seen: dict[str, dict[str, str]] = {}
    engine = Engine(pool=runner(), store=db)
    async with engine, engine.bus.subscribe("step.completed", policy="block") as events:
        handle = await engine.start(chain(), event={"n": 1})
        with anyio.fail_after(10):
            async for event in events:
                assert isinstance(event, StepCompleted) and event.step is not None
                seen[event.step] = steps_in_file(db, handle.id)  # another connection
                if event.step == "c":
                    break
        await handle.wait()
    assert seen["a"]["a"] == "completed" and "b" not in seen["a"]
    assert seen["b"]["b"] == "completed" and seen["c"]["c"] == "completed"


async def seed_crashed_run(db: Path) -> str:
    """A chain run as a crash leaves it: ``a`` completed, ``b`` on its 2nd attempt."""
    now = time.time()
    run = RunRecord("r1", "chain", chain().to_dict(), {"n": 4}, None, "running", now, now)
    async with SQLiteStore(db) as store:
        await store.create_run(run)
        await store.record_step(StepRecord("r1", "a", "completed", attempts=1, result=5))
        await store.record_attempt("r1", "b", 2)
    return run.id


async def test_entering_resumes_from_the_recorded_steps(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_id = await seed_crashed_run(db)
    fake = runner()
    async with Engine(pool=fake, store=db) as engine:
        with anyio.fail_after(10):
            result = await engine.wait(run_id)
    assert result.id == run_id and result.status == "completed"
    assert fake.started == [("b", 3), ("c", 1)]  # a never again; b counts on
    assert result.output == {"c": 50, "attempt": 1}  # b saw a's recorded 5
    assert result.steps["a"].result == 5 and result.steps["b"].attempts == 3


async def test_resume_false_leaves_unfinished_runs_alone(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_id = await seed_crashed_run(db)
    fake = runner()
    async with Engine(pool=fake, store=db, resume=False) as engine:
        assert (await engine.get_run(run_id)).status == "running"
        assert (await engine.get_run(run_id)).steps["c"].status == "pending"
        with pytest.raises(UnknownRun, match="resume=True"):
            await engine.wait(run_id)
    assert fake.started == []


async def test_an_engine_shut_down_mid_run_leaves_it_to_resume(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    entered = anyio.Event()

    async def hang(s: FakeScript) -> Any:
        entered.set()
        await anyio.sleep_forever()

    async with Engine(pool=runner(B=hang), store=db) as engine:
        handle = await engine.start(chain(), event={"n": 1})
        await entered.wait()
    assert steps_in_file(db, handle.id) == {"a": "completed"}  # b: no outcome
    async with Engine(pool=runner(), store=db, resume=False) as engine:
        stored = await engine.get_run(handle.id)
    assert stored.status == "running"
    assert [stored.steps[n].status for n in "abc"] == ["completed", "running", "pending"]
    async with Engine(pool=runner(), store=db) as engine:
        with anyio.fail_after(10):
            result = await engine.wait(handle.id)
    assert result.status == "completed" and result.steps["b"].attempts == 2


async def test_a_key_names_one_run_across_engines(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Engine(pool=runner(), store=db) as engine:
        first = await engine.run(chain(), event={"n": 1}, key="order-42")
        again = await engine.run(chain(), event={"n": 2}, key="order-42")
    fake = runner()
    async with Engine(pool=fake, store=db) as engine:
        handle = await engine.start(chain(), event={"n": 3}, key="order-42")
        later = await handle.wait()
        other = await engine.run(chain(), event={"n": 3}, key="order-43")
    assert first.id == again.id == later.id != other.id
    assert later.output == first.output == {"c": 20, "attempt": 1}
    assert fake.started == [("a", 1), ("b", 1), ("c", 1)]  # only order-43 ran


async def test_concurrent_starts_with_one_key_share_the_run(tmp_path: Path) -> None:
    handles = []
    async with Engine(pool=runner(), store=tmp_path / "runs.db") as engine:

        async def start() -> None:
            handles.append(await engine.start(chain(), event={"n": 1}, key="k"))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(start)
        assert len({h.id for h in handles}) == 1
        assert len(await engine.runs()) == 1


async def test_a_trigger_key_dedupes_published_events(tmp_path: Path) -> None:
    async with Engine(pool=runner(), store=tmp_path / "runs.db") as engine:
        engine.on("order.*", chain(), key=lambda payload: f"order-{payload['n']}")
        one = await engine.bus.publish("order.created", {"n": 1})
        two = await engine.bus.publish("order.updated", {"n": 1})
        three = await engine.bus.publish("order.created", {"n": 2})
        for handle in (*one, *two, *three):
            await handle.wait()
        assert one[0].id == two[0].id != three[0].id
        assert len(await engine.runs()) == 2


async def test_history_features_need_a_store() -> None:
    async with Engine(pool=runner()) as engine:
        with pytest.raises(StoreRequired, match="store"):
            await engine.start(chain(), event={"n": 1}, key="k")
        with pytest.raises(StoreRequired):
            await engine.runs()
        with pytest.raises(StoreRequired):
            engine.on("x", chain(), key=str)


async def test_retry_reruns_what_failed_and_keeps_what_completed(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    broken = True

    async def b(s: FakeScript) -> Any:
        if broken:
            raise_non_retryable()
        return s.deps["a"] * 10

    fake = runner(B=b)
    async with Engine(pool=fake, store=db) as engine:
        failed = await engine.run(chain(), event={"n": 1})
        broken = False
        handle = await engine.retry(failed.id)
        again = await handle.wait()
        listed = await engine.runs()
    assert failed.status == "failed" and failed.steps["c"].status == "skipped"
    assert again.id == failed.id and again.status == "completed"
    assert fake.started == [("a", 1), ("b", 1), ("b", 1), ("c", 1)]
    assert [r.status for r in listed] == ["completed"]


async def test_retry_from_a_step_reruns_it_and_what_follows(tmp_path: Path) -> None:
    fake = runner()
    async with Engine(pool=fake, store=tmp_path / "runs.db") as engine:
        done = await engine.run(chain(), event={"n": 1})
        again = await (await engine.retry(done.id, from_step="b")).wait()
        with pytest.raises(UnknownRun, match="no such run"):
            await engine.retry("nope")
    assert again.output == done.output
    assert fake.started == [("a", 1), ("b", 1), ("c", 1), ("b", 1), ("c", 1)]


def raise_non_retryable() -> None:
    from runtime_pool.errors import ScriptError

    raise ScriptError("NonRetryableError", "broken for now")


async def test_runs_lists_newest_first_and_prune_forgets_old_ones(tmp_path: Path) -> None:
    async with Engine(pool=runner(), store=tmp_path / "runs.db") as engine:
        ids = [(await engine.run(chain(), event={"n": n})).id for n in range(3)]
        assert [r.id for r in await engine.runs()] == ids[::-1]
        assert [r.id for r in await engine.runs(limit=1)] == ids[-1:]
        assert await engine.runs(workflow="other") == []
        assert await engine.prune(older_than=3600) == 0
        assert await engine.prune(older_than=0) == 3
        assert await engine.runs() == []


async def test_a_full_disk_fails_the_run_and_the_engine_keeps_serving(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    big = {"B": _big}
    async with Engine(pool=runner(**big), store=store) as engine:
        kept = await engine.run(chain(), event={"n": 1}, key="before")
        await store._run().call(_size_limit(0))
        failed = await engine.run(chain(), event={"n": 1})
        await store._run().call(_size_limit(1_000_000))
        after = await engine.run(chain(), event={"n": 1})
    assert failed.status == "failed" and failed.steps["b"].error is not None
    assert failed.steps["b"].error.name == "StoreError" and "full" in str(failed.steps["b"].error)
    assert after.status == "completed"
    async with Engine(pool=runner(), store=db, resume=False) as engine:
        assert (await engine.get_run(kept.id)).output == kept.output  # nothing lost


async def _big(s: FakeScript) -> Any:
    return "x" * 200_000


def _size_limit(extra_pages: int) -> Any:
    def limit(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")

    return limit


async def test_a_second_engine_on_one_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Engine(pool=runner(), store=db):
        with pytest.raises(StoreLocked, match="in use by process"):
            async with Engine(pool=runner(), store=db):
                pass


async def test_a_resumed_run_missing_a_host_function_fails_naming_it(tmp_path: Path) -> None:
    from runtime_pool import RuntimePool

    db = tmp_path / "runs.db"
    wf = Workflow("hosted")
    wf.add_step("a", js="return 1;")
    wf.add_step("b", js="return await fetch_data(deps.a);", after=["a"])
    now = time.time()
    async with SQLiteStore(db) as store:
        await store.create_run(
            RunRecord("r1", "hosted", wf.to_dict(), {}, None, "running", now, now)
        )
        await store.record_step(StepRecord("r1", "a", "completed", attempts=1, result=1))
    async with Engine(pool=RuntimePool(size=1), store=db) as engine:  # no fetch_data here
        with anyio.fail_after(20):
            result = await engine.wait("r1")
    error = result.steps["b"].error
    assert result.status == "failed" and error is not None
    assert error.name == "ReferenceError" and "fetch_data" in error.message


async def test_a_cancelled_run_is_recorded_so_and_retry_finishes_it(tmp_path: Path) -> None:
    entered = anyio.Event()

    async def hang(s: FakeScript) -> Any:
        entered.set()
        await anyio.sleep_forever()

    fake = runner(B=hang)
    async with Engine(pool=fake, store=tmp_path / "runs.db") as engine:
        handle = await engine.start(chain(), event={"n": 1})
        await entered.wait()
        cancelled = await handle.cancel()
        stored = await engine.get_run(handle.id)
        fake.scripts["B"] = runner().scripts["B"]
        again = await (await engine.retry(handle.id)).wait()
    assert cancelled.status == stored.status == "cancelled"
    assert [stored.steps[n].status for n in "abc"] == ["completed", "cancelled", "skipped"]
    assert again.status == "completed" and again.output == {"c": 20, "attempt": 1}
    assert [s for s, _ in fake.started] == ["a", "b", "b", "c"]
