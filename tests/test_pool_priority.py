"""The JS threads of a worker run at a lower CPU priority than the host (``js_nice``,
``js_idle``).

jsrun's runtime thread spins while its JS only waits; niced, it yields the CPU to
the host process, whose event loop serves the very host calls the JS waits for. As
SCHED_IDLE it also yields at once to a thread woken on its core, and goes back to
its nice value while it starves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from runtime_pool import RuntimePool
from runtime_pool._pool import DEFAULT_JS_NICE
from runtime_pool._priority import JsPriority, _can_leave_idle

pytestmark = pytest.mark.anyio


def thread_fields(pid: int, index: int) -> dict[str, list[int]]:
    """Thread name ("main" for the main one) -> field ``index`` (after the name) of the
    /proc stat of each thread of ``pid`` with that name."""
    found: dict[str, list[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as stat:
            text = stat.read()
        name = text[text.index(b"(") + 1 : text.rindex(b")")].decode()
        value = int(text.rsplit(b")", 1)[1].split()[index])
        found.setdefault("main" if int(tid) == pid else name, []).append(value)
    return found


def niceness(pid: int) -> dict[str, list[int]]:
    return thread_fields(pid, 16)  # field 19 of proc(5)


async def test_by_default_the_js_threads_are_niced_and_the_main_thread_is_not() -> None:
    host = os.getpriority(os.PRIO_PROCESS, 0)
    async with RuntimePool(size=1) as pool:
        assert await pool.run("return 1 + 1") == 2
        (pid,) = pool.worker_pids()
        found = niceness(pid)
    niced = max(DEFAULT_JS_NICE, host)
    assert niced > 0
    assert found["main"] == [host]
    assert found["jsrun-deno-runt"] and set(found["jsrun-deno-runt"]) == {niced}
    assert set(found["V8 DefaultWorke"]) == {niced}


async def test_a_new_runtime_thread_is_niced_too() -> None:
    host = os.getpriority(os.PRIO_PROCESS, 0)
    async with RuntimePool(size=1, isolation="fresh", js_nice=7) as pool:
        for i in range(3):  # a fresh runtime (and thread) for every run
            assert await pool.run("return n", globals={"n": i}) == i
        (pid,) = pool.worker_pids()
        assert pool.statistics().recycles >= 2
        # The worker makes the next runtime after answering a run: until it is ready,
        # the new thread can still have the host's priority.
        for _ in range(1000):  # no event tells the caller: look in /proc
            if set(niceness(pid).get("jsrun-deno-runt", [])) == {max(7, host)}:
                return
            await anyio.sleep(0.01)
        raise AssertionError(f"worker threads not niced within 10 s: {niceness(pid)}")


async def test_js_nice_zero_leaves_every_thread_as_the_host_started_it() -> None:
    host = os.getpriority(os.PRIO_PROCESS, 0)
    async with RuntimePool(size=1, js_nice=0) as pool:
        assert await pool.run("return 'x'") == "x"
        (pid,) = pool.worker_pids()
        found = niceness(pid)
    assert {nice for values in found.values() for nice in values} == {host}


@pytest.mark.parametrize("bad", [-1, 20])
def test_js_nice_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="js_nice"):
        RuntimePool(js_nice=bad)


# ---- SCHED_IDLE for the runtime thread (js_idle) -------------------------------------------

IDLE_ALLOWED = _can_leave_idle(DEFAULT_JS_NICE)
needs_idle = pytest.mark.skipif(
    not IDLE_ALLOWED, reason="this user may not leave SCHED_IDLE (no CAP_SYS_NICE, RLIMIT_NICE)"
)


def policies(pid: int) -> dict[str, set[int]]:
    return {name: set(values) for name, values in thread_fields(pid, 38).items()}  # field 41


@needs_idle
async def test_the_runtime_thread_is_sched_idle_and_the_other_threads_are_not() -> None:
    async with RuntimePool(size=1) as pool:
        assert await pool.run("return 1") == 1
        (pid,) = pool.worker_pids()
        found = policies(pid)
    assert found["jsrun-deno-runt"] == {os.SCHED_IDLE}
    assert found["main"] == {os.SCHED_OTHER}
    assert found["V8 DefaultWorke"] == {os.SCHED_OTHER}


async def test_js_idle_false_keeps_every_thread_sched_other() -> None:
    async with RuntimePool(size=1, js_idle=False) as pool:
        assert await pool.run("return 1") == 1
        (pid,) = pool.worker_pids()
        found = policies(pid)
    assert {policy for values in found.values() for policy in values} == {os.SCHED_OTHER}


@contextmanager
def stand_in() -> Iterator[tuple[int, JsPriority]]:
    """A thread of this process at nice DEFAULT_JS_NICE, followed as the runtime thread."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="jsrun-stand-in")
    thread.start()
    try:
        tid = thread.native_id
        assert tid is not None
        os.setpriority(os.PRIO_PROCESS, tid, DEFAULT_JS_NICE)
        priority = JsPriority(DEFAULT_JS_NICE, idle=True)
        priority._follow(tid)
        yield tid, priority
    finally:
        stop.set()
        thread.join()


@needs_idle
def test_a_starved_runtime_thread_goes_back_to_its_nice_value_for_a_while(
    tmp_path: Path,
) -> None:
    # Its schedstat is a file written here: (ns run, ns waited for a core, slices).
    stat = tmp_path / "schedstat"
    stat.write_text("0 0 0\n")
    with stand_in() as (tid, priority):

        def look(now: float, ran_ms: int, waited_ms: int) -> int:
            stat.write_text(f"{ran_ms * 10**6} {waited_ms * 10**6} 1\n")
            priority.check(now)
            return os.sched_getscheduler(tid)

        os.close(priority._stat or os.open(os.devnull, os.O_RDONLY))
        priority._stat = os.open(stat, os.O_RDONLY)
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE
        assert look(10.000, 0, 0) == os.SCHED_IDLE  # the first look sets the baseline
        # 5 ms later: ran 3 ms, waited 2 ms (lost its core to the worker's own threads)
        assert look(10.005, 3, 2) == os.SCHED_IDLE
        # 5 ms later: ran 0.0 ms, waited 4 ms: starved
        assert look(10.010, 3, 6) == os.SCHED_OTHER
        assert priority.starved == 1
        assert os.getpriority(os.PRIO_PROCESS, tid) == DEFAULT_JS_NICE  # its nice value kept
        assert look(10.500, 3, 400) == os.SCHED_OTHER  # held at its nice value for 1 s
        assert look(11.020, 3, 900) == os.SCHED_IDLE  # then tried again


@needs_idle
def test_the_runtime_thread_is_at_its_nice_value_while_the_worker_waits_for_it() -> None:
    with stand_in() as (tid, priority):
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE
        with priority.awake():  # e.g. around get_stats() or close()
            assert os.sched_getscheduler(tid) == os.SCHED_OTHER
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE
