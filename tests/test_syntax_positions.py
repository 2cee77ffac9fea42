"""Syntax error positions on tricky scripts: V8's own where it is inside the script,
the prefix search's where V8 points past it; columns in characters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actors import Engine, Workflow
from actors.errors import ScriptFailed, StepSyntaxError
from runtime_pool import RuntimePool
from runtime_pool._position import RUN_BINDINGS, function_source, locate
from runtime_pool.errors import ScriptSyntaxError

pytestmark = pytest.mark.anyio

# code -> (message, line, column): line and column (1-based, in characters) of the code
TRICKY = {
    "const a = 1;\nconst s = 'abc;\nreturn s;": ("Invalid or unexpected token", 2, 11),
    # V8 places these past the code; the check names where the literal began
    "const a = 1;\nconst s = `abc ${a};\nreturn s;\n": ("Unexpected end of input", 2, 11),
    "if (ctx) {\n  const x = 1;\n  return x;\n": ("Unexpected end of input", 3, 12),
    "const x = 1;\n}\nreturn x;": ("Unexpected token 'return'", 3, 1),
    "const r = /ab(c/;\nreturn r;": (
        "Invalid regular expression: /ab(c/: Unterminated group",
        1,
        11,
    ),
    "const r = /a\\/b/g;\nconst y = r.test('a/b') +;": ("Unexpected token ';'", 2, 26),
    "const t = `a\nb\nc`; const y = @;\n": ("Invalid or unexpected token", 3, 15),
    "function f() { await g(); }\nreturn 1;": (
        "await is only valid in async functions and the top level bodies of modules",
        1,
        16,
    ),
    "const x = 1; /* oops\nreturn x;": ("Invalid or unexpected token", 1, 14),
    "const o = {\n  a: 1\n  b: 2\n};": ("Unexpected identifier 'b'", 3, 3),
    # non-ASCII: columns count characters, astral ones included
    "const café = 'ü';\nconst z = café +* 2;": ("Unexpected token '*'", 2, 17),
    "const s = '😀😀😀'; const t = ;\n": ("Unexpected token ';'", 1, 28),
    # lines are counted where V8 counts them (CR LF, lone CR, U+2028)
    "const x = 1;\r\nconst y = ;\r\nreturn y;": ("Unexpected token ';'", 2, 11),
    "const x = 1;\rconst y = ;": ("Unexpected token ';'", 2, 11),
    "const s = 'a\u2028b';\nconst y = ;": ("Unexpected token ';'", 3, 11),
}


async def test_tricky_scripts_get_the_line_and_column_of_their_error() -> None:
    found = {}
    async with RuntimePool(size=1) as pool:
        for code in TRICKY:
            with pytest.raises(ScriptSyntaxError) as caught:
                await pool.check(code, names=["deps", "ctx"])
            found[code] = (caught.value.message, caught.value.line, caught.value.column)
    assert found == TRICKY


def test_the_run_bindings_are_the_glues() -> None:
    glue = (Path(__file__).parents[1] / "runtime_pool" / "_glue.js").read_text()
    listed = re.search(r"const RUN_BINDINGS = \[(.*?)\];", glue)
    assert listed is not None
    assert tuple(re.findall(r'"(\w+)"', listed[1])) == RUN_BINDINGS


def test_v8s_position_is_kept_only_inside_the_code_and_for_the_same_error() -> None:
    code = "const a = 1;\nconst b = a +* 2;"
    glue = ["Unexpected token '*'", 2, 10]
    wrapper = 3  # lines before the code in the function source
    assert locate(glue, code, [], lambda _: ("Unexpected token '*'", 2 + wrapper, 14)) == [
        "Unexpected token '*'",
        2,
        14,
    ]
    past_the_code = lambda _: ("Unexpected token '*'", 3 + wrapper, 2)  # noqa: E731
    assert locate(glue, code, [], past_the_code) == glue
    assert locate(glue, code, [], lambda _: ("Unexpected token '+'", 2 + wrapper, 12)) == glue

    def broken(_: str) -> None:
        raise RuntimeError("no runtime")

    assert locate(glue, code, [], broken) == glue
    assert locate(None, code, [], broken) is None


def test_the_function_source_has_the_wrappers_lines() -> None:
    source = function_source("return 1;", ["deps", "ctx"])
    assert source.splitlines()[3] == "return 1;"
    assert source.startswith("(async function anonymous(deps,ctx,console,")


async def test_step_errors_give_columns_in_characters_under_the_caret() -> None:
    broken, throws = Workflow("broken"), Workflow("throws")
    broken.add_step("bad", js="const s = '😀😀';\nconst t = s +* 2;")
    throws.add_step("bad", js="const s = '😀😀'; return s.x.y;")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        with pytest.raises(StepSyntaxError) as syntax:
            await engine.run(broken)
        result = await engine.run(throws)
    assert (syntax.value.line, syntax.value.column) == (2, 14)
    assert str(syntax.value).endswith("const t = s +* 2;\n      |              ^")
    error = result.steps["bad"].error
    assert isinstance(error, ScriptFailed)
    assert (error.name, error.line, error.source_line) == (
        "TypeError",
        1,
        "const s = '😀😀'; return s.x.y;",
    )
    assert error.source_line is not None and error.column is not None
    assert error.source_line[error.column - 1 :].startswith("y;")
