"""Shared test set-up: the anyio backend, a per-test time limit, a PostgreSQL server."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests import pg_server

DEFAULT_TIMEOUT = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestTimedOut(Exception):
    """Raised in the test's thread when it runs past its time limit."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TestTimedOut("test ran past its time limit")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    marker = item.get_closest_marker("timeout")
    seconds = float(marker.args[0]) if marker else DEFAULT_TIMEOUT
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def worker_children() -> list[int]:
    """Return the pids of sandbox worker processes whose parent is this process."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        if fields[1].decode() == me and b"runtime_pool._sandbox" in command:
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_worker_left_behind() -> Iterator[None]:
    """Every test must end with no sandbox worker process left running."""
    yield
    assert worker_children() == [], "a test left sandbox worker processes running"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg_server.PgServer]:
    """One real PostgreSQL server for the session (see ``tests/pg_server.py``). Skipped
    when this machine has no server binaries; with ``CI=true`` that is a failure."""
    binaries = pg_server.find_binaries()
    if binaries is None:
        reason = "no PostgreSQL server in /usr/lib/postgresql/*/bin (apt install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = pg_server.start(binaries)
    try:
        yield server
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture
def postgres_dsn(postgres_server: pg_server.PgServer) -> str:
    """The address of a new, empty database on the session's server."""
    import asyncpg

    name = f"test_{os.getpid()}_{next(_databases)}"

    async def create() -> None:
        conn = await asyncpg.connect(postgres_server.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return postgres_server.dsn(name)


@pytest.fixture(params=["sqlite", "postgres"])
def store_address(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A run store on each backend: a SQLite file path, a new PostgreSQL database."""
    if request.param == "sqlite":
        return os.path.join(str(tmp_path), "runs.db")
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn
