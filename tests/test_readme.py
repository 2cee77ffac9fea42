"""Every code block of README.md and docs/*.md runs as written, or is checked.

``python`` blocks and ``sh`` commands run; ``toml``/``json`` blocks parse (a
workflow loads, and a block shown as an ``examples/`` file holds that file's data);
a ``mermaid`` block is what a ``graph`` command of its page prints; ``text`` blocks
are samples of output. Relative links point at files that exist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors import Workflow

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KNOWN_LANGUAGES = {"python", "sh", "toml", "json", "mermaid", "text"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
EXAMPLE_FILE = re.compile(r"`(examples/[\w.]+\.(?:toml|json))`")


@dataclass(frozen=True)
class Block:
    page: Path
    language: str
    code: str
    before: str  # the page's text up to the block

    @property
    def name(self) -> str:
        return str(self.page.relative_to(ROOT))


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            found.append(Block(page, match[1], match[2], text[: match.start()]))
    return found


BLOCKS = blocks()


def unique(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(id, code) pairs, each code once (a snippet repeated on two pages runs once)."""
    first: dict[str, str] = {}
    for item_id, code in items:
        first.setdefault(code, item_id)
    return [(item_id, code) for code, item_id in first.items()]


def of(language: str) -> list[Block]:
    return [block for block in BLOCKS if block.language == language]


def numbered(language: str) -> list[tuple[str, Block]]:
    """Blocks of ``language`` with ids like ``docs/runs.md:python-2`` (counted per page)."""
    counts: dict[Path, int] = {}
    named = []
    for block in of(language):
        counts[block.page] = counts.get(block.page, 0) + 1
        named.append((f"{block.name}:{language}-{counts[block.page]}", block))
    return named


PYTHON = unique([(name, block.code) for name, block in numbered("python")])

# Not run here: installs (CI runs them on a fresh machine) and the full benchmark
# (minutes; CI runs its --smoke form, which is also documented).
NOT_RUN_HERE = re.compile(r"venv|pip install|-m benchmarks\s*(#|$)")


def commands(block: Block) -> list[str]:
    """Logical command lines of a shell block, except those NOT_RUN_HERE."""
    lines = block.code.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not NOT_RUN_HERE.search(line)]


SHELL = unique([(f"{b.name}: {c}", c) for b in of("sh") for c in commands(b)])


def environment(tmp_path: Path) -> dict[str, str]:
    wrapper = tmp_path / "python"  # "python" in the docs means this interpreter
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=50
    )


def test_the_docs_have_code_to_check() -> None:
    assert (ROOT / "docs").is_dir()
    assert len(PYTHON) >= 7
    assert len(SHELL) >= 12
    assert of("toml") and of("json") and of("mermaid")


def test_every_code_block_says_its_language() -> None:
    unknown = [(b.name, b.language) for b in BLOCKS if b.language not in KNOWN_LANGUAGES]
    assert unknown == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("code", [c for _, c in PYTHON], ids=[i for i, _ in PYTHON])
def test_python_block_runs(code: str, tmp_path: Path) -> None:
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", [c for _, c in SHELL], ids=[i for i, _ in SHELL])
def test_shell_command_runs(command: str, tmp_path: Path) -> None:
    # A command documented as failing says so in its comment ("# actors: error: ...").
    expected = 2 if "# actors: error" in command else 0
    result = run(["bash", "-c", command], tmp_path)
    assert result.returncode == expected, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def parse(block: Block) -> object:
    return tomllib.loads(block.code) if block.language == "toml" else json.loads(block.code)


DATA = of("toml") + of("json")


@pytest.mark.parametrize("block", DATA, ids=[f"{b.name}:{b.language}" for b in DATA])
def test_data_block_parses_and_matches_the_file_it_shows(block: Block) -> None:
    data = parse(block)
    if isinstance(data, dict) and "steps" in data:
        Workflow.from_dict(data)  # a workflow shown in the docs is a valid one
    shown = EXAMPLE_FILE.findall(block.before[-400:])
    if shown and shown[-1].endswith(block.language):
        path = ROOT / shown[-1]
        on_disk = tomllib.loads(path.read_text()) if block.language == "toml" else None
        assert data == (on_disk if on_disk is not None else json.loads(path.read_text()))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("block", of("mermaid"), ids=lambda b: b.name)
def test_mermaid_block_is_what_a_graph_command_of_its_page_prints(
    block: Block, tmp_path: Path
) -> None:
    page_commands = [c for b in of("sh") if b.page == block.page for c in commands(b)]
    graphs = [c.split("#")[0].strip() for c in page_commands if " graph " in c]
    assert graphs, "a mermaid block needs the graph command that prints it"
    outputs = [run(["bash", "-c", command], tmp_path).stdout.strip() for command in graphs]
    assert block.code.strip() in outputs


LINKS = sorted(
    {
        (str(page.relative_to(ROOT)), target)
        for page in PAGES
        for target in LINK.findall(page.read_text())
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    }
)


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p}->{t}" for p, t in LINKS])
def test_relative_link_points_at_a_file(page: str, target: str) -> None:
    assert ((ROOT / page).parent / target.split("#")[0]).exists()
