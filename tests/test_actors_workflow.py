"""Workflow definitions: decorator, add_step, data, files, validation, freezing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors import Retry, Step, Workflow
from actors.errors import (
    ActorsError,
    CycleDetected,
    DefinitionError,
    DuplicateStep,
    InvalidOption,
    UnknownDependency,
    WorkflowFileError,
    WorkflowFrozen,
)


def seed_workflow() -> Workflow:
    wf = Workflow("orders")

    @wf.step()
    def fetch_a() -> None:
        """
        // Access event data via ctx
        const source = ctx.event.source_a || 'foo';
        return await fetch_data(source);
        """

    @wf.step(after=[fetch_a, "fetch_b"], timeout=5.0, retry=Retry(attempts=3, delay=0.1))
    def combine() -> None:
        """return [...deps.fetch_a, ...deps.fetch_b];"""

    wf.add_step("fetch_b", js="return await fetch_data('b');")
    return wf


def test_decorator_takes_the_js_from_the_dedented_docstring() -> None:
    wf = seed_workflow()
    assert wf.steps["fetch_a"].js == (
        "// Access event data via ctx\n"
        "const source = ctx.event.source_a || 'foo';\n"
        "return await fetch_data(source);"
    )


def test_decorator_returns_the_step_and_after_accepts_steps_and_names() -> None:
    wf = seed_workflow()
    combine = wf.steps["combine"]
    assert isinstance(combine, Step)
    assert combine.after == ("fetch_a", "fetch_b")
    assert combine.timeout == 5.0
    assert combine.retry == Retry(attempts=3, delay=0.1)
    wf.validate()


def test_decorator_name_option_overrides_the_function_name() -> None:
    wf = Workflow("w")

    @wf.step(name="first")
    def whatever() -> None:
        """return 1;"""

    @wf.step
    def second() -> None:
        """return deps.first + 1;"""

    assert list(wf.steps) == ["first", "second"]
    assert whatever.name == "first"


def test_add_step_returns_the_step() -> None:
    wf = Workflow("w")
    a = wf.add_step("a", js="return 1;")
    b = wf.add_step("b", js="return 2;", after=a)
    assert b.after == ("a",)


def test_duplicate_step_is_refused_by_name() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    with pytest.raises(DuplicateStep) as info:
        wf.add_step("a", js="return 2;")
    assert info.value.step == "a"
    assert isinstance(info.value, ActorsError)


@pytest.mark.parametrize("js", ["", "   \n ", None, 42])
def test_empty_or_non_string_js_names_the_step(js: object) -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidOption) as info:
        wf.add_step("bad", js=js)  # type: ignore[arg-type]
    assert (info.value.step, info.value.option) == ("bad", "js")


def test_a_step_function_without_docstring_is_refused() -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidOption) as info:

        @wf.step()
        def nodoc() -> None:
            pass

    assert info.value.step == "nodoc"


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"timeout": "5"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"retry": {"attempts": 3}}, "retry"),
        ({"after": [1]}, "after"),
    ],
)
def test_bad_option_types_name_the_option(kwargs: dict[str, object], option: str) -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidOption) as info:
        wf.add_step("s", js="return 1;", **kwargs)  # type: ignore[arg-type]
    assert (info.value.step, info.value.option) == ("s", option)


def test_validate_names_an_unknown_dependency() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;", after=["nope"])
    with pytest.raises(UnknownDependency) as info:
        wf.validate()
    assert (info.value.step, info.value.dependency) == ("a", "nope")


def test_validate_names_the_steps_on_a_cycle() -> None:
    wf = Workflow("w")
    wf.add_step("start", js="return 1;")
    wf.add_step("a", js="return 1;", after=["start", "c"])
    wf.add_step("b", js="return 1;", after=["a"])
    wf.add_step("c", js="return 1;", after=["b"])
    with pytest.raises(CycleDetected) as info:
        wf.validate()
    assert sorted(info.value.steps) == ["a", "b", "c"]


def test_an_empty_workflow_is_invalid() -> None:
    with pytest.raises(DefinitionError):
        Workflow("empty").validate()


def test_a_frozen_workflow_refuses_new_steps() -> None:
    wf = seed_workflow()
    wf.freeze()
    assert wf.frozen
    with pytest.raises(WorkflowFrozen):
        wf.add_step("late", js="return 1;")
    with pytest.raises(TypeError):
        wf.steps["x"] = wf.steps["combine"]  # type: ignore[index]


def test_to_dict_and_from_dict_round_trip() -> None:
    wf = seed_workflow()
    data = wf.to_dict()
    assert data["steps"]["fetch_b"] == {"js": "return await fetch_data('b');"}
    assert data["steps"]["combine"]["retry"] == {
        "attempts": 3,
        "delay": 0.1,
        "backoff": 1.0,
        "jitter": 0.0,
    }
    again = Workflow.from_dict(data)
    assert again.to_dict() == data
    assert again.steps == wf.steps


def test_from_dict_validates_at_once() -> None:
    with pytest.raises(UnknownDependency):
        Workflow.from_dict({"name": "w", "steps": {"a": {"js": "return 1;", "after": ["z"]}}})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"name": "w", "steps": {"a": {"after": []}}}, "steps.a.js"),
        ({"name": "w", "steps": {"a": {"js": "return 1;", "timeout": "x"}}}, "steps.a.timeout"),
        ({"name": "w", "steps": {"a": {"js": "return 1;", "afer": []}}}, "steps.a.afer"),
        (
            {"name": "w", "steps": {"a": {"js": "x", "retry": {"attempts": 0}}}},
            "steps.a.retry.attempts",
        ),
        ({"name": "w", "steps": {"a": {"js": "x", "retry": 3}}}, "steps.a.retry"),
        ({"name": "w", "steps": {"a": {"js": "x", "after": "b"}}}, "steps.a.after"),
        ({"name": "", "steps": {"a": {"js": "x"}}}, "name"),
        ({"name": "w", "steps": {}}, "steps"),
        ({"name": "w", "steps": {"a": {"js": "x"}}, "extra": 1}, "extra"),
    ],
)
def test_from_dict_errors_name_the_offending_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(InvalidOption) as info:
        Workflow.from_dict(data)
    assert info.value.option == key
    assert key in str(info.value)


TOML = """
name = "orders"

