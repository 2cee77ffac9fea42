"""The CLI prints any JSON-like output of a run, lone surrogates included (issue 14, finding 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"echo": {"js": "return { ...ctx.event, made: 'a\\ud800b\\udc00c', text: 'é😀' }"}}
EXPECTED = {"note": "\ud800", "made": "a\ud800b\udc00c", "text": "é😀"}


def run_cli(*args: str, encoding: str) -> subprocess.CompletedProcess[bytes]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONIOENCODING": encoding}
    command = [sys.executable, "-m", "actors", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=60, check=False)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_run_prints_output_holding_lone_surrogates_as_json(tmp_path: Path, encoding: str) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps({"name": "t", "steps": STEPS}))
    proc = run_cli("run", str(workflow), "--event", '{"note": "\\ud800"}', encoding=encoding)
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    assert json.loads(stdout) == EXPECTED
    if encoding == "utf-8":
        assert "é😀" in stdout  # non-ASCII stays readable where stdout can show it
