"""The CLI on a run store: ``run --db --key``, ``runs``, ``show``, ``resume``, ``retry``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from actors import PostgresStore, Workflow
from actors._store import RunRecord
from tests.test_cli import cli, write_workflow

pytestmark = pytest.mark.timeout(90)

FAIL = "const e = new Error('no b today'); e.name = 'NonRetryableError'; throw e;"
STEPS = {
    "a": {"js": "console.log('a says hi'); return ctx.event.n + 1;"},
    "b": {"js": f"if (ctx.event.fail) {{ {FAIL} }}\nreturn deps.a * 2;", "after": ["a"]},
}


def workflow(tmp_path: Path) -> str:
    return write_workflow(tmp_path, STEPS)


def test_run_with_a_key_runs_once_and_the_history_shows_it(
    tmp_path: Path, store_address: str
) -> None:
    wf, db = workflow(tmp_path), store_address  # a SQLite file, a postgresql:// address
    first = cli("run", wf, "--db", db, "--key", "k1", "--event", '{"n": 1}')
    again = cli("run", wf, "--db", db, "--key", "k1", "--event", '{"n": 5}')
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert json.loads(first.stdout) == json.loads(again.stdout) == 4
    assert "step_started" not in again.stderr  # nothing ran the second time
    listed = cli("runs", "--db", db, "--json")
    runs = json.loads(listed.stdout)
    assert [(r["status"], r["key"]) for r in runs] == [("completed", "k1")]
    table = cli("runs", "--db", db)
    assert runs[0]["id"] in table.stdout and "completed" in table.stdout
    shown = cli("show", runs[0]["id"], "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert "log: a says hi" in shown.stdout
    assert [line.split()[:3] for line in shown.stdout.splitlines()[2:]] == [
        ["a", "completed", "1"],
        ["b", "completed", "1"],
    ]


def test_retry_reruns_a_failed_run_from_the_command_line(tmp_path: Path) -> None:
    wf, db = workflow(tmp_path), str(tmp_path / "runs.db")
    failed = cli("run", wf, "--db", db, "--event", '{"n": 1, "fail": true}')
    assert failed.returncode == 1 and "no b today" in failed.stderr
    run_id = json.loads(cli("runs", "--db", db, "--json").stdout)[0]["id"]
    shown = cli("show", run_id, "--db", db, "--json")
    assert json.loads(shown.stdout)["steps"]["b"]["status"] == "failed"
    with sqlite3.connect(db) as conn:  # the fix: the event no longer asks to fail
        conn.execute("UPDATE runs SET event = ? WHERE id = ?", ('{"n": 1}', run_id))
    retried = cli("retry", run_id, "--db", db)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == 4
    again = cli("retry", run_id, "--db", db, "--from", "a")
    assert again.returncode == 0 and json.loads(again.stdout) == 4
    assert cli("retry", "nope", "--db", db).returncode == 2


def test_resume_finishes_unfinished_runs(tmp_path: Path) -> None:
    wf, db = workflow(tmp_path), str(tmp_path / "runs.db")
    assert cli("run", wf, "--db", db, "--event", '{"n": 2}').returncode == 0
    run_id = json.loads(cli("runs", "--db", db, "--json").stdout)[0]["id"]
    with sqlite3.connect(db) as conn:  # as a crash after step a leaves it
        conn.execute("DELETE FROM steps WHERE run_id = ? AND step = 'b'", (run_id,))
        conn.execute("UPDATE runs SET status = 'running', ended_at = NULL WHERE id = ?", (run_id,))
    resumed = cli("resume", "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    assert [(r["id"], r["status"], r["output"]) for r in json.loads(resumed.stdout)] == [
        (run_id, "completed", 6)
    ]


def test_store_commands_say_what_is_wrong(tmp_path: Path) -> None:
    missing = cli("runs", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    no_db = cli("run", workflow(tmp_path), "--key", "k")
    assert no_db.returncode == 2 and "--key: needs --db" in no_db.stderr


def test_resume_on_postgresql_says_which_runs_live_engines_hold(
    tmp_path: Path, postgres_dsn: str
) -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    run = RunRecord("r1", "w", wf.to_dict(), None, None, "running", time.time(), time.time())

    async def resume_beside_a_live_engine() -> subprocess.CompletedProcess[str]:
        async with PostgresStore(postgres_dsn, lease=60) as live:  # an engine at work
            await live.create_run(run)
            return await asyncio.to_thread(cli, "resume", "--db", postgres_dsn)

    resumed = asyncio.run(resume_beside_a_live_engine())
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == []  # nothing to finish here
    assert "held by other engines that are running" in resumed.stderr
    assert "r1" in resumed.stderr
