"""The command line, run as ``python -m actors`` in a subprocess from the repo root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from actors import Workflow
from actors._cli import main, mermaid

ROOT = Path(__file__).resolve().parents[1]
ETL = "examples/etl.toml"
ETL_STEPS = ("extract_orders", "extract_customers", "extract_rates", "transform", "load")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "actors", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_workflow(tmp_path: Path, steps: dict[str, object], name: str = "wf.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"name": "t", "steps": steps}))
    return str(path)


# -- run ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_run_prints_output_json_on_stdout_and_progress_on_stderr() -> None:
    proc = cli("run", ETL, "--api", "examples.hosts:API", "--event", '{"day": "2024-05-01"}')
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout)
    assert output["rows_loaded"] == 4 and output["rejected_orders"] == [1006]
    for step in ETL_STEPS:
        assert re.search(rf"step_started +step={step} attempt=1\n", proc.stderr)
        assert re.search(rf"step_completed +step={step} attempt=1 duration=0\.\d+\n", proc.stderr)
    console = r"step_console +step=extract_orders attempt=1 line='log: 6 paid orders"
    assert re.search(console, proc.stderr)
    assert "run_completed" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
def test_run_of_the_seed_workflow_file_gives_the_seeds_result() -> None:
    proc = cli(
        "run", "examples/seed_workflow.toml", "--api", "examples.seed_workflow:API",
        "--event", '{"source_a": "a", "source_b": "b", "user_id": 123}',
        "--context", '{"config": {"multiplier": 2}}',
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    event = {"source_a": "a", "source_b": "b", "user_id": 123}
    assert json.loads(proc.stdout) == {"sum": 150, "count": 8, "event": event}


@pytest.mark.timeout(60)
def test_run_with_json_logs_context_and_event_file(tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text('{"user_id": 42}')
    context = '{"config": {"client_id": "demo-client", "client_secret": "s3cret"}}'
    proc = cli(
        "run", "examples/api_orchestration.json", "--api", "examples.hosts:API",
        "--event-file", str(event_file), "--context", context, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["recommended"] == ["book-number-theory", "slide-rule", "abacus"]
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    events = [(r["event"], r.get("step")) for r in records]
    assert ("step_completed", "get_loyalty") in events
    assert events[-1] == ("run_completed", None)


@pytest.mark.timeout(60)
def test_run_reads_the_event_from_stdin(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, {"echo": {"js": "return ctx.event.n * 2;"}})
    proc = cli("run", wf, "--event-file", "-", "-q", stdin='{"n": 21}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 42
    assert proc.stderr == ""  # -q: warnings and errors only


@pytest.mark.timeout(60)
def test_failed_run_exits_1_with_the_failed_steps_error(tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        {
            "a": {"js": "throw new TypeError('boom');"},
            "b": {"js": "return deps.a;", "after": ["a"]},
        },
    )
    proc = cli("run", wf)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "actors: run failed: step 'a' line 1: TypeError: boom (attempt 1)" in proc.stderr
    assert "    1 | throw new TypeError('boom');" in proc.stderr
    assert re.search(r"step_skipped +step=b reason=\"upstream 'a' failed\"", proc.stderr)
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
def test_retries_show_in_the_progress(tmp_path: Path) -> None:
    flaky = "if (ctx.run.attempt < 2) throw new Error('flaky'); return ctx.run.attempt;"
    wf = write_workflow(tmp_path, {"f": {"js": flaky, "retry": {"attempts": 2, "delay": 0.01}}})
    proc = cli("run", wf)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 2
    assert re.search(r"step_retrying +step=f attempt=1 delay=0\.01 ", proc.stderr)
    assert "error=flaky" in proc.stderr


@pytest.mark.timeout(60)
def test_timeout_cancels_the_run_and_exits_1(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, {"w": {"js": "await new Promise(r => setTimeout(r, 20000));"}})
    proc = cli("run", wf, "--timeout", "0.3")
    assert proc.returncode == 1
    assert "run cancelled after 0.3 s (--timeout)" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- validate and graph ------------------------------------------------------------------


def test_validate_accepts_a_good_file() -> None:
    proc = cli("validate", ETL)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ok: {ETL}: workflow 'daily_revenue_etl', 5 steps"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ({"a": {"js": "return 1", "after": ["nope"]}}, "step 'a' depends on unknown step 'nope'"),
        (
            {"a": {"js": "1", "after": ["b"]}, "b": {"js": "2", "after": ["a"]}},
            "dependency cycle",
        ),
        ({"a": {"js": "return 1", "timeout": -1}}, "steps.a.timeout"),
        ({"a": {"code": "return 1"}}, "steps.a.code: unknown step option"),
    ],
)
def test_validate_rejects_a_bad_file_with_a_clear_message(
    tmp_path: Path, steps: dict[str, object], message: str
) -> None:
    proc = cli("validate", write_workflow(tmp_path, steps))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.startswith("actors: error: ") and proc.stderr.count("\n") == 1


def test_graph_prints_a_mermaid_flowchart() -> None:
    proc = cli("graph", ETL)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    edges = {line.strip() for line in lines[1:]}
    assert edges == {
        "extract_orders --> transform",
        "extract_customers --> transform",
        "extract_rates --> transform",
        "transform --> load",
    }


def test_mermaid_quotes_odd_names_and_lists_lone_steps() -> None:
    wf = Workflow("odd")
    wf.add_step("load data", js="return 1")
    wf.add_step("end", js="return 2", after=["load data"])
    wf.add_step("alone", js="return 3")
    assert mermaid(wf).splitlines() == [
        "flowchart TD",
        '    s0["load data"]',
        '    s1["end"]',
        "    alone",
        "    s0 --> s1",
    ]


# -- bad input: one line on stderr, exit 2, no traceback ---------------------------------


def _bad_json(tmp: Path) -> list[str]:
    (tmp / "bad.json").write_text('{"name": "x", "steps": {')
    return ["run", str(tmp / "bad.json")]


def _bad_toml(tmp: Path) -> list[str]:
    (tmp / "bad.toml").write_text('name = "x"\n[steps.a\njs = "return 1"\n')
    return ["validate", str(tmp / "bad.toml")]


BAD_INPUTS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "missing file": (lambda t: ["run", str(t / "nope.json")], "cannot read: No such file"),
    "directory": (lambda t: ["graph", str(t)], "cannot read"),
    "unsupported suffix": (lambda t: ["validate", "README.md"], "unsupported file type"),
    "bad JSON": (_bad_json, "bad.json: not valid JSON"),
    "bad TOML": (_bad_toml, "bad.toml: not valid TOML"),
    "bad --event": (lambda t: ["run", ETL, "--event", "{day:"], "--event: not valid JSON"),
    "missing --event-file": (
        lambda t: ["run", ETL, "--event-file", str(t / "e.json")],
        "--event-file: cannot read",
    ),
    "bad --context": (lambda t: ["run", ETL, "--context", "[1]"], "--context: must be a JSON"),
    "reserved --context key": (
        lambda t: ["run", ETL, "--context", '{"event": 1}'],
        "--context: key 'event' is reserved",
    ),
    "unknown --api module": (
        lambda t: ["run", ETL, "--api", "no_such_module:API"],
        "--api: no module named 'no_such_module'",
    ),
    "missing --api attribute": (
        lambda t: ["run", ETL, "--api", "examples.hosts:NOPE"],
        "--api: module 'examples.hosts' has no attribute 'NOPE'",
    ),
    "--api without attribute": (
        lambda t: ["run", ETL, "--api", "examples.hosts"],
        "--api: expected module:attribute",
    ),
    "--api not a dict": (
        lambda t: ["run", ETL, "--api", "examples.hosts:CLIENTS.get"],
        "expected a dict of host functions",
    ),
    "bad --timeout": (lambda t: ["run", ETL, "--timeout", "-1"], "--timeout: must be a positive"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    make_args, message = BAD_INPUTS[case]
    proc = cli(*make_args(tmp_path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("actors: error: ") and proc.stderr.count("\n") == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2_without_traceback() -> None:
    for args in (["run"], ["frob"], ["run", ETL, "--event", "{}", "--event-file", "e.json"]):
        proc = cli(*args)
        assert proc.returncode == 2 and "usage: actors" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_console_script_points_at_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["actors"] == "actors._cli:main"
    assert callable(main)
