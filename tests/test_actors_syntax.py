"""Every step's JS is compiled in a real sandbox worker before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, Workflow
from actors._check import STEP_GLOBALS
from actors.errors import DefinitionError, StepSyntaxError
from runtime_pool import RuntimePool

ROOT = Path(__file__).resolve().parents[1]
BROKEN_JS = "const n = deps.fetch;\nconst m = n +* 2;\nreturn m;"


def broken_workflow() -> Workflow:
    wf = Workflow("broken")
    wf.add_step("fetch", js="return await record('fetch');")
    wf.add_step("shape", js=BROKEN_JS, after=["fetch"])
    return wf


class CountingPool(RuntimePool):
    """A real pool that counts the syntax checks it is asked for."""

    checks: list[str]

    async def check(self, code: str, *, names: Any = ()) -> None:
        self.checks.append(code)
        await super().check(code, names=names)


@pytest.mark.anyio
async def test_engine_run_reports_the_step_line_and_column_and_runs_nothing() -> None:
    calls: list[str] = []

    def record(what: str) -> str:
        calls.append(what)
        return what

    pool = RuntimePool(size=1)
    async with Engine(api={"record": record}, pool=pool) as engine:
        with pytest.raises(StepSyntaxError) as caught:
            await engine.run(broken_workflow())
        runs = pool.statistics().runs
    error = caught.value
    assert isinstance(error, DefinitionError)
    assert (error.step, error.line, error.column) == ("shape", 2, 14)
    assert error.message == "Unexpected token '*'"
    assert error.source_line == "const m = n +* 2;"
    assert "step 'shape' line 2 col 14: SyntaxError: Unexpected token '*'" in str(error)
    assert calls == []  # the upstream step did not run
    assert runs == 0  # nor did any attempt of any step: nothing to retry


@pytest.mark.anyio
async def test_each_script_is_checked_once_per_engine() -> None:
    wf = Workflow("fine")
    wf.add_step("a", js="return 1;")
    wf.add_step("b", js="return deps.a + 1;", after=["a"])
    pool = CountingPool(size=1)
    pool.checks = []
    async with Engine(pool=pool) as engine:
        first = await engine.run(wf)
        second = await engine.run(wf)
    assert first.output == second.output == 2
    assert sorted(pool.checks) == ["return 1;", "return deps.a + 1;"]


@pytest.mark.anyio
async def test_runs_started_at_once_share_each_scripts_check() -> None:
    wf = Workflow("fine")
    wf.add_step("a", js="return 1;")
    wf.add_step("b", js="return deps.a + 1;", after=["a"])
    pool = CountingPool(size=1)
    pool.checks = []
    outputs: list[Any] = []
    async with Engine(pool=pool) as engine:

        async def run() -> None:
            outputs.append((await engine.run(wf)).output)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(run)
    assert outputs == [2] * 20
    assert sorted(pool.checks) == ["return 1;", "return deps.a + 1;"]


@pytest.mark.anyio
async def test_a_step_may_not_redeclare_a_global_or_a_host_function() -> None:
    wf = Workflow("shadow")
    wf.add_step("a", js="const x = 1;\nlet fetch_data = 2;\nreturn x;")
    await wf.check()  # no such host function: compiles
    with pytest.raises(StepSyntaxError, match="'fetch_data' has already been declared") as caught:
        await wf.check(api=["fetch_data"])
    assert (caught.value.line, caught.value.column) == (2, 5)
    wf2 = Workflow("ctx")
    wf2.add_step("a", js=f"let {STEP_GLOBALS[1]} = 1;")
    async with RuntimePool(size=1) as pool:
        with pytest.raises(StepSyntaxError, match="line 1 col 5"):
            await wf2.check(pool)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "actors", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_broken(tmp_path: Path) -> str:
    path = tmp_path / "broken.json"
    steps = {"fetch": {"js": "return 1;"}, "shape": {"js": BROKEN_JS, "after": ["fetch"]}}
    path.write_text(json.dumps({"name": "broken", "steps": steps}))
    return str(path)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_cli_prints_the_step_line_column_and_source_line(tmp_path: Path, command: str) -> None:
    proc = cli(command, write_broken(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "step 'shape' line 2 col 14: SyntaxError: Unexpected token '*'" in proc.stderr
    lines = proc.stderr.splitlines()
    at = lines.index("    2 | const m = n +* 2;")
    assert lines[at + 1] == "      | " + " " * 13 + "^"
    assert proc.stdout == ""
    assert "step_started" not in proc.stderr


def test_the_cli_json_line_carries_the_position(tmp_path: Path) -> None:
    proc = cli("validate", "--json", write_broken(tmp_path))
    assert proc.returncode == 2
    last = json.loads(proc.stderr.splitlines()[-1])
    assert last["event"] == "syntax_error"
    assert (last["step"], last["line"], last["column"]) == ("shape", 2, 14)
    assert last["source_line"] == "const m = n +* 2;"


def test_every_example_file_passes_the_sandboxed_check() -> None:
    files = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".json", ".toml"))
    assert files
    for path in files:
        proc = cli("validate", str(path.relative_to(ROOT)), "--api", "examples.hosts:API")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("ok: ")
        assert proc.stderr == ""  # the sandbox worker's lifecycle is not news here


def test_from_file_compiles_every_step_in_the_sandbox(tmp_path: Path) -> None:
    path = write_broken(tmp_path)
    with pytest.raises(StepSyntaxError) as caught:
        Workflow.from_file(path)
    assert (caught.value.step, caught.value.line, caught.value.column) == ("shape", 2, 14)
    assert caught.value.source_line == "const m = n +* 2;"
    assert Workflow.from_file(path, check=False).name == "broken"  # no process: no check


@pytest.mark.anyio
async def test_from_file_checks_inside_a_running_event_loop_too(tmp_path: Path) -> None:
    with pytest.raises(StepSyntaxError, match="step 'shape' line 2 col 14"):
        Workflow.from_file(write_broken(tmp_path))
