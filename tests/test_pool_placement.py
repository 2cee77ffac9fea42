"""Where runs go: runs of light scripts share the first worker, new or heavy ones spread.

The real tests prove where runs are by the pool's busy workers at a moment when
every run of a batch is in flight (a barrier in a host function); ``pick`` and
``Costs`` are also tested alone, on stand-in slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from runtime_pool import RuntimePool
from runtime_pool._placement import HEAVY_MS, Costs, pick
from runtime_pool._slot import Slot
from tests.pool_helpers import Barrier, run_all

pytestmark = pytest.mark.anyio

WAIT = "await wait(); return 1"
# Computes 150 ms after its host call returns: only the glue's timing of what
# follows a host call's answer can tell that it is heavy.
SPIN_AFTER_CALL = "await wait(); const t = Date.now(); while (Date.now() - t < 150) {} return 1"


async def _busy_while_all_wait(pool: RuntimePool, code: str, runs: int) -> tuple[int, ...]:
    """Run ``code`` ``runs`` times at once; the pids of the busy workers once all are in."""
    seen: list[tuple[int, ...]] = []
    barrier = Barrier(runs)

    async def wait() -> None:
        await barrier()
        if not seen:
            seen.append(pool.worker_pids(state="busy"))

    assert await run_all(pool, *[(code, {"api": {"wait": wait}})] * runs) == [1] * runs
    return seen[0]


async def _noop() -> None:
    return None


async def _learn_light(pool: RuntimePool, code: str) -> None:
    # The glue times in wall-clock ms, so a run preempted on a loaded machine can read
    # as heavy; its mark fades with the light runs after it.
    for _ in range(50):
        await pool.run(code, api={"wait": _noop})
        if not pool._costs.heavy(code):
            return
    raise AssertionError("50 runs of a script that only awaits a host call never read light")


async def test_runs_of_a_light_script_share_one_worker() -> None:
    async with RuntimePool(size=2, concurrency=64) as pool:
        await _learn_light(pool, WAIT)
        assert len(await _busy_while_all_wait(pool, WAIT, 20)) == 1


async def test_spread_placement_sends_the_same_runs_to_both_workers() -> None:
    async with RuntimePool(size=2, concurrency=64, placement="spread") as pool:
        await _learn_light(pool, WAIT)
        assert len(await _busy_while_all_wait(pool, WAIT, 20)) == 2


async def test_a_script_never_seen_goes_to_the_least_loaded_worker() -> None:
    async with RuntimePool(size=2, concurrency=64) as pool:
        assert len(await _busy_while_all_wait(pool, WAIT, 2)) == 2


async def test_a_script_that_computes_after_a_host_call_is_learned_heavy_and_spread() -> None:
    async with RuntimePool(size=2, concurrency=64) as pool:
        await pool.run(SPIN_AFTER_CALL, api={"wait": _noop})  # seen once: heavy
        assert len(await _busy_while_all_wait(pool, SPIN_AFTER_CALL, 2)) == 2


async def test_placement_must_be_pack_or_spread() -> None:
    with pytest.raises(ValueError, match="placement"):
        RuntimePool(placement=cast(Any, "random"))


# ---- the rules alone -------------------------------------------------------------------------


@dataclass
class _Slot:
    name: str
    load: int = 0
    heavy: int = 0
    room: bool = True

    def fits(self, concurrency: int, solo: bool) -> bool:
        return self.room and self.load < concurrency


def _pick(slots: list[_Slot], heavy: bool, concurrency: int = 8) -> str | None:
    chosen = pick(cast(list[Slot], slots), concurrency, False, heavy)
    return None if chosen is None else cast(_Slot, chosen).name


def test_a_light_run_goes_to_the_first_worker_with_room_and_no_heavy_run() -> None:
    assert _pick([_Slot("a", load=5), _Slot("b")], heavy=False) == "a"
    assert _pick([_Slot("a", load=8), _Slot("b", load=3)], heavy=False) == "b"  # a is full
    assert _pick([_Slot("a", load=1, heavy=1), _Slot("b", load=4)], heavy=False) == "b"
    assert _pick([_Slot("a", room=False), _Slot("b", load=7)], heavy=False) == "b"


def test_a_light_run_with_heavy_runs_everywhere_goes_where_fewest_are() -> None:
    slots = [_Slot("a", load=2, heavy=2), _Slot("b", load=6, heavy=1)]
    assert _pick(slots, heavy=False) == "b"


def test_a_heavy_run_goes_where_fewest_heavy_then_fewest_runs_are_ties_to_the_last() -> None:
    assert _pick([_Slot("a", load=1, heavy=1), _Slot("b", load=5)], heavy=True) == "b"
    assert _pick([_Slot("a", load=1), _Slot("b", load=5)], heavy=True) == "a"
    assert _pick([_Slot("a"), _Slot("b")], heavy=True) == "b"


def test_no_worker_with_room_means_none() -> None:
    assert _pick([_Slot("a", load=8), _Slot("b", room=False)], heavy=False) is None
    assert _pick([_Slot("a", load=8), _Slot("b", room=False)], heavy=True) is None


def test_a_script_is_heavy_until_seen_light_and_a_heavy_run_fades() -> None:
    costs = Costs()
    assert costs.heavy("x")  # never seen
    costs.observe("x", 0)
    assert not costs.heavy("x")
    costs.observe("x", 200)
    assert costs.heavy("x")
    light_runs = 0
    while costs.heavy("x"):
        costs.observe("x", 0)
        light_runs += 1
    # 200 ms fades below HEAVY_MS by 0.8 per light run
    assert light_runs == next(n for n in range(1, 100) if 200 * 0.8**n < HEAVY_MS)


def test_costs_forget_the_least_recently_run_script_first() -> None:
    costs = Costs()
    for i in range(2000):
        costs.observe(f"script {i}", 0)
    assert costs.heavy("script 0")  # forgotten: never seen again
    assert not costs.heavy("script 1999")
