"""``pool.check``: a script compiled in a real worker without running it."""

from __future__ import annotations

import pytest

from runtime_pool import RuntimePool
from runtime_pool.errors import WRAPPER_LINES, ScriptError, ScriptSyntaxError

pytestmark = pytest.mark.anyio

# code, message, line, column (1-based, in the code itself)
BROKEN = [
    ("const q = 1;\nconst b = q +* 2;\nreturn b;", "Unexpected token '*'", 2, 14),
    ("let q = 1;\nlet q = 2;", "Identifier 'q' has already been declared", 2, 5),
    ("const x = 1;\n  with (x) {}\n", "Strict mode code may not include a with statement", 2, 3),
    ("const s = 'abc;\nreturn s;", "Invalid or unexpected token", 1, 11),
    ("const a = 1;\nconst b = a foo;\n", "Unexpected identifier 'foo'", 2, 13),
    # V8 blames its wrapper's closing brace; the check points at the end of the code
    ("const q = 1;\nreturn (\n", "Unexpected end of input", 2, 9),
    ("if (true) {\n  return 1;\n\n", "Unexpected end of input", 2, 12),
]


@pytest.mark.parametrize(("code", "message", "line", "column"), BROKEN)
async def test_a_syntax_error_has_the_line_and_column_of_the_code(
    code: str, message: str, line: int, column: int
) -> None:
    async with RuntimePool(size=1) as pool:
        with pytest.raises(ScriptSyntaxError) as caught:
            await pool.check(code)
    error = caught.value
    assert isinstance(error, ScriptError)
    assert (error.name, error.message, error.line, error.column) == (
        "SyntaxError",
        message,
        line,
        column,
    )
    assert f"line {line}, column {column}" in str(error)


async def test_names_are_the_parameters_the_script_runs_with() -> None:
    async with RuntimePool(size=1) as pool:
        await pool.check("let ctx = 1; return ctx;")
        with pytest.raises(ScriptSyntaxError, match="'ctx' has already been declared"):
            await pool.check("let ctx = 1; return ctx;", names=["ctx"])
        with pytest.raises(ValueError, match="cannot be a JS global name"):
            await pool.check("return 1;", names=["not a name"])


async def test_the_check_runs_nothing_and_is_not_a_run() -> None:
    hostile = (
        "await record('ran'); setTimeout(() => record('timer'), 0);\n"
        "const o = { get x() { record('getter'); return 1; } }; return o.x;"
    )
    calls: list[str] = []

    def record(what: str) -> None:
        calls.append(what)

    async with RuntimePool(size=1) as pool:
        await pool.check(hostile, names=["record"])
        assert pool.statistics().runs == 0
        assert await pool.run("return 1 + 1;", api={"record": record}) == 2
    assert calls == []


async def test_the_same_error_at_run_time_is_a_plain_script_error() -> None:
    async with RuntimePool(size=1) as pool:
        with pytest.raises(ScriptError) as caught:
            await pool.run("return (")
    assert caught.value.name == "SyntaxError"
    assert not isinstance(caught.value, ScriptSyntaxError)


async def test_wrapper_lines_is_the_offset_of_a_run_time_stack() -> None:
    async with RuntimePool(size=1) as pool:
        with pytest.raises(ScriptError) as caught:
            await pool.run("const a = 1;\n\nreturn a.b.c;")
    assert caught.value.stack is not None
    assert f"<anonymous>:{3 + WRAPPER_LINES}:" in caught.value.stack
