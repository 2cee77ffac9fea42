"""Threads for sync host functions: a bounded number alive at once, abandoned ones included.

A run's host call is cancelled when the run ends, but a thread cannot be
stopped: it is abandoned and runs on. anyio's own limiter frees the slot of an
abandoned thread at once, so a script that calls a slow sync function many
times without awaiting it could make the host start any number of threads
(issue 14: 42 -> 402 threads in 10 runs). Here a slot stays taken until the
function has returned, whoever is still waiting for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Generic, TypeVar

import anyio

__all__ = ("DEFAULT_HOST_THREADS", "HostThreads")

DEFAULT_HOST_THREADS = 40  # as many as anyio's default thread limiter
T = TypeVar("T")


class HostThreads:
    """Runs sync callables in worker threads, at most ``limit`` of them alive at once."""

    def __init__(self, limit: int = DEFAULT_HOST_THREADS) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._slots: anyio.CapacityLimiter | None = None
        self._threads: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[[], T]) -> T:
        """Return ``fn()`` run in a thread; waits (cancellably) while all slots are taken."""
        if self._slots is None or self._threads is None:
            self._slots = anyio.CapacityLimiter(self.limit)
            self._threads = anyio.CapacityLimiter(self.limit)  # never the binding one
        call = _Call(fn, self._slots, _soon_from_thread())
        await self._slots.acquire_on_behalf_of(call)
        try:
            return await anyio.to_thread.run_sync(
                call.run, abandon_on_cancel=True, limiter=self._threads
            )
        finally:
            if call.leave():
                self._slots.release_on_behalf_of(call)


class _Call(Generic[T]):
    """One call's slot, released exactly once: by the caller, or by an abandoned thread."""

    def __init__(
        self,
        fn: Callable[[], T],
        slots: anyio.CapacityLimiter,
        soon: Callable[[Callable[[], object]], object],
    ) -> None:
        self._fn = fn
        self._slots = slots
        self._soon = soon
        self._lock = threading.Lock()
        self._state = "pending"  # -> "running" -> "done"; "left" once the caller gave up

    def run(self) -> T:
        with self._lock:
            if self._state == "left":  # the caller gave up before this thread began
                raise RuntimeError("abandoned before it started")  # nobody is waiting
            self._state = "running"
        try:
            return self._fn()
        finally:
            with self._lock:
                abandoned = self._state == "left"
                self._state = "done"
            if abandoned:  # hand the release to the loop without waiting for it: a loop
                # that has stopped (a closing host) would never answer, and this thread
                # would then hang the process at exit
                with suppress(RuntimeError):  # the event loop is gone: so is the limiter
                    self._soon(self._release)

    def _release(self) -> None:
        self._slots.release_on_behalf_of(self)

    def leave(self) -> bool:
        """The caller stops waiting; True when releasing the slot is up to the caller."""
        with self._lock:
            if self._state == "running":
                self._state = "left"
                return False
            self._state = "left" if self._state == "pending" else self._state
            return True


def _soon_from_thread() -> Callable[[Callable[[], object]], object]:
    """The running event loop's "call this soon" that a thread may use without waiting."""
    try:
        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio  # type: ignore[import-not-found]

        soon: Callable[[Callable[[], object]], object] = (
            trio.lowlevel.current_trio_token().run_sync_soon
        )
        return soon
