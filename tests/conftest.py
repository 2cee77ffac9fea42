"""Shared test set-up: the anyio backend and a per-test time limit."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

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
