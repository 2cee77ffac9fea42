"""Every step's JS compiled in the sandbox before a run starts: syntax errors up front.

The compile happens in a worker of the runner (``runtime_pool.RuntimePool.check``),
never in the host process. A runner without ``check`` (a test fake) is not asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio

from actors._rules import condition_js
from actors._stack import source_line
from actors._workflow import Workflow
from actors.errors import StepSyntaxError

__all__ = ("STEP_GLOBALS", "CheckedScripts", "check_now", "check_workflow")

# The globals every step runs with (see StepActor._globals); with the api names they
# are the parameters of the compiled script, so a step may not redeclare them.
STEP_GLOBALS = ("deps", "ctx")
# Step options that hold a JS expression (compiled as ``return !!(expression)``).
EXPRESSIONS = ("when", "for_each", "sleep_until")
# What a for_each step's JS sees besides the step globals.
ELEMENT_GLOBALS = ("item", "index")


async def check_workflow(runner: Any, workflow: Workflow, api: Iterable[str] = ()) -> None:
    """Compile each step's JS in ``runner``'s sandbox; raise :class:`StepSyntaxError`."""
    await CheckedScripts().check(runner, workflow, api)


def check_now(workflow: Workflow) -> None:
    """``await workflow.check()`` from synchronous code: on a thread with its own event
    loop, so it also works where an event loop is running already."""

    async def check() -> None:
        await workflow.check()

    with ThreadPoolExecutor(1, thread_name_prefix="actors-check") as executor:
        executor.submit(anyio.run, check).result()


class CheckedScripts:
    """The scripts an engine has compiled already, so each is checked once.

    Runs started at once share the check of a script in flight (1000 concurrent
    starts of a new workflow compile each script once, not 1000 times).
    """

    def __init__(self) -> None:
        self._good: set[tuple[str, tuple[str, ...]]] = set()
        self._checking: dict[tuple[str, tuple[str, ...]], anyio.Event] = {}

    async def check(self, runner: Any, workflow: Workflow, api: Iterable[str] = ()) -> None:
        """Raise :class:`StepSyntaxError` for the first script (in order) that does not
        compile: the workflow's ``lib``, then each step's JS and JS expressions."""
        check = getattr(runner, "check", None)
        if check is None:
            return
        from runtime_pool.errors import ScriptSyntaxError

        for script in scripts_of(workflow, api):
            try:
                await self._check_once(check, script.code, script.names)
            except ScriptSyntaxError as exc:
                raise script.syntax_error(exc, workflow.name) from None

    async def _check_once(self, check: Any, js: str, names: tuple[str, ...]) -> None:
        key = (js, names)
        while key not in self._good and key in self._checking:
            await self._checking[key].wait()  # if that check failed, check again here
        if key in self._good:
            return
        self._checking[key] = done = anyio.Event()
        try:
            await check(js, names=names)
            if len(self._good) >= 4096:
                self._good.clear()
            self._good.add(key)
        finally:
            del self._checking[key]
            done.set()


@dataclass(frozen=True, slots=True)
class Script:
    """One piece of a workflow's JS as the sandbox compiles it.

    ``label`` names it in errors (a step, ``step.when``, ``lib``); ``source`` is the
    user's text, found at line ``offset + 1`` of ``code``.
    """

    label: str
    source: str
    code: str
    names: tuple[str, ...]
    offset: int = 0

    def syntax_error(self, exc: Any, workflow: str) -> StepSyntaxError:
        line = None if exc.line is None else max(1, exc.line - self.offset)
        message, column = exc.message, exc.column
        lines = self.source.split("\n")
        if line is not None and line > len(lines):  # V8 blamed the wrapper's own end
            line, column = len(lines), len(lines[-1]) + 1
            if re.fullmatch(r"Unexpected token '[)}]'", message):
                message = "Unexpected end of input"
        return StepSyntaxError(
            self.label,
            message,
            line=line,
            column=column,
            source_line=source_line(self.source, line),
            workflow=workflow,
        )


def scripts_of(workflow: Workflow, api: Iterable[str] = ()) -> list[Script]:
    """Every script of ``workflow`` the sandbox will compile, with the names it gets."""
    found: list[Script] = []
    shared = () if workflow.lib is None else ("lib",)
    every = tuple(api)
    if workflow.lib is not None and workflow.lib_script is not None:
        found.append(Script("lib", workflow.lib, workflow.lib_script, ()))
    for step in workflow.steps.values():
        for option in EXPRESSIONS:
            expression = getattr(step, option)
            if expression is not None:
                code = condition_js(expression)
                where = f"{step.name}.{option}"
                found.append(Script(where, expression, code, (*STEP_GLOBALS, *shared), 1))
        element = ELEMENT_GLOBALS if step.for_each is not None else ()
        host = every if step.api is None else step.api
        names = (*STEP_GLOBALS, *element, *shared, *host)
        if step.js:  # a waiting step has none, a sub-workflow step may have none
            found.append(Script(step.name, step.js, step.js, names))
    return found
