"""The CLI's run-history commands on a store (``--db F``: a SQLite file or a
``postgresql://`` address).

::

    actors runs --db F [--status S] [--workflow W] [--limit N] [--json]
    actors show RUN_ID --db F [--json]
    actors resume --db F [--api module:attribute] [--context JSON]
    actors retry RUN_ID --db F [--api module:attribute] [--context JSON] [--from STEP]

``runs`` and ``show`` open the file read-only (an engine may own it meanwhile);
``resume`` and ``retry`` run steps, so they own the file while they work.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import anyio

from actors._cli_report import describe, say
from actors._cli_run import BadInput, load_api, load_json_object
from actors._durable import Durable
from actors._engine import Engine
from actors._results import RunResult, StepResult
from actors._store import RunRecord
from actors._store_postgres import PostgresStore, is_postgres_address
from actors._store_sqlite import SQLiteStore
from actors.errors import ActorsError, UnknownRun

__all__ = ("add_store_commands", "result_data")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_LOG_LINES = 2  # console lines shown per step by ``show``


def add_store_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``runs``, ``show``, ``resume`` and ``retry`` to the CLI's subparsers."""
    runs = commands.add_parser("runs", parents=[common], help="list the runs in a store")
    _db(runs)
    runs.add_argument("--status", help="only runs with this status (running, completed...)")
    runs.add_argument("--workflow", help="only runs of this workflow")
    runs.add_argument("--limit", type=int, default=50, help="at most N runs (default 50)")
    runs.set_defaults(handler=_runs)

    show = commands.add_parser("show", parents=[common], help="show one run's steps")
    show.add_argument("run_id", metavar="RUN_ID")
    _db(show)
    show.set_defaults(handler=_show)

    resume = commands.add_parser("resume", parents=[common], help="finish unfinished runs")
    _db(resume)
    _host(resume)
    resume.set_defaults(handler=_resume)

    retry = commands.add_parser("retry", parents=[common], help="run an ended run again")
    retry.add_argument("run_id", metavar="RUN_ID")
    _db(retry)
    _host(retry)
    retry.add_argument("--from", dest="from_step", metavar="STEP", help="re-run from STEP on")
    retry.set_defaults(handler=_retry)


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        required=True,
        metavar="F",
        help="the run store: a SQLite file or a postgresql:// address",
    )


