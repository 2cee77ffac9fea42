"""Shared test set-up: the anyio backend and a per-test time limit."""

from __future__ import annotations

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
