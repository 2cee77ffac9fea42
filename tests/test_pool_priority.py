"""The JS threads of a worker run at a lower CPU priority than the host (``js_nice``).

jsrun's runtime thread spins while its JS only waits; niced, it yields the CPU to
the host process, whose event loop serves the very host calls the JS waits for.
"""

from __future__ import annotations

import os

import anyio
import pytest

from runtime_pool import RuntimePool
from runtime_pool._pool import DEFAULT_JS_NICE

pytestmark = pytest.mark.anyio


def niceness(pid: int) -> dict[str, list[int]]:
    """Thread name -> the nice values of the threads of ``pid`` with that name."""
    found: dict[str, list[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as stat:
            text = stat.read()
        name = text[text.index(b"(") + 1 : text.rindex(b")")].decode()
        nice = int(text.rsplit(b")", 1)[1].split()[16])  # field 19 of proc(5)
        found.setdefault("main" if int(tid) == pid else name, []).append(nice)
    return found


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
