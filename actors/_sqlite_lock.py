"""One owner per SQLite store file: an OS lock on a sidecar file naming its holder.

``runs.db`` is owned through ``runs.db-lock``: ``flock`` (released by the OS when
the holder dies, even by ``SIGKILL``) plus the holder's pid and hostname written in
it, so a second opener is refused at once with the holder's name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time

from actors.errors import StoreError, StoreLocked, StoreReadOnly

__all__ = ("FileLock",)


class FileLock:
    """An exclusive, non-blocking lock on ``path + "-lock"``."""

    def __init__(self, path: str) -> None:
        self.path = path + "-lock"
        self._location = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLocked` naming the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error(self._location, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, hostname = _read_holder(fd)
            os.close(fd)
            raise StoreLocked(self._location, pid=pid, hostname=hostname) from None
        self._fd = fd
        me = {"pid": os.getpid(), "hostname": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    pid, host = data.get("pid"), data.get("hostname")
    return (pid if isinstance(pid, int) else None), (host if isinstance(host, str) else None)


def _os_error(location: str, exc: OSError) -> StoreError:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(location, f"read-only: cannot open its lock file: {exc.strerror}")
    return StoreError(location, f"cannot open the lock file: {exc.strerror}")
