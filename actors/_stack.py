"""JS stack traces mapped back to the step's own source: user lines, no glue frames.

The sandbox compiles a step's JS as ``new AsyncFunction(...names, '"use strict";\\n'
+ code)`` (``compile()`` in ``runtime_pool/_glue.js``). V8 numbers that function's
lines from its synthetic header, so the step's line ``n`` is reported as line
``n + WRAPPER_LINES`` of ``<anonymous>``, in frames that read ``at f (eval at
compile (<eval>:421:12), <anonymous>:7:12)``. Frames of the glue itself read ``at run
(<eval>:444:27)``. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from actors.errors import ScriptFailed
from runtime_pool.errors import WRAPPER_LINES

__all__ = ("WRAPPER_LINES", "MappedStack", "map_stack", "script_failed", "source_line")


_USER_FRAME = re.compile(
    r"^\s*at (?P<async>async )?(?:(?P<fn>.*?) )?\(eval at [\w$]+ \(<eval>:\d+:\d+\), "
    r"<anonymous>:(?P<line>\d+):(?P<column>\d+)\)$"
)
_JS_LINE_BREAK = re.compile("\r\n|[\n\r\u2028\u2029]")
_GLUE_FRAME = re.compile(r"^\s*at (?P<async>async )?(?P<fn>\S+) \(<eval>:\d+:\d+\)$")
_COMPILER_FRAME = re.compile(r"^\s*at new AsyncFunction \(<anonymous>\)$")


@dataclass(frozen=True, slots=True)
class MappedStack:
    """A stack in the step's terms: ``line``/``column`` of the innermost user frame."""

    stack: str
    line: int | None
    column: int | None


def map_stack(stack: str, *, step: str, host_functions: Collection[str] = ()) -> MappedStack:
    """Rewrite ``stack`` with the step's own line numbers and without glue frames.

    A frame of a host-function stub stays, as ``at name (host function)``: it says
    the error came from the host.
    """
    kept: list[str] = []
    line = column = None
    for text in stack.splitlines():
        user = _USER_FRAME.match(text)
        if user is not None:
            at_line = int(user["line"]) - WRAPPER_LINES
            if line is None:
                line, column = at_line, int(user["column"])
            fn = user["fn"] if user["fn"] not in (None, "eval") else None
            where = f"{step}:{at_line}:{user['column']}"
            prefix = "async " if user["async"] else ""
            kept.append(f"    at {prefix}{fn} ({where})" if fn else f"    at {prefix}{where}")
            continue
        glue = _GLUE_FRAME.match(text)
        if glue is not None:
            if glue["fn"] in host_functions:
                kept.append(f"    at {glue['fn']} (host function)")
            continue
        if not _COMPILER_FRAME.match(text):
            kept.append(text)
    return MappedStack("\n".join(kept), line, column)


def source_line(js: str, line: int | None) -> str | None:
    """Line ``line`` (1-based, split where V8 counts lines) of the step's JS, or ``None``."""
    if line is None:
        return None
    lines = _JS_LINE_BREAK.split(js)
    return lines[line - 1] if 1 <= line <= len(lines) else None


def _characters(text: str | None, column: int | None) -> int | None:
    """V8's 1-based column (UTF-16 units) in ``text`` as a column in characters."""
    if text is None or column is None:
        return column
    before = text.encode("utf-16-le")[: 2 * (column - 1)]
    return len(before.decode("utf-16-le", errors="ignore")) + 1


def script_failed(
    exc: Any, *, step: str, attempt: int, js: str, host_functions: Collection[str]
) -> ScriptFailed:
    """The step error for a ``runtime_pool`` ``ScriptError``, in the step's own lines."""
    stack = exc.stack
    line = column = None
    if stack:
        mapped = map_stack(stack, step=step, host_functions=host_functions)
        stack, line, column = mapped.stack, mapped.line, mapped.column
    text = source_line(js, line)
    column = _characters(text, column)
    return ScriptFailed(
        step,
        exc.name,
        _explain(exc.name, exc.message, text, host_functions),
        attempt=attempt,
        stack=stack,
        cause=exc,
        line=line,
        column=column,
        source_line=text,
    )


_NOT_DEFINED = re.compile(r"^(?P<name>[\w$]+) is not defined$")


def _explain(name: str, message: str, line: str | None, host_functions: Collection[str]) -> str:
    """Say so when a ReferenceError is a call to a host function the engine lacks."""
    missing = _NOT_DEFINED.match(message) if name == "ReferenceError" else None
    if (
        missing is None
        or line is None
        or not re.search(rf"\b{re.escape(missing['name'])}\s*\(", line)
    ):
        return message
    known = ", ".join(sorted(host_functions)) or "none"
    return f"{message} (no host function {missing['name']!r} in the engine's api; it has: {known})"
