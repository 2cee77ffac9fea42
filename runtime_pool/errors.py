"""The errors raised by :mod:`runtime_pool`, under one root: :class:`RuntimePoolError`."""

from __future__ import annotations

from typing import Any

__all__ = (
    "WRAPPER_LINES",
    "HeapLimitExceeded",
    "InvalidValue",
    "MemoryLimitExceeded",
    "PoolClosed",
    "RuntimePoolError",
    "SandboxCrashed",
    "ScriptError",
    "ScriptSyntaxError",
    "ScriptTimeout",
    "ValueTooLarge",
)


# Lines before a script's first line in the function the sandbox compiles (V8's
# "async function anonymous(<params>" and ") {" header, then '"use strict";'): the
# ``<anonymous>:L:C`` frames of a :class:`ScriptError`'s ``stack`` are at script line
# ``L - WRAPPER_LINES``. Kept in step with compile() in _glue.js (tests check it).
# :class:`ScriptSyntaxError` positions are in the script's own lines already.
WRAPPER_LINES = 3


class RuntimePoolError(Exception):
    """Root of every error raised by the runtime pool.

    ``logs`` holds the console lines the script wrote before a run failed.
    """

    logs: tuple[Any, ...] = ()


class ScriptError(RuntimePoolError):
    """The script threw: ``name``, ``message`` and ``stack`` come from the JS error."""

    def __init__(self, name: str, message: str, stack: str | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.stack = stack


class ScriptSyntaxError(ScriptError):
    """The script does not compile; ``line`` and ``column`` (1-based) are in its own code.

    Either may be ``None`` when the position could not be found.
    """

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__("SyntaxError", message)
        self.line = line
        self.column = column
        where = f" (line {line}" + (f", column {column}" if column is not None else "") + ")"
        self.args = (f"SyntaxError: {message}" + (where if line is not None else ""),)


class ScriptTimeout(RuntimePoolError):
    """The script ran past its time limit and was stopped."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"script did not finish within {timeout:g} s")
        self.timeout = timeout


class HeapLimitExceeded(RuntimePoolError):
    """The script outgrew the V8 heap limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"script exceeded the JS heap limit of {limit} bytes")
        self.limit = limit


class MemoryLimitExceeded(RuntimePoolError):
    """The worker's memory (typed arrays, WebAssembly memory, ...) outgrew its limit."""

    def __init__(self, limit: int, used: int | None = None) -> None:
        detail = f" (reached {used} bytes)" if used is not None else ""
        super().__init__(f"script exceeded the worker memory limit of {limit} bytes{detail}")
        self.limit = limit
        self.used = used


class InvalidValue(RuntimePoolError):
    """A value crossing the sandbox boundary is not plain JSON-like data."""


class ValueTooLarge(InvalidValue):
    """A value crossing the sandbox boundary is over the size or depth cap, or cyclic."""

    def __init__(self, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class SandboxCrashed(RuntimePoolError):
    """The worker process serving the run died; the pool has replaced it."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class PoolClosed(RuntimePoolError):
    """The pool is not open (not entered yet, or already closed)."""