def _host(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", metavar="MODULE:ATTR", help="host functions, as for 'run'")
    parser.add_argument("--context", metavar="JSON", help="extra ctx entries, as for 'run'")


# -- reading -----------------------------------------------------------------------------


def _read(args: argparse.Namespace, read: Callable[[Durable], Any]) -> Any:
    async def main() -> Any:
        reader = PostgresStore if is_postgres_address(args.db) else SQLiteStore
        async with reader(args.db, read_only=True) as store:
            return await read(Durable(store))

    try:
        return anyio.run(main)
    except ActorsError as exc:
        raise BadInput(str(exc)) from None


def _runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise BadInput(f"--limit: must be a positive number, got {args.limit}")
    options = {"workflow": args.workflow, "status": args.status, "limit": args.limit}
    records: list[RunRecord] = _read(args, lambda d: d.store.list_runs(**options))
    if args.json:
        data = [_record_data(r) for r in records]
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return EXIT_OK
    rows = [("RUN", "WORKFLOW", "STATUS", "KEY", "STARTED", "DURATION")]
    for r in records:
        when = datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        duration = (r.ended_at or time.time()) - r.created_at
        rows.append((r.id, r.workflow, r.status, r.key or "", when, f"{duration:.2f} s"))
    print(_table(rows))
    return EXIT_OK


def _record_data(record: RunRecord) -> dict[str, Any]:
    fields = ("id", "workflow", "status", "key", "created_at", "ended_at", "output")
    return {name: getattr(record, name) for name in fields}


def _show(args: argparse.Namespace) -> int:
    result: RunResult = _read(args, lambda d: d.get_run(args.run_id))
    if args.json:
        print(json.dumps(result_data(result, steps=True), indent=2, default=str))
        return EXIT_OK
    print(f"run {result.id}  workflow {result.workflow}  {result.status}  {result.duration:.2f} s")
    if result.parent_run_id is not None:
        print(f"sub-workflow of run {result.parent_run_id}")
    rows = [("STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR / LOGS")]
    for name, step in result.steps.items():
        rows.append((name, step.status, str(step.attempts), f"{step.duration:.3f} s", _note(step)))
    print(_table(rows))
    return EXIT_OK


def _note(step: StepResult) -> str:
    if step.error is not None:
        return describe(step.error).splitlines()[0]
    if step.reason:
        return step.reason
    lines = [f"{line.level}: {line.text}" for line in step.logs[:_LOG_LINES]]
    more = len(step.logs) - _LOG_LINES
    return " | ".join(lines + ([f"(+{more} lines)"] if more > 0 else []))


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


def result_data(result: RunResult, *, steps: bool) -> dict[str, Any]:
    """A run as JSON data (``--json``)."""
    data: dict[str, Any] = {
        "id": result.id,
        "workflow": result.workflow,
        "status": result.status,
        "duration": result.duration,
        "output": result.output,
    }
    if result.parent_run_id is not None:
        data["parent_run_id"] = result.parent_run_id
    if steps:
        data["steps"] = {name: _step_data(step) for name, step in result.steps.items()}
    return data


def _step_data(step: StepResult) -> dict[str, Any]:
    return {
        "status": step.status,
        "attempts": step.attempts,
        "duration": step.duration,
        "error": None if step.error is None else str(step.error),
        "reason": step.reason,
        "logs": [f"{line.level}: {line.text}" for line in step.logs],
    }


# -- running -----------------------------------------------------------------------------


def _engine(args: argparse.Namespace, *, resume: bool) -> Engine:
    api = load_api(args.api) if args.api else {}
    context = load_json_object(args.context, option="--context") if args.context else {}
    try:
        return Engine(api=api, context=context, store=args.db, resume=resume)
    except ActorsError as exc:
        raise BadInput(str(exc)) from None


def _resume(args: argparse.Namespace) -> int:
    engine = _engine(args, resume=True)

    async def main() -> tuple[list[RunResult], list[str]]:
        results, elsewhere = [], []
        async with engine:
            for run in await engine.runs(status="running", limit=1_000_000):
                try:
                    results.append(await engine.wait(run.id))
                except UnknownRun:  # a live engine of a shared store holds it
                    elsewhere.append(run.id)
        return results, elsewhere

    results, elsewhere = _run_engine(args, main)
    if elsewhere:
        text = (
            f"{len(elsewhere)} unfinished run(s) are held by other engines that are running"
            f" (their leases are current), so they finish there: {', '.join(elsewhere)}"
        )
        say("runs_held_elsewhere", text, json_logs=args.json)
    print(json.dumps([result_data(r, steps=False) for r in results], indent=2, default=str))
    return EXIT_OK if all(r.status == "completed" for r in results) else EXIT_FAILED


def _retry(args: argparse.Namespace) -> int:
    engine = _engine(args, resume=False)

    async def main() -> RunResult:
        async with engine:
            handle = await engine.retry(args.run_id, from_step=args.from_step)
            return await handle.wait()

    result: RunResult = _run_engine(args, main)
    if result.status == "completed":
        print(json.dumps(result.output, indent=2, default=str))
        return EXIT_OK
    for name in result.failed_steps:
        error = result.steps[name].error
        if error is not None:
            say("step_error", "run failed: " + describe(error), json_logs=args.json)
    return EXIT_FAILED


def _run_engine(args: argparse.Namespace, main: Callable[[], Any]) -> Any:
    try:
        return anyio.run(main)
    except ActorsError as exc:
        raise BadInput(str(exc)) from None
    except BaseExceptionGroup as group:  # raised inside the engine's task group
        match, _ = group.split(ActorsError)
        if match is None:
            raise
        raise BadInput(str(_first(match))) from None


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
