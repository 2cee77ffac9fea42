"""The console lines one ``execute(..., on_log=)`` has streamed: each passed on once.

Lines the run reported but did not stream (the truncation marker, whose count is
final only then) are passed on when it ends. A run whose runtime was stopped (heap
or memory breach, a loop past its deadline)
or that was evicted reports no lines of its own; the streamed copy then fills the
error's ``logs``. A run evicted before any host call is run again elsewhere: the
lines it writes again are not passed on a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import errors
from ._results import LogLine

__all__ = ("StreamedLines",)


class StreamedLines:
    """Wraps ``on_log``: keeps every line passed on, skips lines a rerun repeats."""

    def __init__(self, on_log: Callable[[LogLine], object]) -> None:
        self._on_log = on_log
        self.lines: list[LogLine] = []
        self._replayed: int | None = None  # during a rerun: lines it has repeated so far
        self._seen = 0  # lines the current go at the run has streamed

    def __call__(self, line: LogLine) -> None:
        self._seen += 1
        replayed = self._replayed
        if replayed is not None and replayed < len(self.lines) and self.lines[replayed] == line:
            self._replayed = replayed + 1  # written again by the rerun: already passed on
            return
        self._replayed = None  # the rerun wrote something new: pass on from here
        self.lines.append(line)
        self._on_log(line)

    def rerun(self) -> None:
        """The run starts again: the lines it repeats from the start are not new."""
        self._replayed = 0
        self._seen = 0

    def finish(self, logs: Sequence[LogLine]) -> None:
        """The run reported ``logs``: pass on those it did not stream (the truncation
        marker with its final count, a line whose frame lost the race with the end)."""
        for line in logs[self._seen :]:
            self(line)

    def fill(self, error: errors.RuntimePoolError) -> None:
        """Give ``error`` the streamed lines when its run reported none."""
        if not error.logs and self.lines:
            error.logs = tuple(self.lines)
