"""Every code block of README.md runs as written (Python blocks and shell commands)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


# Not run here: installs (CI runs them on a fresh machine) and the full benchmark
# (minutes; CI runs its --smoke form, which is also in the README).
NOT_RUN_HERE = re.compile(r"venv|pip install|-m benchmarks\s*(#|$)")


def shell_commands() -> list[str]:
    """Logical command lines of the shell blocks, except those NOT_RUN_HERE."""
    commands = []
    for block in SHELL_BLOCKS:
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not NOT_RUN_HERE.search(command):
                commands.append(command.strip())
    return commands


def environment(tmp_path: Path) -> dict[str, str]:
    wrapper = tmp_path / "python"  # "python" in the README means this interpreter
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_the_readme_has_code_to_check() -> None:
    assert len(PYTHON_BLOCKS) >= 5
    assert len(shell_commands()) >= 8


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[f"python-{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_python_block_runs(block: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block],
        cwd=ROOT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", shell_commands())
def test_shell_command_runs(command: str, tmp_path: Path) -> None:
    # A command documented as failing says so in its comment ("# actors: error: ...").
    expected = 2 if "# actors: error" in command else 0
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == expected, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
