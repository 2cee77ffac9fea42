"""Where a script's SyntaxError is, in the script's own lines and characters.

Inside JS, V8 gives a SyntaxError from ``new AsyncFunction`` no position, so the
glue finds one by compiling prefixes of the script. jsrun does report V8's own
position for a top-level script that does not compile (``JavaScriptError.frames``):
the worker compiles the script's function source that way once the glue found an
error (see ``syntax_position`` in ``_sandbox``) and keeps V8's position when it is
inside the script. An error V8 places past the script (an unterminated template
literal, a missing ``}``) keeps the glue's, which names where the construct began
or where the script ends. Columns count characters (code points), not UTF-16 units.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .errors import WRAPPER_LINES

__all__ = ("RUN_BINDINGS", "function_source", "js_lines", "locate")

# Parameters the glue adds after a script's globals and api names (RUN_BINDINGS in
# _glue.js; a test keeps them in step).
RUN_BINDINGS = (
    "console",
    "setTimeout",
    "setInterval",
    "clearTimeout",
    "clearInterval",
    "queueMicrotask",
    "Math",
)
_LINE_BREAK = re.compile("\r\n|[\n\r\u2028\u2029]")  # JS line terminators

Outcome = list[Any]  # [message, line, column] as the glue reports it, or None
Compiler = Callable[[str], "tuple[str, int, int] | None"]


def js_lines(code: str) -> list[str]:
    """``code`` split into lines as V8 counts them."""
    return _LINE_BREAK.split(code)


def function_source(code: str, names: Sequence[str]) -> str:
    """The source V8 compiles for ``new AsyncFunction(...names, '"use strict";\\n' + code)``."""
    params = list(names) + [n for n in RUN_BINDINGS if n not in names]
    return f'(async function anonymous({",".join(params)}\n) {{\n"use strict";\n{code}\n}})'


def locate(outcome: Outcome | None, code: str, names: Sequence[str], compile: Compiler) -> Any:
    """The glue's outcome with V8's position when V8 places the same error in ``code``."""
    if outcome is None or outcome[1] is None:
        return outcome
    message, line, column = outcome
    lines = js_lines(code)
    try:
        precise = compile(function_source(code, names))
    except Exception:  # no second opinion: the glue's position stands
        precise = None
    if precise is not None and precise[0] == message:
        at_line = precise[1] - WRAPPER_LINES
        if 1 <= at_line <= len(lines) and 1 <= precise[2] <= _utf16_len(lines[at_line - 1]) + 1:
            line, column = at_line, precise[2]
    if 1 <= line <= len(lines):
        column = _code_point_column(lines[line - 1], column)
    return [message, line, column]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _code_point_column(text: str, column: int) -> int:
    """A 1-based UTF-16 column of ``text`` as a 1-based column in characters."""
    before = text.encode("utf-16-le")[: 2 * (column - 1)]
    return len(before.decode("utf-16-le", errors="ignore")) + 1
