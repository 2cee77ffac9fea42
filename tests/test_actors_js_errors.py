"""JS errors point at the step's own line: stack mapping, and real failing steps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from actors import Engine, Retry, Workflow
from actors._stack import WRAPPER_LINES, map_stack, source_line
from actors._values import first_non_json
from actors.errors import ScriptFailed
from runtime_pool import RuntimePool

# Stacks as the sandbox reports them (captured from real runs).
NESTED = """TypeError: Cannot read properties of null (reading 'y')
    at f (eval at compile (<eval>:421:12), <anonymous>:7:12)
    at eval (eval at compile (<eval>:421:12), <anonymous>:9:8)
    at run (<eval>:444:27)"""
FROM_HOST = """Error: host said no
    at boom (<eval>:256:13)
    at async eval (eval at compile (<eval>:421:12), <anonymous>:4:1)
    at async run (<eval>:444:21)"""
THROUGH_BUILTIN = """TypeError: Cannot read properties of null (reading 'q')
    at eval (eval at compile (<eval>:421:12), <anonymous>:4:22)
    at Array.map (<anonymous>)
    at eval (eval at compile (<eval>:421:12), <anonymous>:4:5)
    at run (<eval>:444:27)"""
SYNTAX = """SyntaxError: Unexpected token '}'
    at new AsyncFunction (<anonymous>)
    at compile (<eval>:421:12)
    at run (<eval>:443:18)"""


def test_frames_get_the_steps_own_lines_and_glue_frames_go() -> None:
    mapped = map_stack(NESTED, step="calc")
    assert (mapped.line, mapped.column) == (7 - WRAPPER_LINES, 12)
    assert mapped.stack.splitlines() == [
        "TypeError: Cannot read properties of null (reading 'y')",
        "    at f (calc:4:12)",
        "    at calc:6:8",
    ]


def test_a_host_function_frame_stays_named_as_such() -> None:
    mapped = map_stack(FROM_HOST, step="pay", host_functions={"boom"})
    assert mapped.stack.splitlines()[1:] == ["    at boom (host function)", "    at async pay:1:1"]
    assert (mapped.line, mapped.column) == (1, 1)


def test_builtin_frames_stay_and_the_innermost_user_frame_gives_the_line() -> None:
    mapped = map_stack(THROUGH_BUILTIN, step="s")
    assert "    at Array.map (<anonymous>)" in mapped.stack
    assert (mapped.line, mapped.column) == (1, 22)
    assert "<eval>" not in mapped.stack


def test_a_syntax_error_has_no_user_frame_and_no_glue_left() -> None:
    mapped = map_stack(SYNTAX, step="s")
    assert mapped.stack == "SyntaxError: Unexpected token '}'"
    assert mapped.line is None and mapped.column is None


def test_source_line_is_one_based_and_bounded() -> None:
    assert source_line("a\nb\nc", 2) == "b"
    assert source_line("a", 0) is None and source_line("a", 2) is None
    assert source_line("a", None) is None


# -- real failing steps on the real pool ---------------------------------------------------


async def run_steps(
    steps: dict[str, str], *, attempts: int = 3, event: Any = None, **api: Any
) -> Any:
    wf = Workflow("errors")
    for name, js in steps.items():
        wf.add_step(name, js=js, retry=Retry(attempts=attempts, delay=0.01))
    async with RuntimePool(size=1) as pool, Engine(pool=pool, api=api) as engine:
        with anyio.fail_after(20):
            return await engine.run(wf, event=event)


@pytest.mark.anyio
@pytest.mark.timeout(40)
async def test_a_failing_step_reports_its_own_line_column_and_source() -> None:
    async def lookup(key: str) -> dict[str, Any]:
        return {"key": key}

    js = "const a = await lookup('k');\nconst order = ctx.event.order;\n\nreturn order.id;"
    result = await run_steps({"parse": js}, attempts=2, lookup=lookup)
    error = result.steps["parse"].error
    assert isinstance(error, ScriptFailed) and error.name == "TypeError"
    assert (error.line, error.column) == (4, 14)
    assert error.source_line == "return order.id;"
    assert error.stack is not None and "at parse:4:14" in error.stack
    assert "<eval>" not in error.stack
    assert "line 4: TypeError" in str(error)
    assert result.steps["parse"].attempts == 2  # a TypeError is retried


@pytest.mark.anyio
@pytest.mark.timeout(40)
async def test_syntax_and_reference_errors_are_not_retried() -> None:
    result = await run_steps(
        {"syntax": "return (", "missing_host": "return await send_mail('a');"}, attempts=3
    )
    syntax, missing = result.steps["syntax"], result.steps["missing_host"]
    assert syntax.error is not None and syntax.error.name == "SyntaxError"
    assert missing.error is not None and missing.error.name == "ReferenceError"
    assert missing.error.message == (
        "send_mail is not defined (no host function 'send_mail' in the engine's api; it has: none)"
    )
    assert missing.error.line == 1
    assert not syntax.error.retryable and not missing.error.retryable
    assert syntax.attempts == missing.attempts == 1


def test_first_non_json_names_the_path_and_the_type() -> None:
    when = datetime(2024, 5, 1, tzinfo=UTC)
    assert first_non_json({"event": {"a": [1, {"when": when}]}}, "ctx") == (
        "ctx.event.a[1].when",
        "a datetime is not JSON-like data",
    )
    assert first_non_json({"x": float("nan")}, "deps") == ("deps.x", "nan is not a finite number")
    assert first_non_json({"ok": [1, "a", None, 2.5, True]}, "ctx") is None


@pytest.mark.anyio
@pytest.mark.timeout(40)
async def test_a_host_value_the_sandbox_cannot_take_is_named() -> None:
    event = {"order": {"when": datetime(2024, 5, 1, tzinfo=UTC)}}
    result = await run_steps({"a": "return ctx.event.order.when;"}, event=event)
    error = result.steps["a"].error
    assert error is not None and error.name == "InvalidValue" and not error.retryable
    assert error.message.startswith("ctx.event.order.when: a datetime is not JSON-like data")
