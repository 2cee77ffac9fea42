"""Every step's JS compiled in the sandbox before a run starts: syntax errors up front.

The compile happens in a worker of the runner (``runtime_pool.RuntimePool.check``),
never in the host process. A runner without ``check`` (a test fake) is not asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from actors._stack import source_line
from actors._workflow import Workflow
from actors.errors import StepSyntaxError

__all__ = ("STEP_GLOBALS", "CheckedScripts", "check_now", "check_workflow")

# The globals every step runs with (see StepActor._globals); with the api names they
# are the parameters of the compiled script, so a step may not redeclare them.
STEP_GLOBALS = ("deps", "ctx")


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
        """Raise :class:`StepSyntaxError` for the first step (in order) that does not compile."""
        check = getattr(runner, "check", None)
        if check is None:
            return
        from runtime_pool.errors import ScriptSyntaxError

        names = (*STEP_GLOBALS, *api)
        for step in workflow.steps.values():
            try:
                await self._check_once(check, step.js, names)
            except ScriptSyntaxError as exc:
                raise StepSyntaxError(
                    step.name,
                    exc.message,
                    line=exc.line,
                    column=exc.column,
                    source_line=source_line(step.js, exc.line),
                    workflow=workflow.name,
                ) from None

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
