"""Run the chaos cases and print their figures: ``python -m benchmarks.chaos [--full]``.

Without ``--full`` the sizes are the test suite's (about a minute on 2 cores);
``--full`` runs the issue's sizes (1000 runs of fault storm, 500 under the kill
storm, 200 cancelled, 20,000 soak runs, 1000 on the bus, 300 runs on 3 engine
processes sharing a PostgreSQL database, one killed every second; this last case
needs PostgreSQL's server binaries). ``--only`` picks cases.
Exits 1 if any guarantee was broken (the report lists which).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog

from . import bus_load, cancel_storm, fault_storm, kill_storm, pg_cluster_case, soak

MiB = 2**20

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "small": {
        "fault_storm": {"runs": 120, "timeout": 3.0},
        "kill_storm": {"runs": 30},
        "cancel": {"runs": 100, "within": 1.0},
        "soak": {"runs": 600, "worker_budget": 512 * MiB},
        "bus": {"runs": 100},
        "pg_cluster": {"runs": 30, "kills": 8, "nap": 0.2, "pace": 0.5},
    },
    "full": {
        "fault_storm": {"runs": 1000},
        "kill_storm": {"runs": 500},
        "cancel": {"runs": 200, "within": 2.0},
        "soak": {"runs": 20_000, "worker_budget": 512 * MiB},
        "bus": {"runs": 1000},
        "pg_cluster": {"runs": 300, "kills": 1000, "nap": 0.05},
    },
}
CASES: dict[str, Callable[..., Awaitable[Any]]] = {
    "fault_storm": fault_storm,
    "kill_storm": kill_storm,
    "cancel": cancel_storm,
    "soak": soak,
    "bus": bus_load,
    "pg_cluster": pg_cluster_case,
}


def _figures(name: str, report: Any) -> str:
    r = report
    if name == "fault_storm":
        return (
            f"{r.runs} runs: {dict(r.statuses)} (expected {dict(r.expected_statuses)}); "
            f"completed {r.completed_share:.1%}, predicted {r.predicted_share:.1%}; "
            f"attempts {dict(r.fates)}; {r.hangs_started} hung host calls, all cancelled: "
            f"{r.hangs_started == r.hangs_cancelled}"
        )
    if name == "kill_storm":
        return (
            f"{r.runs} runs, {r.kills} kills: {dict(r.statuses)}; attempts {dict(r.fates)}; "
            f"{r.failed_steps} steps failed, each killed on every attempt; {r.reruns} runs "
            f"re-run by the pool (no host call yet); pool crashes {r.crashes}; workers after "
            f"{r.live_after}/{r.size}"
        )
    if name == "cancel":
        return (
            f"{r.runs} runs: {dict(r.statuses)}; steps {dict(r.step_statuses)}; "
            f"{r.host_calls} host calls, {len(r.late_calls)} after cancel() returned"
        )
    if name == "soak":
        return (
            f"{r.runs} runs, {r.concurrency} at a time, all completed: {r.completed == r.runs}; "
            f"host RSS {r.host_rss_warm / MiB:.1f} -> {r.host_rss_end / MiB:.1f} MiB after "
            f"warm-up; workers {r.worker_rss_warm / MiB:.1f} -> {r.worker_rss_end / MiB:.1f} "
            f"MiB; census before {r.before}, after {r.after}"
        )
    if name == "pg_cluster":
        return (
            f"{r.runs} runs on {r.engines} engine processes, {r.kills} SIGKILLs: "
            f"{dict(r.statuses)}; {r.step_executions} step executions ({r.reruns} again "
            f"after a kill or stop, none after its completion was recorded: "
            f"{not r.rerun_after_record}); joins completed {r.joins}; {r.stopped} stopped "
            f"{r.stopped_for:.1f} s holding {r.lost} runs, then logged run_lost "
            f"{r.runs_lost_logged} times, recorded for them {len(r.late_records)}, "
            f"{r.stale_attempts} attempts it had dispatched ran"
        )
    return (
        f"{r.runs} runs, {r.published} events: block subscriber got {r.full_received} "
        f"(dropped {r.full_dropped}); slow drop_oldest got {r.slow_received}, dropped "
        f"{r.slow_dropped}; longest publish wait {r.max_publish_wait * 1000:.1f} ms "
        f"(block_timeout {r.block_timeout:g} s); order problems {len(r.order)}"
    )


async def _main(size: str, only: list[str]) -> int:
    print(f"# chaos ({size}) on {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    broken = 0
    for name in only:
        report = await CASES[name](**SIZES[size][name])
        problems = report.problems()
        broken += bool(problems)
        print(f"- **{name}** ({report.seconds:.1f} s): {_figures(name, report)}")
        for problem in problems:
            print(f"  - BROKEN: {problem}")
    return 1 if broken else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos")
    parser.add_argument("--full", action="store_true", help="the issue's full sizes")
    parser.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # a killed worker's pipe, by design
    sys.exit(anyio.run(_main, "full" if args.full else "small", args.only))


if __name__ == "__main__":
    main()
