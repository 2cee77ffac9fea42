"""Parking: a worker whose runs all wait is stopped, and woken for everything it must do.

A jsrun runtime spins a core while its JS only waits. The worker reports when it
is idle; the pool stops it (state ``T`` in /proc) and wakes it before every frame
it writes, at the next JS timer and before the next run deadline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from runtime_pool import RuntimePool, errors
from runtime_pool._slot import Slot

pytestmark = pytest.mark.anyio


def state(pid: int) -> str:
    """The process state letter from /proc (R running, S sleeping, T stopped, ...)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()[0].decode()


async def stopped(pid: int) -> None:
    """Return once ``pid`` is stopped; no event tells the pool's caller, so look in /proc."""
    for _ in range(2000):
        if state(pid) == "T":
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"worker {pid} was not stopped within 10 s")


class Gate:
    """An async host function that blocks until opened, counting the calls that arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.all_arrived = anyio.Event()
        self.opened = anyio.Event()

    async def __call__(self, value: Any) -> Any:
        self.arrived += 1
        if self.arrived == self.expected:
            self.all_arrived.set()
        await self.opened.wait()
        return value


async def waiting_and_parked(pool: RuntimePool, tg: TaskGroup, gate: Gate) -> int:
    """Start a run that waits for ``gate``; return the worker's pid once it is stopped."""
    (pid,) = pool.worker_pids()
    tg.start_soon(lambda: pool.run("return await gate(1);", api={"gate": gate}))
    with anyio.fail_after(10):
        await gate.all_arrived.wait()
    await stopped(pid)
    return pid


async def test_a_worker_whose_runs_all_await_host_calls_is_stopped_and_they_all_complete() -> None:
    gate = Gate(20)
    results: list[int] = []

    async def one(pool: RuntimePool, i: int) -> None:
        code = "return (await gate(n)) * 2;"
        results.append(await pool.run(code, globals={"n": i}, api={"gate": gate}))

    async with RuntimePool(size=1) as pool:
        (pid,) = pool.worker_pids()
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, pool, i)
            with anyio.fail_after(10):
                await gate.all_arrived.wait()
            await stopped(pid)
            assert pool.statistics().parked == 1
            assert pool.statistics().in_flight == 20
            gate.opened.set()
        assert sorted(results) == [2 * i for i in range(20)]
        stats = pool.statistics()
        assert (stats.crashes, stats.unresponsive, stats.evictions) == (0, 0, 0)


async def test_a_timer_fires_in_a_parked_worker_while_another_run_awaits_a_host_call() -> None:
    gate = Gate(1)
    timer_done = anyio.Event()
    seen: list[Any] = []

    async with RuntimePool(size=1) as pool:
        (pid,) = pool.worker_pids()

        async def waiting() -> None:
            seen.append(await pool.run("return await gate('host');", api={"gate": gate}))

        async def timer() -> None:
            code = "await new Promise((r) => setTimeout(r, 1500)); return 'timer';"
            seen.append(await pool.run(code))
            timer_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            with anyio.fail_after(10):
                await gate.all_arrived.wait()
            tg.start_soon(timer)
            await stopped(pid)  # both runs wait: one for its reply, one for its timer
            with anyio.fail_after(10):
                await timer_done.wait()  # the pool woke the worker for the timer
            assert seen == ["timer"]  # while the other run still waits for its reply
            gate.opened.set()
        assert seen == ["timer", "host"]


async def test_a_parked_run_past_its_timeout_gets_script_timeout() -> None:
    gate = Gate(1)
    async with RuntimePool(size=1) as pool:
        (pid,) = pool.worker_pids()
        async with anyio.create_task_group() as tg:

            async def late() -> None:
                with pytest.raises(errors.ScriptTimeout):
                    await pool.run("return await gate(1);", api={"gate": gate}, timeout=1.5)

            tg.start_soon(late)
            with anyio.fail_after(10):
                await gate.all_arrived.wait()
            await stopped(pid)
        assert pool.statistics().unresponsive == 0
        assert await pool.run("return 'still here'") == "still here"
        assert pool.statistics().crashes == 0


async def test_a_parked_run_is_cancelled_by_its_caller_and_the_worker_serves_on() -> None:
    gate = Gate(2)
    kept: list[Any] = []
    doomed, gone = anyio.CancelScope(), anyio.Event()

    async def cancelled(pool: RuntimePool) -> None:
        with doomed:
            await pool.run("return await gate('cancelled');", api={"gate": gate})
        gone.set()

    async def survivor(pool: RuntimePool) -> None:
        kept.append(await pool.run("return await gate('kept');", api={"gate": gate}))

    async with RuntimePool(size=1) as pool:
        (pid,) = pool.worker_pids()
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancelled, pool)
            tg.start_soon(survivor, pool)
            with anyio.fail_after(10):
                await gate.all_arrived.wait()
            await stopped(pid)
            doomed.cancel()  # the cancel frame wakes the worker
            with anyio.fail_after(10):
                await gone.wait()
            assert pool.statistics().in_flight == 1
            await stopped(pid)  # the survivor still waits: parked again
            gate.opened.set()
        assert kept == ["kept"]
        stats = pool.statistics()
        assert (stats.unresponsive, stats.crashes) == (0, 0)


