"""Quiet by default: no library line on stdout unless the application configured
structlog; the CLI's --json, --timeout and --step-timeout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (structlog not configured)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=50,
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return python(f"import sys; from actors._cli import main; sys.exit(main({list(args)!r}))")


def test_unconfigured_library_logs_warnings_to_stderr_only() -> None:
    proc = python(
        "from actors._log import get_logger\n"
        "log = get_logger('t').bind(run_id='r1')\n"
        "log.info('chatty_detail', n=1)\n"
        "log.warning('worth_knowing', duration=0.123456789)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "worth_knowing" in proc.stderr and "run_id=r1" in proc.stderr
    assert "duration=0.123 " in proc.stderr + " " and "0.1234" not in proc.stderr
    assert "chatty_detail" not in proc.stderr


def test_a_configured_application_gets_every_library_line_its_way() -> None:
    proc = python(
        "import structlog\n"
        "structlog.configure(processors=[structlog.processors.JSONRenderer()])\n"
        "from actors._log import get_logger\n"
        "get_logger('t').info('chatty_detail', n=1)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"event": "chatty_detail", "n": 1}


def test_an_engine_without_logging_set_up_prints_nothing_on_stdout() -> None:
    # A subscriber that never reads makes the bus drop events and warn about it.
    proc = python(
        "import anyio\n"
        "from actors import Engine, Workflow\n"
        "from actors.testing import FakeRunner\n"
        "wf = Workflow('w')\n"
        "for n in range(20): wf.add_step(f's{n}', js='return 1;')\n"
        "async def main():\n"
        "    async with Engine(pool=FakeRunner(), log_events=True) as engine:\n"
        "        async with engine.bus.subscribe('*', max_buffer=1):\n"
        "            await engine.run(wf)\n"
        "anyio.run(main)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "subscriber_dropping_events" in proc.stderr
    assert "step_completed" not in proc.stderr  # info lines stay quiet


@pytest.mark.timeout(60)
def test_the_readme_quickstart_prints_only_its_result_on_stdout() -> None:
    quickstart = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    proc = python(quickstart)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "Result: {'sum': 150, 'count': 8, 'event': "
        "{'source_a': 'a', 'source_b': 'b', 'user_id': 123}}"
    ]


# -- the CLI ---------------------------------------------------------------------------------


def workflow(tmp_path: Path, steps: dict[str, object]) -> str:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"name": "t", "steps": steps}))
    return str(path)


def json_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines()]  # fails on a non-JSON line


@pytest.mark.timeout(60)
def test_json_mode_prints_only_json_lines_the_final_error_included(tmp_path: Path) -> None:
    wf = workflow(tmp_path, {"a": {"js": "const x = 1;\nreturn x.y.z;"}})
    proc = cli("run", wf, "--json")
    assert proc.returncode == 1 and proc.stdout == ""
    lines = json_lines(proc.stderr)
    final = lines[-1]
    assert final["event"] == "step_error" and final["level"] == "error"
    assert (final["step"], final["line"], final["column"]) == ("a", 2, 12)
    assert final["source_line"] == "return x.y.z;" and final["error_name"] == "TypeError"
    assert (
        final["message"] == f"run failed: step 'a' line 2: TypeError: {final['error']} (attempt 1)"
    )


def test_json_mode_reports_bad_input_as_json(tmp_path: Path) -> None:
    proc = cli("run", str(tmp_path / "missing.toml"), "--json")
    assert proc.returncode == 2
    (line,) = json_lines(proc.stderr)
    assert line["event"] == "bad_input" and "cannot read" in str(line["message"])


@pytest.mark.timeout(60)
def test_timeout_names_the_steps_still_running(tmp_path: Path) -> None:
    wait = "await new Promise(r => setTimeout(r, 20000));"
    wf = workflow(tmp_path, {"quick": {"js": "return 1;"}, "slow": {"js": wait}})
    proc = cli("run", wf, "--timeout", "0.5")
    assert proc.returncode == 1
    assert re.search(
        r"actors: run cancelled after 0.5 s \(--timeout\); still running: 'slow' \(attempt 1, ",
        proc.stderr,
    )
    proc = cli("run", wf, "--timeout", "0.5", "--json")
    final = json_lines(proc.stderr)[-1]
    assert final["event"] == "run_timed_out" and final["running"] == ["slow"]


@pytest.mark.timeout(60)
def test_step_timeout_sets_the_default_step_timeout(tmp_path: Path) -> None:
    wait = "await new Promise(r => setTimeout(r, 20000));"
    wf = workflow(tmp_path, {"slow": {"js": wait}, "own": {"js": "return 1;", "timeout": 5}})
    proc = cli("run", wf, "--step-timeout", "0.3")
    assert proc.returncode == 1
    assert "step 'slow' attempt 1: ScriptTimeout: did not finish within 0.3 s" in proc.stderr
    assert "step 'own'" not in proc.stderr
    bad = cli("run", wf, "--step-timeout", "0")
    assert bad.returncode == 2 and "--step-timeout: must be a positive number" in bad.stderr
