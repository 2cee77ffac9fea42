"""The SQL of the tables engines append to: published events and shared bus events.

Each row carries the id of the transaction that wrote it (``xid8``), so readers
can tell which rows are settled (see :mod:`actors._cluster_tail`). Bus events
(``actors_bus``) are written in batches, one notification per batch on
``actors_bus``: the notification carries no data, so no payload meets
``NOTIFY``'s 8000-byte limit; readers fetch the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors._cluster_tail import Position, Tail, TailRow
from actors._pg_lease import NOW

__all__ = ("BUS_CHANNEL", "MIGRATION", "head", "insert_bus", "prune_bus", "rows_after")

BUS_CHANNEL = "actors_bus"

MIGRATION = f"""
ALTER TABLE actors_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX actors_events_by_position ON actors_events (xid, id);
CREATE TABLE actors_bus (
    id BIGSERIAL PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    engine TEXT NOT NULL, topic TEXT NOT NULL, data TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL DEFAULT {NOW});
CREATE INDEX actors_bus_by_position ON actors_bus (xid, id);
CREATE INDEX actors_bus_by_creation ON actors_bus (created_at);
"""

_XMIN = "pg_snapshot_xmin(pg_current_snapshot())"
_TABLES = {"events": "actors_events", "bus": "actors_bus"}
_COLUMNS = {"events": "topic, payload", "bus": "data"}

_INSERT_BUS = f"""
WITH e AS (
    INSERT INTO actors_bus (engine, topic, data)
    SELECT $1, u.topic, u.data FROM unnest($2::text[], $3::text[]) WITH ORDINALITY
        AS u (topic, data, n) ORDER BY u.n
    RETURNING id)
SELECT pg_notify('{BUS_CHANNEL}', max(id)::text) FROM e
"""


async def insert_bus(conn: Any, engine: str, events: Sequence[tuple[str, str]]) -> None:
    """Append ``(topic, data)`` events in order, in one transaction, and notify."""
    topics, data = [topic for topic, _ in events], [text for _, text in events]
    await conn.execute(_INSERT_BUS, engine, topics, data)


async def prune_bus(conn: Any, keep: float) -> None:
    """Forget bus events older than ``keep`` seconds."""
    await conn.execute(f"DELETE FROM actors_bus WHERE created_at < {NOW} - $1::float8", keep)


async def head(conn: Any, table: str) -> Tail:
    """A tail of ``table`` ("events" or "bus") that takes only rows written from now on."""
    name = _TABLES[table]
    rows = await conn.fetch(
        f"WITH s AS (SELECT {_XMIN} AS x)"
        f" SELECT s.x::text, t.id, t.xid::text FROM s LEFT JOIN {name} t ON t.xid >= s.x"
    )
    seen = [Position(int(r[2]), r[1]) for r in rows if r[1] is not None]
    return Tail(Position(int(rows[0][0]), 0), seen)


async def rows_after(
    conn: Any, table: str, tail: Tail, limit: int, *, not_engine: str | None = None
) -> list[TailRow]:
    """Rows of ``table`` past ``tail``'s cursor but those it saw, in position order
    (for "bus": those not written by ``not_engine``)."""
    other = "" if not_engine is None else " AND engine <> $5"
    query = (
        f"SELECT id, xid::text, xid < {_XMIN}, {_COLUMNS[table]} FROM {_TABLES[table]}"
        f" WHERE (xid, id) > ($1::text::xid8, $2::bigint) AND NOT (id = ANY($3::bigint[])){other}"
        " ORDER BY xid, id LIMIT $4"
    )
    cursor = tail.cursor
    args: list[Any] = [str(cursor.xid), cursor.id, tail.seen_ids(), limit]
    if not_engine is not None:
        args.append(not_engine)
    rows = await conn.fetch(query, *args)
    return [TailRow(Position(int(r[1]), r[0]), r[2], tuple(r)[3:]) for r in rows]
