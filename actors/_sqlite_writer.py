"""The one thread that owns a SQLite connection: every operation runs there, many per
transaction (group commit), fed by a bounded queue; callers await without blocking.

Each operation is a function of the connection. The thread takes what is queued
(up to ``max_batch``), runs it in one transaction and commits (writes nobody awaits
linger up to ``linger`` seconds to share the next commit); if the transaction fails
it runs each operation alone, so one bad operation fails only its caller.
Completion goes back to the event loop with one ``call_soon_threadsafe`` per batch.
This needs the asyncio backend (the engine's pool needs it anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio

from actors._log import get_logger

__all__ = ("Operation", "Writer")

logger = get_logger(__name__)

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], T]


class _Pending(Generic[T]):
    __slots__ = ("done", "error", "fn", "result", "wait")

    def __init__(self, fn: Operation[T], wait: bool) -> None:
        self.fn = fn
        self.wait = wait
        self.done = anyio.Event() if wait else None
        self.result: Any = None
        self.error: BaseException | None = None


class Writer:
    """Runs operations on a connection made by ``connect`` in its own thread.

    ``translate`` turns a ``sqlite3`` error into the error the caller sees.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        translate: Callable[[sqlite3.Error], BaseException],
        queue_size: int = 1024,
        max_batch: int = 512,
        linger: float = 0.05,
    ) -> None:
        self._connect = connect
        self._translate = translate
        self._max_batch = max_batch
        self._linger = linger
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._room = anyio.Semaphore(queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = anyio.Event()
        self.batches = 0  # transactions committed (for tests and statistics)

    async def start(self) -> None:
        """Start the thread and connect; raise what connecting raised."""
        self._loop = asyncio.get_running_loop()
        ready = _Pending[None](lambda conn: None, True)
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        try:
            await _outcome(ready)
        except BaseException:
            self._queue.put(None)  # if it did connect, it closes and ends
            self._thread = None
            raise

    async def call(self, fn: Operation[T]) -> T:
        """Run ``fn(connection)`` in the thread; return once its transaction committed."""
        pending = _Pending(fn, True)
        await self._put(pending)
        result: T = await _outcome(pending)
        return result

    async def submit(self, fn: Operation[Any]) -> None:
        """Queue ``fn`` without waiting for it to commit (its errors are logged)."""
        await self._put(_Pending(fn, False))

    async def stop(self) -> None:
        """Run what is queued, close the connection and end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        with anyio.CancelScope(shield=True):
            await self._stopped.wait()
        self._thread = None

    async def _put(self, pending: _Pending[Any]) -> None:
        if self._thread is None:
            raise RuntimeError("the store is not open")
        await self._room.acquire()
        self._queue.put(pending)

    # -- the thread ---------------------------------------------------------------

    def _serve(self, ready: _Pending[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.error = self._translate(exc) if isinstance(exc, sqlite3.Error) else exc
            self._hand_back([ready], release=False, stopped=True)
            return
        self._hand_back([ready], release=False)
        try:
            while self._serve_batch(conn):
                pass
        finally:
            conn.close()
            self._hand_back([], release=False, stopped=True)

    def _serve_batch(self, conn: sqlite3.Connection) -> bool:
        batch: list[_Pending[Any]] = []
        more, waited = True, False
        item = self._queue.get()
        while item is not None:
            batch.append(item)
            waited = waited or item.wait
            if len(batch) >= self._max_batch:
                break
            try:  # nobody waits for this batch yet: linger, so it shares the next commit
                item = (
                    self._queue.get(timeout=self._linger)
                    if not waited
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        else:
            more = False
        if batch and not self._transaction(conn, batch):
            for pending in batch:  # one failed: run each alone, so only it fails
                self._transaction(conn, [pending])
        self._hand_back(batch)
        return more

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Pending[Any]]) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for pending in batch:
                pending.result = pending.fn(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:  # (SQLite may have rolled it back already)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if len(batch) == 1:
                batch[0].error = self._translate(exc) if isinstance(exc, sqlite3.Error) else exc
            return False
        self.batches += 1
        return True

    def _hand_back(
        self, batch: list[_Pending[Any]], *, release: bool = True, stopped: bool = False
    ) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(self._settle, batch, release, stopped)

    def _settle(self, batch: list[_Pending[Any]], release: bool, stopped: bool) -> None:
        for pending in batch:
            if release:
                self._room.release()
            if pending.done is not None:
                pending.done.set()
            elif pending.error is not None:
                logger.warning("store_write_failed", error=str(pending.error))
        if stopped:
            self._stopped.set()


async def _outcome(pending: _Pending[T]) -> T:
    assert pending.done is not None
    await pending.done.wait()
    if pending.error is not None:
        raise pending.error
    result: T = pending.result
    return result
