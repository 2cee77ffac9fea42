"""The CLI's inputs and its ``run`` command: load them, run, report progress and output.

Every problem with the user's input is a :class:`BadInput` with a one-line message;
the CLI prints it and exits with status 2. A run that fails is not bad input: it
is reported (progress on stderr, the failed step's error) and exits with status 1.
"""

from __future__ import annotations

import importlib
import json
import math
import operator
import os
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors._bus import EventBus
from actors._engine import DEFAULT_STEP_TIMEOUT, Engine
from actors._events import LifecycleEvent, StepLogged
from actors._log import get_logger
from actors._logging import event_fields
from actors._results import RunResult
from actors._run import wait_or_cancel
from actors._runner import LogEntry
from actors._subflow import DEFAULT_MAX_NESTING, Workflows
from actors._workflow import Workflow
from actors.errors import DefinitionError, StoreError, UnknownRun

__all__ = ("BadInput", "load_api", "load_event", "load_json_object", "load_workflow", "run")

logger = get_logger(__name__)

_FINAL_TOPICS = frozenset({"run.completed", "run.failed", "run.cancelled"})
# After the run ends, how long its last progress lines may take to be written.
_DRAIN_TIMEOUT = 2.0


class BadInput(Exception):
    """The user's input (a file, an option) is unusable; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# -- inputs ------------------------------------------------------------------------------


def load_workflow(path: str) -> Workflow:
    """Read and validate a JSON or TOML workflow file."""
    try:
        return Workflow.from_file(path, check=False)  # checked with the --api names
    except DefinitionError as exc:
        raise BadInput(str(exc)) from None


def load_json_object(text: str, *, option: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object (``--context``)."""
    value = _parse_json(text, option=option)
    if not isinstance(value, dict):
        raise BadInput(f"{option}: must be a JSON object, got {type(value).__name__}")
    return value


def load_event(*, text: str | None, file: str | None) -> Any:
    """The trigger event from ``--event JSON`` or ``--event-file F`` (``-``: stdin)."""
    if text is not None:
        return _parse_json(text, option="--event")
    if file is None:
        return None
    if file == "-":
        return _parse_json(sys.stdin.read(), option="--event-file -")
    try:
        raw = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(f"--event-file: cannot read {file}: {reason}") from None
    if file.lower().endswith(".toml"):
        try:
            return tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"--event-file: {file}: not valid TOML: {exc}") from None
    return _parse_json(raw, option=f"--event-file: {file}")


def _parse_json(text: str, *, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{option}: not valid JSON: {exc}") from None


def load_api(spec: str) -> Mapping[str, Callable[..., Any]]:
    """Import ``module:attribute`` (e.g. ``examples.hosts:API``): a dict of host functions.

    The current directory is importable, as with ``python -m``.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise BadInput(f"--api: expected module:attribute (e.g. examples.hosts:API), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = _import(module_name)
    try:
        value = operator.attrgetter(attribute)(module)
    except AttributeError:
        raise BadInput(f"--api: module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(value, Mapping):
        kind = type(value).__name__
        raise BadInput(f"--api: {spec} is a {kind}, expected a dict of host functions")
    return value


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise BadInput(f"--api: no module named {module_name!r}") from None
        raise BadInput(f"--api: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # the module's own code raised: report it in one line
        reason = f"{type(exc).__name__}: {exc}"
        raise BadInput(f"--api: importing {module_name!r} failed: {reason}") from None


# -- the run -----------------------------------------------------------------------------


async def run(
    workflow: Workflow,
    *,
    event: Any,
    api: Mapping[str, Callable[..., Any]],
    context: Mapping[str, Any],
    timeout: float | None,
    step_timeout: float | None = None,
    store: str | None = None,
    key: str | None = None,
    workflows: Sequence[Workflow] = (),
) -> RunResult:
    """Run ``workflow`` once, logging its progress; cancel it after ``timeout`` seconds.

    ``step_timeout`` is the default timeout of each step attempt. ``store``: record
    the run there (other unfinished runs in it are left alone); ``key``: run once.
    ``workflows``: the workflows its sub-workflow steps may run.
    """
    try:
        step_timeout = step_timeout or DEFAULT_STEP_TIMEOUT
        engine = Engine(
            api=api,
            context=context,
            timeout=step_timeout,
            store=store,
            resume=False,
            workflows=workflows,
        )
        Workflows(workflows, max_nesting=DEFAULT_MAX_NESTING).check(workflow)
    except DefinitionError as exc:  # e.g. a reserved --context key, a bad host name
        raise BadInput(str(exc)) from None
    async with engine, anyio.create_task_group() as tg:
        drained = anyio.Event()
        await tg.start(_report_progress, engine.bus, drained)
        try:
            handle = await engine.start(workflow, event=event, key=key)
        except (StoreError, UnknownRun) as exc:
            raise BadInput(str(exc)) from None
        if handle.done:  # the key named a run that had ended: nothing is published
            tg.cancel_scope.cancel()
            return await handle.wait()
        result = await wait_or_cancel(handle, timeout)  # steps say "run timed out after"
        with anyio.move_on_after(_DRAIN_TIMEOUT):
            await drained.wait()
        tg.cancel_scope.cancel()
    return result


async def _report_progress(
    bus: EventBus, drained: anyio.Event, *, task_status: TaskStatus[None]
) -> None:
    """Log every lifecycle event as it happens, until the run's final event."""
    streamed: set[tuple[str | None, int | None]] = set()
    async with bus.subscribe("*", policy="block", block_timeout=math.inf) as events:
        task_status.started()
        async for event in events:
            if isinstance(event, LifecycleEvent):
                _log_event(event, streamed)
                if event.topic in _FINAL_TOPICS and getattr(event, "parent_run_id", None) is None:
                    break  # the run's end (not a sub-workflow's)
    drained.set()


def _log_event(event: LifecycleEvent, streamed: set[tuple[str | None, int | None]]) -> None:
    """Log one event; each console line once, with its attempt (live when streamed)."""
    if isinstance(event, StepLogged):
        streamed.add((event.step, event.attempt))
        _log_console(event.step, event.attempt, [event])
        return
    level, name, fields = event_fields(event)
    fields.pop("console", None)
    for key in ("result", "output"):
        fields.pop(key, None)
    if event.topic.startswith("step."):
        del fields["run_id"], fields["workflow"]  # one run: its id is on run_started
    if fields.get("attempt") == 0:  # skipped before any attempt
        del fields["attempt"]
    if (event.step, event.attempt) not in streamed:
        _log_console(event.step, event.attempt, getattr(event, "logs", ()))
    getattr(logger, level)(name, **fields)


def _log_console(step: str | None, attempt: int | None, lines: Iterable[LogEntry]) -> None:
    for line in lines:
        logger.info("step_console", step=step, attempt=attempt, line=f"{line.level}: {line.text}")
