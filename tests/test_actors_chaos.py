"""Chaos suite (``pytest -m chaos``): the engine on the real pool under faults and load.

Scaled-down sizes of ``python -m benchmarks.chaos --full``; every case asserts exact
outcomes (which runs end how, which attempts fail why, what is counted), never timings.
"""

from __future__ import annotations

import gc

import pytest

from benchmarks.chaos import bus_load, cancel_storm, census, fault_storm, kill_storm, soak

pytestmark = [pytest.mark.anyio, pytest.mark.chaos, pytest.mark.timeout(120)]

MiB = 2**20


async def test_fault_storm_ends_every_run_as_the_faults_dictate() -> None:
    # a 3 s step timeout (1 s at full size): a step's deadline includes its host call's
    # answer, which a loaded host can delay past 1 s
    report = await fault_storm(runs=120, fault_rate=0.05, hang_rate=0.01, attempts=2, timeout=3.0)
    assert report.problems() == []
    # every attempt failed for the reason its host call was told to fail, no other
    assert set(report.fates) <= {"ok", "fault", "hang"}
    assert report.fates["hang"] == report.hangs_started == report.hangs_cancelled > 0
    assert report.statuses == report.expected_statuses
    assert report.engine.finished == 120


async def test_worker_kill_storm_retries_affected_steps_and_the_pool_recovers() -> None:
    # Host calls of 0.1 s: a run takes at least 0.2 s (two levels of calls), so the first
    # kill (0.1 s) lands while steps run, however fast the machine (parked workers made
    # the 5 ms version finish before its first kill).
    report = await kill_storm(runs=30, every=0.1, attempts=2, io_delay=0.1)
    assert report.problems() == []
    assert report.kills > 0 and report.fates["crash"] > 0
    assert report.live_after == report.size
    assert sum(report.statuses.values()) == 30


async def test_cancelling_at_random_points_stops_host_calls_and_steps() -> None:
    report = await cancel_storm(runs=100, within=1.0)
    gc.collect()  # a leaked stream would warn now (filterwarnings = error), inside this test
    assert report.problems() == []
    assert report.late_calls == []
    assert report.statuses["cancelled"] > 0
    assert set(report.step_statuses) <= {"completed", "cancelled", "skipped"}


@pytest.mark.parametrize("sync_host", [False, True], ids=["async-host", "threaded-host"])
async def test_soak_leaves_nothing_behind_and_memory_flat(sync_host: bool) -> None:
    report = await soak(runs=600, concurrency=50, worker_budget=512 * MiB, sync_host=sync_host)
    assert report.problems() == []
    assert report.completed == 600
    assert report.after == report.before == census()
    assert report.host_growth < 10 * MiB


async def test_bus_under_load_keeps_order_and_counts_every_drop() -> None:
    report = await bus_load(runs=100, block_timeout=1.0)
    assert report.problems() == []
    assert report.order == []
    assert report.full_received == report.published  # the block subscriber kept up
    assert report.slow_dropped > 0
    assert report.slow_received + report.slow_dropped == report.published
