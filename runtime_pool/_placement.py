"""Where a run goes: light scripts packed onto the first worker, heavy or new ones spread.

jsrun's thread spins while its JS waits, so every worker with runs in flight takes
a core whether its JS computes or not. Runs of a script known to hold the thread
only briefly share the first worker with room (the others fall idle and are
parked); runs of a script never seen, or seen to compute, go to the least-loaded
worker, so CPU-bound scripts still spread over the cores.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._slot import Slot

__all__ = ("HEAVY_MS", "Costs", "pick")

# A run whose measured JS time (Date.now() ms, summed over the stretches the glue
# times) reaches this makes its script heavy.
HEAVY_MS = 3
_DECAY = 0.8  # a heavy run's mark fades by this factor per later run of the script
_KEPT = 1024  # scripts remembered (the least recently run is forgotten first)


class Costs:
    """How long each script's recent runs held the JS thread, by the hash of its text.

    Only hashes are kept, so many large one-off scripts hold no memory here; two
    scripts whose hashes collide share a score, which can only misplace a run.
    """

    def __init__(self) -> None:
        self._scores: dict[int, float] = {}

    def heavy(self, code: str) -> bool:
        """True for a script never seen, or one of whose recent runs computed."""
        score = self._scores.get(hash(code))
        return score is None or score >= HEAVY_MS

    def observe(self, code: str, busy_ms: float) -> None:
        """A run of ``code`` ended having held the JS thread ``busy_ms`` in all."""
        scores, key = self._scores, hash(code)
        previous = scores.pop(key, None)
        if previous is None and len(scores) >= _KEPT:
            del scores[next(iter(scores))]
        scores[key] = busy_ms if previous is None else max(busy_ms, previous * _DECAY)


def pick(slots: Sequence[Slot], concurrency: int, solo: bool, heavy: bool) -> Slot | None:
    """The worker a new run goes to, or None if none has room.

    Light: the first with room and no heavy run in flight. Otherwise the one with
    the fewest heavy runs, then the fewest runs; a heavy run breaks ties towards
    the last worker, away from where light runs gather.
    """
    best: Slot | None = None
    best_key = (0, 0)
    for slot in slots:
        if not slot.fits(concurrency, solo):
            continue
        if not heavy and slot.heavy == 0:
            return slot
        key = (slot.heavy, slot.load)
        if best is None or key < best_key or (heavy and key == best_key):
            best, best_key = slot, key
    return best