async def test_an_unhandled_rejection_fails_its_run_beside_a_run_that_waits() -> None:
    first, second = Gate(1), Gate(1)
    async with RuntimePool(size=1) as pool, anyio.create_task_group() as tg:
        await waiting_and_parked(pool, tg, first)
        # The rejection is dispatched an event-loop turn later: the worker must not
        # report itself idle (and be stopped) before that.
        code = "Promise.reject(new TypeError('nobody listens')); return await second(2);"
        with pytest.raises(errors.ScriptError) as caught:
            await pool.run(code, api={"second": second}, timeout=20)
        assert caught.value.message == "nobody listens"
        first.opened.set()


SAMPLE_WHILE_BUSY = """
started();
const began = Date.now();
let x = 0;
while (Date.now() - began < 600) {
  for (let i = 0; i < 2e4; i++) x += i % 7;
  await null;  // a microtask turn
  if (x % 3 === 0) await new Promise((r) => setTimeout(r, 0));  // a macrotask turn
}
return [began, Date.now()];
"""


async def test_a_worker_is_never_stopped_while_a_run_computes_beside_a_waiting_one() -> None:
    gate = Gate(1)
    busy = anyio.Event()
    samples: list[tuple[float, str]] = []

    async def started() -> None:
        busy.set()

    async with RuntimePool(size=1) as pool, anyio.create_task_group() as tg:
        pid = await waiting_and_parked(pool, tg, gate)
        span: list[Any] = []

        async def compute() -> None:
            span.append(await pool.run(SAMPLE_WHILE_BUSY, api={"started": started}))

        tg.start_soon(compute)
        with anyio.fail_after(10):
            await busy.wait()
            while not span:
                samples.append((time.time(), state(pid)))
                await anyio.sleep(0.002)
        gate.opened.set()
    began, ended = span[0][0] / 1000, span[0][1] / 1000
    during = [s for t, s in samples if began + 0.05 < t < ended - 0.05]
    assert len(during) > 20  # the sampling really ran while the script computed
    assert "T" not in during


async def test_a_worker_parks_after_a_syntax_check() -> None:
    async with RuntimePool(size=1) as pool:
        (pid,) = pool.worker_pids()
        await pool.check("return 1;")
        await stopped(pid)
        assert pool.statistics().parked == 1
        assert await pool.run("return 2") == 2


# ---- the pool's side: park only on a fresh report, wake for every write and in time -------


class FakeProcess:
    """What the slot needs of a worker process, recording parks and wakes."""

    def __init__(self) -> None:
        self.parked = False
        self.written = 0
        self.pid = os.getpid()

    def park(self) -> None:
        self.parked = True

    def unpark(self) -> None:
        self.parked = False

    def kill(self) -> None:
        raise AssertionError("a reporting worker is never killed")


@contextmanager
def ready_slot_with_runs(runs: int) -> Iterator[tuple[Slot, FakeProcess]]:
    process = FakeProcess()
    slot = Slot(process)  # type: ignore[arg-type]
    slot.set_accepting(True)
    inboxes = [slot.begin_run(token, solo=False)[1] for token in range(runs)]
    try:
        yield slot, process
    finally:
        for token, inbox in enumerate(inboxes):
            slot.end_run(token)
            inbox.close()
        slot.close()
        slot._changes.close()


def test_a_report_older_than_the_last_frame_written_does_not_park() -> None:
    with ready_slot_with_runs(2) as (slot, process):
        process.written = 5
        slot.on_idle(4, time.monotonic() + 10)  # the worker had not read frame 5 yet
        assert slot._supervise(0.02, 30.0) == float("inf")
        assert not process.parked
        slot.on_idle(5, time.monotonic() + 10)
        slot._supervise(0.02, 30.0)
        assert process.parked


def test_a_worker_parked_with_runs_is_woken_just_before_its_wake_up_time() -> None:
    with ready_slot_with_runs(1) as (slot, process):
        now = time.monotonic()
        slot.on_idle(0, now + 0.05)
        left = slot._supervise(0.02, 30.0, now)
        assert process.parked
        assert 0.04 < left < 0.05  # a little early
        slot._supervise(0.02, 30.0, now + left / 2)
        assert process.parked
        slot._supervise(0.02, 30.0, now + left)
        assert not process.parked
        assert slot._supervise(0.02, 30.0, now + 0.06) == float("inf")  # its old report is spent
        assert not process.parked


def test_a_worker_with_runs_due_now_or_a_frame_after_its_report_is_not_parked() -> None:
    with ready_slot_with_runs(1) as (slot, process):
        slot.on_idle(0, time.monotonic())  # its timer is due: no park
        slot._supervise(0.02, 30.0)
        assert not process.parked
        slot.on_idle(0, time.monotonic() + 10)
        slot.heard()  # it wrote a frame after the report: it was not idle after all
        slot._supervise(0.02, 30.0)
        assert not process.parked


def test_a_worker_with_no_run_parks_only_after_its_report_and_the_idle_delay() -> None:
    with ready_slot_with_runs(0) as (slot, process):
        assert slot._supervise(0.0, 30.0) == float("inf")  # no report yet: it may be recycling
        assert not process.parked
        slot.on_idle(0, None)
        now = time.monotonic()
        left = slot._supervise(10.0, 30.0, now)
        assert 9 < left <= 10 and not process.parked
        slot._supervise(10.0, 30.0, now + 10.0)
        assert process.parked
