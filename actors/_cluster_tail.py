"""Reading a table that many engines append to, missing nothing and nothing twice.

Rows are ordered by their *position*: the id of the transaction that wrote them
(PostgreSQL ``xid8``), then their id. Ids are given out before commit, so a row
may become visible after rows with larger ids; but no row can appear with a
transaction id below the oldest transaction still running (the snapshot's
``xmin``), so rows below it are *settled*. A :class:`Tail` keeps the position up
to which every row was seen (the settled prefix) and the rows seen past it, so
every row is taken once, as soon as it is visible. Pure logic, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ("Position", "Tail", "TailRow")


class Position(NamedTuple):
    xid: int
    id: int


class TailRow(NamedTuple):
    position: Position
    settled: bool
    data: tuple[object, ...]


class Tail:
    """Where a reader of an appended table is: ``cursor`` and the rows ``seen`` past it."""

    def __init__(self, cursor: Position | None = None, seen: Iterable[Position] = ()) -> None:
        self.cursor = Position(0, 0) if cursor is None else cursor
        self.seen: set[Position] = {p for p in seen if p > self.cursor}

    def seen_ids(self) -> list[int]:
        """Ids of the rows taken past the cursor (a read may leave them out)."""
        return [position.id for position in self.seen]

    def take(self, rows: Sequence[TailRow]) -> list[TailRow]:
        """The rows of ``rows`` (read past the cursor, in position order) not taken
        before; moves the cursor over the settled prefix."""
        new, prefix = [], True
        for row in rows:
            prefix = prefix and row.settled
            if prefix:
                self.cursor = row.position
            if row.position in self.seen:
                continue
            self.seen.add(row.position)
            new.append(row)
        self.seen = {p for p in self.seen if p > self.cursor}
        return new
