"""Many runs per worker: interleaving, routing, limits with co-resident runs, host-call caps.

Overlap is proved by barriers the scripts reach through host functions (every run
of a batch is in flight before any may finish), never by timing ratios.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime_pool import LogLine, RuntimePool, errors
from tests.pool_helpers import Barrier, assert_pool_works, run_all

pytestmark = pytest.mark.anyio


# ---- interleaving and routing --------------------------------------------------------------


async def test_one_worker_serves_many_runs_at_once_interleaving_at_await() -> None:
    barrier = Barrier(20)
    async with RuntimePool(size=1, concurrency=20) as pool:
        code = "return [n, await meet()]"
        runs = [(code, {"globals": {"n": i}, "api": {"meet": barrier}}) for i in range(20)]
        outcomes = await run_all(pool, *runs)
        assert [value[0] for value in outcomes] == list(range(20))
        assert barrier.peak == 20  # all twenty were waiting in the host at once
        stats = pool.statistics()
        assert (stats.spawns, stats.recycles, stats.concurrency) == (1, 0, 20)


async def test_concurrency_caps_the_runs_one_worker_serves_at_once() -> None:
    in_host = 0
    peak = 0

    async def hold() -> None:
        nonlocal in_host, peak
        in_host += 1
        peak = max(peak, in_host)
        await anyio.sleep(0.05)
        in_host -= 1

    async with RuntimePool(size=1, concurrency=3) as pool:
        outcomes = await run_all(pool, *[("await hold(); return 1", {"api": {"hold": hold}})] * 9)
        assert outcomes == [1] * 9
        assert peak == 3
        assert pool.statistics().waits >= 6


async def test_cpu_bound_runs_go_to_different_workers() -> None:
    barrier = Barrier(2)
    busy: list[tuple[int, ...]] = []

    async def both_running() -> None:
        await barrier()
        busy.append(pool.worker_pids(state="busy"))

    code = "await started(); const t = Date.now(); while (Date.now() - t < 200) {} return 1"
    async with RuntimePool(size=2, concurrency=8) as pool:
        options = {"api": {"started": both_running}}
        assert await run_all(pool, (code, options), (code, options)) == [1, 1]
    assert len(busy) == 2 and all(len(pids) == 2 for pids in busy)


async def test_the_timeout_counts_from_the_start_on_a_worker_not_from_queueing() -> None:
    release = anyio.Event()
    started = anyio.Event()

    async def hold() -> None:
        started.set()
        await release.wait()

    async with RuntimePool(size=1, concurrency=1) as pool, anyio.create_task_group() as tg:
        tg.start_soon(lambda: pool.run("await hold()", api={"hold": hold}))
        await started.wait()
        results: list[Any] = []

        async def late() -> None:
            results.append(await pool.run("return 'ran'", timeout=0.3))

        tg.start_soon(late)
        await anyio.sleep(0.6)  # twice its timeout, waiting for the only worker
        release.set()
    assert results == ["ran"]


# ---- limits with co-resident runs ---------------------------------------------------------


async def test_a_waiting_run_past_its_deadline_is_abandoned_without_stopping_the_runtime() -> None:
    async with RuntimePool(size=1, concurrency=4) as pool:
        outcomes = await run_all(
            pool,
            ("await new Promise(() => {})", {"timeout": 0.3}),
            ("await new Promise((r) => setTimeout(r, 600)); return 'survived'", {}),
        )
        assert isinstance(outcomes[0], errors.ScriptTimeout)
        assert outcomes[1] == "survived"
        stats = pool.statistics()
        assert (stats.recycles, stats.reruns, stats.evictions, stats.crashes) == (0, 0, 0, 0)


async def test_a_run_busy_for_a_moment_at_anothers_deadline_is_not_taken_for_a_loop() -> None:
    # The JS thread is busy for 0.35 s across the waiting run's deadline (a slow or
    # starved worker looks the same): the abandon is taken late, and nothing is stopped.
    async with RuntimePool(size=1, concurrency=4) as pool:
        outcomes = await run_all(
            pool,
            ("await new Promise(() => {})", {"timeout": 0.3}),
            (
                "await new Promise((r) => setTimeout(r, 200));"
                "const end = Date.now() + 350; while (Date.now() < end) {} return 'done'",
                {},
            ),
        )
        assert isinstance(outcomes[0], errors.ScriptTimeout)
        assert outcomes[1] == "done"
        stats = pool.statistics()
        assert (stats.recycles, stats.reruns, stats.evictions, stats.crashes) == (0, 0, 0, 0)


async def test_a_loop_stops_its_own_run_and_co_resident_runs_are_rerun_or_evicted() -> None:
    barrier = Barrier(2)
    async with RuntimePool(size=1, concurrency=4) as pool:
        outcomes = await run_all(
            pool,
            # Innocent, no host call yet when the loop broke its limit: run again.
            ("await new Promise((r) => setTimeout(r, 1500)); return 'rerun'", {}),
            # Innocent, but it had called a host function: it fails, retryably.
            ("await meet(); await new Promise(() => {})", {"api": {"meet": barrier}}),
            ("await meet(); for (;;) {}", {"api": {"meet": barrier}, "timeout": 1.0}),
        )
        assert outcomes[0] == "rerun"
        assert isinstance(outcomes[1], errors.SandboxCrashed)
        assert "another script" in str(outcomes[1])
        assert isinstance(outcomes[2], errors.ScriptTimeout)
        stats = pool.statistics()
        assert (stats.reruns, stats.evictions) == (1, 1)
        await assert_pool_works(pool)


async def test_a_heap_breach_among_co_resident_runs_is_pinned_on_its_own_run() -> None:
    growth = "const a = []; for (;;) a.push({ i: a.length, s: 'x' + a.length });"
    async with RuntimePool(size=1, concurrency=4, heap_limit=32 * 2**20) as pool:
        outcomes = await run_all(
            pool,
            ("await new Promise((r) => setTimeout(r, 300)); return 'innocent'", {}),
            ("await new Promise((r) => setTimeout(r, 50)); " + growth, {}),
        )
        assert outcomes[0] == "innocent"
        assert isinstance(outcomes[1], errors.HeapLimitExceeded)
        assert pool.statistics().reruns == 2  # both ran again, alone: the breach found its run
        await assert_pool_works(pool)


async def test_a_run_that_breaks_no_limit_is_rerun_at_most_once() -> None:
    async with RuntimePool(size=1, concurrency=4, heap_limit=32 * 2**20) as pool:
        growth = "const a = []; for (;;) a.push({ i: a.length, s: 'x' + a.length });"
        outcome = await run_all(pool, ("await null; " + growth, {}))
        assert isinstance(outcome[0], errors.HeapLimitExceeded)
        assert pool.statistics().reruns == 0  # alone in its worker: its own error at once


# ---- host calls: caps, and no wedged worker ------------------------------------------------


async def test_host_calls_in_flight_per_run_are_capped_with_a_clear_error() -> None:
    in_host = 0
    peak = 0

    async def slow() -> None:
        nonlocal in_host, peak
        in_host += 1
        peak = max(peak, in_host)
        await anyio.sleep(0.05)
        in_host -= 1

    code = """
        const settled = await Promise.allSettled(Array.from({ length: 50 }, () => slow()));
        const refused = settled.filter((s) => s.status === 'rejected').map((s) => s.reason.message);
        return [settled.length - refused.length, refused.length, refused[0]];
    """
    async with RuntimePool(size=1, max_host_calls=8) as pool:
        served, refused, message = await pool.run(code, api={"slow": slow})
    assert (served, refused) == (8, 42)
    assert "refused" in message and "in flight" in message
    assert peak == 8


async def test_host_call_argument_bytes_in_flight_per_run_are_capped() -> None:
    async def slow(text: str) -> int:
        await anyio.sleep(0.05)
        return len(text)

    code = """
        const big = 'x'.repeat(300 * 1024);
        const settled = await Promise.allSettled([1, 2, 3, 4, 5, 6].map(() => slow(big)));
        return settled.map((s) => s.status);
    """
    async with RuntimePool(size=1, max_value_bytes=2**20) as pool:
        statuses = await pool.run(code, api={"slow": slow})
    assert statuses.count("fulfilled") == 3
    assert statuses.count("rejected") == 3


async def test_host_calls_left_pending_by_returning_runs_never_wedge_a_worker() -> None:
    async def lookup(n: int) -> int:
        await anyio.sleep(0.001)
        return n

    async with RuntimePool(size=1) as pool:
        for _ in range(150):
            code = "lookup(1); lookup(2); return 1"
            assert await pool.run(code, api={"lookup": lookup}, timeout=1) == 1
        for _ in range(50):
            code = "return await Promise.race([lookup(1), lookup(2)])"
            assert await pool.run(code, api={"lookup": lookup}, timeout=1) in (1, 2)
        stats = pool.statistics()
        assert (stats.crashes, stats.unresponsive, stats.live) == (0, 0, 1)


async def test_statistics_show_runs_in_flight() -> None:
    barrier = Barrier(4)
    seen: list[int] = []

    async def meet() -> None:
        await barrier()
        seen.append(pool.statistics().in_flight)

    async with RuntimePool(size=2, concurrency=4) as pool:
        await run_all(pool, *[("await meet()", {"api": {"meet": meet}})] * 4)
        assert seen == [4, 4, 4, 4]
        assert pool.statistics().in_flight == 0


async def test_a_run_abandoned_at_its_deadline_keeps_its_console_lines() -> None:
    async with RuntimePool(size=1) as pool:
        with pytest.raises(errors.ScriptTimeout) as caught:
            await pool.run(
                "console.log('before the hang'); await new Promise(() => {})", timeout=0.3
            )
        assert [line.text for line in caught.value.logs] == ["before the hang"]


async def test_on_log_receives_each_console_line_while_the_script_runs() -> None:
    streamed: list[tuple[str, str]] = []
    seen_by_host: list[list[tuple[str, str]]] = []
    two_lines = anyio.Event()

    def on_log(line: LogLine) -> None:
        streamed.append((line.level, line.text))
        if len(streamed) == 2:
            two_lines.set()

    async def checkpoint() -> None:
        with anyio.fail_after(5):
            await two_lines.wait()  # the lines arrive while the script waits here
        seen_by_host.append(list(streamed))

    code = """
        console.log('first', 1);
        console.warn('second');
        await checkpoint();
        console.error('third');
        return 'done';
    """
    async with RuntimePool(size=1) as pool:
        execution = await pool.execute(
            code,
            api={"checkpoint": checkpoint},
            on_log=on_log,
        )
    assert seen_by_host == [[("log", "first 1"), ("warn", "second")]]
    assert streamed == [("log", "first 1"), ("warn", "second"), ("error", "third")]
    assert [(line.level, line.text) for line in execution.logs] == streamed


async def test_on_log_lines_of_a_timed_out_run_are_streamed_and_kept() -> None:
    streamed: list[str] = []
    async with RuntimePool(size=1) as pool:
        with pytest.raises(errors.ScriptTimeout) as caught:
            await pool.execute(
                "console.log('still here'); for (;;) {}",
                timeout=0.3,
                on_log=lambda line: streamed.append(line.text),
            )
    assert streamed == ["still here"]
    # the loop's runtime was terminated with its lines: the streamed copy fills the error's
    assert [line.text for line in caught.value.logs] == ["still here"]
