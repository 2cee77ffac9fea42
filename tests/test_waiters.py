"""The waiter registry and the one timer task, without an engine."""

from __future__ import annotations

import anyio
import pytest

from actors import StepWaiting
from actors._logging import event_fields
from actors._timers import Timers
from actors._waiters import Waiter, WaiterTable, Waits
from actors.errors import UnknownRun

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_timers_fire_in_deadline_order_and_a_cancelled_one_never() -> None:
    timers, fired = Timers(), []
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(timers.serve)
        now = anyio.current_time()
        timers.add(now + 0.3, lambda: (fired.append("late"), done.set()))
        gone = timers.add(now + 0.1, lambda: fired.append("cancelled"))
        timers.add(now + 0.2, lambda: fired.append("middle"))
        timers.add(now + 0.05, lambda: fired.append("early"))  # earlier than the rest: wakes it
        timers.cancel(gone)
        assert len(timers) == 3
        with anyio.fail_after(30):
            await done.wait()
        tg.cancel_scope.cancel()
    assert fired == ["early", "middle", "late"] and len(timers) == 0


def test_cancelled_timers_do_not_pile_up_in_the_heap() -> None:
    timers = Timers()
    for n in range(1000):
        timers.cancel(timers.add(1e9 + n, lambda: None))
    assert len(timers) == 0 and len(timers._heap) <= 64


async def test_a_publish_reaches_the_waiters_whose_value_matches() -> None:
    table = WaiterTable()
    one, two = Waiter("r1", "t", "id", 1), Waiter("r2", "t", "id", [1, 2])
    anyone, other = Waiter("r3", "t"), Waiter("r4", "u")
    for waiter in (one, two, anyone, other):
        table.add(waiter)
    assert table.publish("t", {"id": [1, 2]}) == 2  # two (by JSON) and anyone
    assert two.payload == {"id": [1, 2]} and anyone.done.is_set() and not one.done.is_set()
    assert table.publish("t", {"id": 1.0}) == 1 and one.payload == {"id": 1.0}
    assert table.publish("t", {"id": 1}) == 0 and len(table) == 1


async def test_send_goes_to_the_run_or_its_mailbox_and_needs_a_live_run() -> None:
    waits = Waits(WaiterTable())
    with pytest.raises(UnknownRun):
        waits.send("r1", "t", 1)
    waits.enter("r1")
    assert waits.send("r1", "t", "early") is False  # kept
    waiter = Waiter("r1", "t", "id", 5)
    waits.register(waiter, None)
    assert waiter.payload == "early" and len(waits.table) == 0
    later = Waiter("r1", "t", "id", 5)
    waits.register(later, None)
    assert waits.send("r1", "t", "now") is True and later.payload == "now"
    assert len(waits.table) == 0
    waits.leave("r1")
    with pytest.raises(UnknownRun):
        waits.send("r1", "t", 1)


def test_a_step_waiting_log_line_says_what_for_and_until_when() -> None:
    event = StepWaiting(run_id="r", workflow="w", step="s", attempt=1, waits_for="t", until=9.5)
    level, name, fields = event_fields(event)
    assert (level, name) == ("info", "step_waiting")
    assert (fields["waits_for"], fields["until"]) == ("t", 9.5) and "match" not in fields
