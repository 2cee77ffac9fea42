"""Every example script runs from the repo root, exits 0 and prints its key result."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors import Workflow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOT_SCRIPTS = {"__init__.py", "hosts.py"}  # modules the examples import

SEED_RESULT = (
    "Result: {'sum': 150, 'count': 8, 'event': {'source_a': 'a', 'source_b': 'b', 'user_id': 123}}"
)
EXPECTED = {
    "seed_workflow.py": [SEED_RESULT],
    "etl.py": [
        "Loaded 4 rows into daily_revenue for 2024-05-01:",
        "DE  2 orders  EUR   155.00",
        "Total EUR 510.50; rejected orders: [1006]",
    ],
    "moderation.py": ["p-1   approve", "p-2   review", "p-3   reject", "3 decisions published"],
    "order_processing.py": [
        "A-1001 waits for approval: approved by ops",
        "charge_payment attempt 1 failed: payment gateway timed out (504); retrying in 0.05 s",
        "fulfilled: charged EUR 114.15 (ch_0001, 2 payment attempts)",
        "failed at validate: NonRetryableError: line 1: quantity must be a positive integer",
        "skipped: reserve_inventory, quote_shipping, approval, charge_payment, fulfil,"
        " release_inventory",
        "failed at charge_payment: Error: card declined",
        "compensated: released res-A-1003",
        "stock after all orders: {'kbd-mech': 4, 'mouse-pro': 12, 'usb-c-cable': 38}",
    ],
    "fanout.py": [
        "8 chunks, 4000 lines, 6 malformed skipped",
        "chunks read at the same time",
    ],
    "durable.py": ["calling notify for o-42", "completed: notify: ok"],
    "scale_out.py": ["8 runs for 8 orders: A-0, A-1, A-2, A-3, B-0, B-1, B-2, B-3"],
    "api_orchestration.py": [
        "GET  https://api.example.com/loyalty/42  -> 200",
        "Profile of Ada Lovelace <ada@example.com>",
        "recommended:   book-number-theory, slide-rule, abacus",
    ],
}


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_example_script_has_a_test() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - NOT_SCRIPTS
    assert scripts == set(EXPECTED)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_its_result(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args = ["--db", str(tmp_path / "runs.db")] if name == "durable.py" else []
    if name == "scale_out.py":  # needs a database: the session's PostgreSQL server
        args = [request.getfixturevalue("postgres_dsn")]
    proc = run_example(name, *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for line in EXPECTED[name]:
        assert line in proc.stdout
    if name == "fanout.py":
        # reads overlapped (2 or more of the 8); how many depends on how soon each
        # run reaches its worker, which load changes
        assert re.search(r"up to [2-8] chunks read at the same time", proc.stdout)


@pytest.mark.timeout(90)
def test_seed_example_prints_the_seeds_output_with_fetches_concurrent() -> None:
    lines = run_example("seed_workflow.py").stdout.splitlines()
    assert lines[-1] == SEED_RESULT
    assert set(lines[:2]) == {" → fetch_a", " → fetch_b"}  # both start before either ends
    assert set(lines[2:4]) == {" ✓ fetch_a", " ✓ fetch_b"}  # in either order
    assert lines[4:8] == [" → combine", " ✓ combine", " → aggregate", " ✓ aggregate"]


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.toml")) + sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name
)
def test_example_workflow_files_are_valid(path: Path) -> None:
    workflow = Workflow.from_file(path)
    assert Workflow.from_dict(workflow.to_dict()).to_dict() == workflow.to_dict()


def test_seed_workflow_files_are_the_seed_example_as_data() -> None:
    spec = importlib.util.spec_from_file_location("seed_example", EXAMPLES / "seed_workflow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the workflow; main() runs only as a script
    toml = Workflow.from_file(EXAMPLES / "seed_workflow.toml")
    assert Workflow.from_file(EXAMPLES / "seed_workflow.json").to_dict() == toml.to_dict()
    python = module.wf
    assert list(toml.steps) == list(python.steps)
    for name, step in toml.steps.items():
        assert step.js.strip() == python.steps[name].js.strip()
        assert step.after == python.steps[name].after


@pytest.mark.timeout(90)
def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_durable_example_resumes_after_ctrl_c(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "runs.db")]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    first = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "durable.py"), *db],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        text=True,
        # A suite started in the background by a shell without job control inherits
        # SIGINT ignored, and so would the example: give it Ctrl-C back.
        preexec_fn=_sigint_default,
    )
    assert first.stdout is not None
    before = []
    for line in first.stdout:  # interrupt it once charge is under way
        before.append(line)
        if "calling charge" in line:
            first.send_signal(signal.SIGINT)
            break
    rest, _ = first.communicate(timeout=30)
    assert "interrupted: run the script again to resume" in rest
    second = run_example("durable.py", *db).stdout
    assert "steps recorded: reserve\n" in second
    assert "calling reserve" not in second and "calling charge" in second
    assert "completed: notify: ok" in second
    key = before[-1].split("idempotency key ")[1].split(":")[0]
    assert f"run {key} completed" in second  # the same run, resumed
    third = run_example("durable.py", *db).stdout
    assert "order o-42 was done already" in third and "calling" not in third
