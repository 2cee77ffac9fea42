"""A fake step runner for tests and benchmarks: the step's "JS" is a Python stand-in.

:class:`FakeRunner` satisfies :class:`~actors.StepRunner`. It maps a step's code
string to an async Python function that receives a :class:`FakeScript` (the
step's ``deps``, ``ctx`` and ``api``) and returns the step's value. Code with no
mapping that reads ``return <JSON>;`` returns that JSON value; anything else
fails like an unknown JS name. Errors are raised as :mod:`runtime_pool.errors`,
as the real pool raises them; ``timeout`` is enforced as the pool would, counted
from the moment the script starts. ``capacity`` models a pool's size: at most that
many scripts run at once, the others wait (first come, first served) before they
start.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio

from runtime_pool.errors import PoolClosed, ScriptError, ScriptTimeout

__all__ = ("FakeExecution", "FakeLogLine", "FakeRunner", "FakeScript", "Script")

_LITERAL = re.compile(r"^\s*return\s+(?P<value>.*?);?\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class FakeLogLine:
    level: str
    text: str


@dataclass(frozen=True, slots=True)
class FakeExecution:
    value: Any
    logs: tuple[FakeLogLine, ...]
    duration: float


@dataclass(slots=True)
class FakeScript:
    """What a fake script sees: the step's globals and host functions."""

    code: str
    deps: dict[str, Any]
    ctx: dict[str, Any]
    api: Mapping[str, Callable[..., Any]]
    timeout: float | None
    logs: list[FakeLogLine] = field(default_factory=list)

    @property
    def step(self) -> str:
        return str(self.ctx.get("run", {}).get("step", ""))

    @property
    def attempt(self) -> int:
        return int(self.ctx.get("run", {}).get("attempt", 0))

    def log(self, text: str, *, level: str = "log") -> None:
        self.logs.append(FakeLogLine(level, text))

    async def call(self, name: str, *args: Any) -> Any:
        """Call host function ``name`` as ``await name(...args)`` would."""
        if name not in self.api:
            raise ScriptError("ReferenceError", f"{name} is not defined")
        result = self.api[name](*args)
        return await result if inspect.isawaitable(result) else result


Script = Callable[[FakeScript], Awaitable[Any]]


async def _literal(script: FakeScript) -> Any:
    match = _LITERAL.match(script.code)
    if match is None:
        raise ScriptError("ReferenceError", f"the fake runner has no script for {script.code!r}")
    try:
        return json.loads(match.group("value"))
    except json.JSONDecodeError:
        raise ScriptError("SyntaxError", f"not a JSON literal: {script.code!r}") from None


class FakeRunner:
    """A :class:`~actors.StepRunner` running Python stand-ins; records what ran.

    ``started`` and ``finished`` list ``(step, attempt)`` in order; ``max_active``
    is the highest number of scripts running at once; ``waiting`` counts the
    scripts waiting for capacity now.
    """

    def __init__(
        self,
        scripts: Mapping[str, Script] | None = None,
        *,
        copy_values: bool = True,
        capacity: int | None = None,
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.scripts = dict(scripts or {})
        self.copy_values = copy_values
        self.capacity = capacity
        self.started: list[tuple[str, int]] = []
        self.finished: list[tuple[str, int]] = []
        self.active = 0
        self.max_active = 0
        self.waiting = 0
        self._slots: anyio.Semaphore | None = None
        self._state = "new"

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def state(self) -> str:
        """``"new"``, ``"open"`` or ``"closed"``."""
        return self._state

    async def __aenter__(self) -> FakeRunner:
        if self._state != "new":
            raise PoolClosed("a FakeRunner can be opened only once")
        if self.capacity is not None:
            self._slots = anyio.Semaphore(self.capacity, fast_acquire=True)
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = "closed"

    async def execute(
        self,
        code: str,
        *,
        globals: Mapping[str, Any] | None = None,
        api: Mapping[str, Callable[..., Any]] | None = None,
        timeout: float | None = None,
        on_start: Callable[[], object] | None = None,
    ) -> FakeExecution:
        if self._state != "open":
            raise PoolClosed("the pool is not open")
        values = dict(globals or {})
        if self.copy_values:
            values = json.loads(json.dumps(values))
        script = FakeScript(code, values.get("deps", {}), values.get("ctx", {}), api or {}, timeout)
        async with self._capacity():
            return await self._run(script, on_start)

    @asynccontextmanager
    async def _capacity(self) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    async def _run(
        self, script: FakeScript, on_start: Callable[[], object] | None
    ) -> FakeExecution:
        run = self.scripts.get(script.code, _literal)
        began = time.perf_counter()
        self.started.append((script.step, script.attempt))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if on_start is not None:
            on_start()
        try:
            with anyio.fail_after(script.timeout):
                value = await run(script)
        except TimeoutError:
            raise ScriptTimeout(script.timeout or 0.0) from None
        except ScriptError as exc:
            setattr(exc, "logs", tuple(script.logs))  # noqa: B010 (as the real pool does)
            raise
        finally:
            self.active -= 1
        self.finished.append((script.step, script.attempt))
        if self.copy_values:
            value = json.loads(json.dumps(value))
        return FakeExecution(value, tuple(script.logs), time.perf_counter() - began)
