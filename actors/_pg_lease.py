"""Leases and fencing tokens: many engines on one PostgreSQL database share the runs.

Each open :class:`~actors.PostgresStore` is an engine row in ``actors_engines`` with
a lease it renews every third of the lease time (times are the database's clock). A
run belongs to one engine (``actors_runs.owner``) and carries a fencing token
(``fence``) that every takeover increments. Every write for a run checks, in the
same statement, that this engine still owns the run with the token it took it
with, so an engine that stalled past its lease and wakes up records nothing for
the runs taken from it: the write raises :class:`~actors.errors.RunLost`.

Before each step attempt the engine also makes sure it still holds the run: at no
cost while its last renewal is recent (by its own monotonic clock), else by
renewing its lease and checking the run's token in one statement. So an engine
that wakes from a stall past its lease starts no step of a run it lost.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

import anyio

from actors._log import get_logger
from actors.errors import RunLost

__all__ = ("MIGRATION", "Lease")

logger = get_logger(__name__)

NOW = "extract(epoch from clock_timestamp())"

MIGRATION = f"""
CREATE TABLE actors_engines (
    id TEXT PRIMARY KEY, hostname TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL DEFAULT {NOW},
    lease_until DOUBLE PRECISION NOT NULL);
ALTER TABLE actors_runs ADD COLUMN owner TEXT, ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
"""

# Running runs whose owner's lease lapsed (or who have none): this engine takes
# them, each with a new fencing token. SKIP LOCKED: engines claiming at the same
# time take different runs.
_CLAIM = f"""
WITH orphan AS (
    SELECT r.id FROM actors_runs r
    WHERE r.status = 'running' AND (r.owner IS NULL OR (r.owner <> $1 AND NOT EXISTS (
        SELECT 1 FROM actors_engines e WHERE e.id = r.owner AND e.lease_until > {NOW})))
    ORDER BY r.created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE actors_runs r SET owner = $1, fence = r.fence + 1 FROM orphan
WHERE r.id = orphan.id RETURNING r.id, r.fence
"""

# Prefix of a fenced write: ``ok`` has a row only while this engine ($1) owns the
# run ($2) with its token ($3); FOR SHARE holds off a takeover until the commit.
FENCED = (
    "WITH ok AS (SELECT 1 FROM actors_runs WHERE id = $2 AND owner = $1 AND fence = $3 FOR SHARE) "
)


_RENEW = f"UPDATE actors_engines SET lease_until = {NOW} + $2 WHERE id = $1 RETURNING 1"
_CONFIRM = (
    f"WITH renew AS (UPDATE actors_engines SET lease_until = {NOW} + $4 WHERE id = $1"
    " RETURNING 1) SELECT 1 FROM actors_runs WHERE id = $2 AND owner = $1 AND fence = $3"
    " AND EXISTS (SELECT 1 FROM renew)"
)


class Lease:
    """This engine's lease on the database and its fencing tokens, one per run held."""

    def __init__(self, location: str, seconds: float) -> None:
        self.location = location
        self.seconds = seconds
        self.engine_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._fences: dict[str, int] = {}
        self._valid_until = 0.0  # time.monotonic() before which the lease surely holds

    async def register(self, conn: Any) -> None:
        sent = time.monotonic()
        await conn.execute(
            f"INSERT INTO actors_engines (id, hostname, pid, lease_until)"
            f" VALUES ($1, $2, $3, {NOW} + $4)",
            self.engine_id, socket.gethostname(), os.getpid(), self.seconds,
        )  # fmt: skip
        self._valid_until = sent + self.seconds

    async def release(self, conn: Any) -> None:
        """Give the lease up: the runs left here may be taken over at once."""
        await conn.execute("DELETE FROM actors_engines WHERE id = $1", self.engine_id)

    async def keep(self, pool: Any) -> None:
        """Renew the lease every third of its time, until cancelled."""
        while True:
            await anyio.sleep(self.seconds / 3)
            try:
                sent = time.monotonic()
                async with pool.acquire() as conn:
                    renewed = await conn.fetchval(_RENEW, self.engine_id, self.seconds)
                if renewed is not None:
                    self._valid_until = sent + self.seconds
            except Exception as exc:  # the next round tries again
                logger.warning("store_lease_not_renewed", store=self.location, error=str(exc))

    async def claim(self, conn: Any, limit: int) -> list[str]:
        """Take over up to ``limit`` runs nobody holds; return their ids."""
        rows = await conn.fetch(_CLAIM, self.engine_id, limit)
        for row in rows:
            self._fences[row["id"]] = row["fence"]
        return [row["id"] for row in rows]

    def fresh(self) -> bool:
        """Whether the lease surely holds for a while yet (no stall since it was renewed)."""
        return time.monotonic() < self._valid_until - self.seconds / 3

    async def confirm(self, conn: Any, run_id: str) -> None:
        """Renew the lease and check this engine still holds ``run_id``; RunLost if not."""
        sent = time.monotonic()
        held = await conn.fetchval(_CONFIRM, *self.args(run_id), self.seconds)
        if held is None:
            raise self.lost(run_id)
        self._valid_until = sent + self.seconds

    def hold(self, run_id: str, fence: int) -> None:
        self._fences[run_id] = fence

    def drop(self, run_id: str) -> None:
        self._fences.pop(run_id, None)

    def args(self, run_id: str) -> tuple[str, str, int]:
        """``($1, $2, $3)`` of a fenced write for ``run_id``; RunLost if not held."""
        fence = self._fences.get(run_id)
        if fence is None:
            raise RunLost(self.location, run_id)
        return (self.engine_id, run_id, fence)

    def lost(self, run_id: str) -> RunLost:
        """The fenced write found the run taken: forget it and say so."""
        self._fences.pop(run_id, None)
        logger.warning(
            "run_lost", run_id=run_id, store=self.location, engine=self.engine_id,
            reason="another engine took the run over; nothing more is recorded for it here",
        )  # fmt: skip
        return RunLost(self.location, run_id)