[steps.fetch_a]
js = "return await fetch_data(ctx.event.source_a || 'foo');"

[steps.fetch_b]
js = '''
const source = ctx.event.source_b || 'bar';
return await fetch_data(source);
'''

[steps.combine]
js = "return [...deps.fetch_a, ...deps.fetch_b];"
after = ["fetch_a", "fetch_b"]
timeout = 5.0
retry = { attempts = 3, delay = 0.1, backoff = 2.0 }
"""


def test_from_file_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "orders.toml"
    path.write_text(TOML)
    wf = Workflow.from_file(path)
    assert wf.name == "orders"
    assert wf.steps["combine"].retry == Retry(attempts=3, delay=0.1, backoff=2.0)
    assert wf.steps["fetch_b"].js.startswith("const source")


def test_from_file_reads_json_written_from_to_dict(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(seed_workflow().to_dict()))
    assert Workflow.from_file(path).to_dict() == seed_workflow().to_dict()


def test_malformed_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TOML.replace("timeout = 5.0", 'timeout = "soon"'))
    with pytest.raises(WorkflowFileError) as info:
        Workflow.from_file(path)
    assert info.value.key == "steps.combine.timeout"
    assert "bad.toml" in str(info.value) and "steps.combine.timeout" in str(info.value)


def test_graph_error_in_a_file_names_the_file_and_the_step(tmp_path: Path) -> None:
    path = tmp_path / "cyc.json"
    steps = {"a": {"js": "x", "after": ["b"]}, "b": {"js": "x", "after": ["a"]}}
    data = {"name": "c", "steps": steps}
    path.write_text(json.dumps(data))
    with pytest.raises(WorkflowFileError) as info:
        Workflow.from_file(path)
    assert "cyc.json" in str(info.value) and "cycle" in str(info.value)
    assert info.value.key in ("steps.a", "steps.b")


def test_duplicate_json_keys_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"name": "d", "steps": {"a": {"js": "x"}, "a": {"js": "y"}}}')
    with pytest.raises(WorkflowFileError) as info:
        Workflow.from_file(path)
    assert info.value.key == "a" and "dup.json" in str(info.value)


def test_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text("name = \n")
    with pytest.raises(WorkflowFileError, match=r"broken\.toml"):
        Workflow.from_file(bad)
    with pytest.raises(WorkflowFileError, match=r"missing\.json"):
        Workflow.from_file(tmp_path / "missing.json")
    other = tmp_path / "wf.yaml"
    other.write_text("name: x")
    with pytest.raises(WorkflowFileError, match=r"wf\.yaml"):
        Workflow.from_file(other)
