"""``actors graph`` draws the language's options; ``actors validate`` compiles its JS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import cli

from actors import Workflow
from actors._cli import mermaid


def order_workflow() -> Workflow:
    wf = Workflow("order")
    wf.add_step("lines", js="return ctx.event.lines;")
    wf.add_step("check stock", js="return item;", after=["lines"], for_each="deps.lines")
    wf.add_step(
        "approve", js="return 1;", after=["check stock"], when='deps["check stock"].length\n> 3'
    )
    wf.add_step("release", js="return 1;", after=["approve"], run_if="all_done")
    return wf


def test_graph_draws_for_each_when_and_run_if() -> None:
    assert mermaid(order_workflow()).splitlines() == [
        "flowchart TD",
        '    s1[["check stock<br/>for each: deps.lines"]]',
        '    approve{{"approve<br/>when: deps[#quot;check stock#quot;].length #gt; 3"}}',
        '    release["release<br/>run if: all_done"]',
        "    lines --> s1",
        "    s1 --> approve",
        "    approve -.-> release",
    ]


def write(tmp_path: Path, data: dict[str, object]) -> str:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"steps": {"a": {"js": "return item;", "for_each": "[1, 2,, *]"}}},
            "step 'a.for_each' line 1 col 9: SyntaxError: Unexpected token '*'",
        ),
        (
            {"steps": {"a": {"js": "return 1;", "when": "ctx.event.n >"}}},
            "step 'a.when' line 1 col 14: SyntaxError: Unexpected end of input",
        ),
        (
            {"lib": "function f( {}", "steps": {"a": {"js": "return lib.f();"}}},
            "step 'lib' line 1",
        ),
    ],
)
def test_validate_compiles_expressions_and_lib_in_the_sandbox(
    tmp_path: Path, data: dict[str, object], message: str
) -> None:
    proc = cli("validate", write(tmp_path, {"name": "t", **data}))
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr


@pytest.mark.timeout(60)
def test_validate_with_an_api_names_a_host_function_a_step_lists_but_the_api_lacks(
    tmp_path: Path,
) -> None:
    steps = {"a": {"js": "return 1;", "api": ["db_query", "send_mail"]}}
    proc = cli(
        "validate", write(tmp_path, {"name": "t", "steps": steps}), "--api", "examples.hosts:API"
    )
    assert proc.returncode == 2
    assert "api: the engine has no host function 'send_mail'" in proc.stderr


@pytest.mark.timeout(60)
def test_validate_accepts_every_option_and_graph_prints_them(tmp_path: Path) -> None:
    path = write(tmp_path, order_workflow().to_dict())
    proc = cli("validate", path)
    assert proc.returncode == 0, proc.stderr
    graph = cli("graph", path)
    assert graph.stdout.strip() == mermaid(order_workflow())
