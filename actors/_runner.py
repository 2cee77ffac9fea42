"""What the engine needs from a JS runtime: the :class:`StepRunner` protocol.

:class:`runtime_pool.RuntimePool` satisfies it; tests and benchmarks may pass a
fake (see :mod:`actors.testing`). This is the only module that imports the pool
itself, lazily, to make the engine's default pool.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

__all__ = ("ExecutionLike", "LogEntry", "StepRunner", "default_runner")


class LogEntry(Protocol):
    """One console line of a script (``runtime_pool.LogLine``)."""

    @property
    def level(self) -> str: ...
    @property
    def text(self) -> str: ...


class ExecutionLike(Protocol):
    """The outcome of one script run (``runtime_pool.Execution``)."""

    @property
    def value(self) -> Any: ...
    @property
    def logs(self) -> Sequence[LogEntry]: ...
    @property
    def duration(self) -> float: ...


@runtime_checkable
class StepRunner(Protocol):
    """Runs the body of an async JS function with ``globals`` and host ``api`` functions.

    An async context manager (the engine opens it when it is not open yet).
    Cancelling :meth:`execute` stops the script. Failures are raised as
    :mod:`runtime_pool.errors` exceptions. ``on_start`` is called synchronously
    when the script starts running (after any wait for capacity); ``timeout``
    counts from that moment.
    """

    @property
    def is_open(self) -> bool: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    async def execute(
        self,
        code: str,
        *,
        globals: Mapping[str, Any] | None = None,
        api: Mapping[str, Callable[..., Any]] | None = None,
        timeout: float | None = None,
        on_start: Callable[[], object] | None = None,
    ) -> ExecutionLike: ...


def default_runner() -> StepRunner:
    """A :class:`runtime_pool.RuntimePool` with its default limits (imported lazily)."""
    # Imported by name so this package type-checks before and after runtime_pool lands.
    runtime_pool = importlib.import_module("runtime_pool")
    pool: StepRunner = runtime_pool.RuntimePool()
    return pool
