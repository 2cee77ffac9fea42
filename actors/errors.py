"""The errors raised or reported by :mod:`actors`, under one root: :class:`ActorsError`.

Two families:

* :class:`DefinitionError` and its leaves: a workflow definition (Python, dict or
  file) is wrong. Raised by :class:`~actors.Workflow` and by ``engine.run``.
* :class:`StepError` and its leaves: a step's script failed. These are *reported*
  (``RunResult.steps[name].error``, lifecycle events), not raised: a failing user
  script is a result, not a crash of the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = (
    "ActorsError",
    "ClusterUnavailable",
    "CycleDetected",
    "DefinitionError",
    "DuplicateStep",
    "DuplicateWorkflow",
    "ElementFailed",
    "EngineNotRunning",
    "InvalidOption",
    "NestingTooDeep",
    "RunLost",
    "SandboxFailed",
    "ScriptFailed",
    "StepError",
    "StepSyntaxError",
    "StepTimedOut",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreReadOnly",
    "StoreRequired",
    "StoreVersionError",
    "SubflowFailed",
    "UnknownDependency",
    "UnknownHostFunction",
    "UnknownRun",
    "UnknownWorkflow",
    "WaitFailed",
    "WaitTimedOut",
    "WorkflowCycle",
    "WorkflowFileError",
    "WorkflowFrozen",
)


class ActorsError(Exception):
    """Root of every error of the :mod:`actors` package."""


# -- definitions ------------------------------------------------------------------


class DefinitionError(ActorsError):
    """A workflow definition is invalid; ``workflow`` names it when known."""

    def __init__(self, message: str, *, workflow: str | None = None) -> None:
        prefix = f"workflow {workflow!r}: " if workflow else ""
        super().__init__(prefix + message)
        self.workflow = workflow


class DuplicateStep(DefinitionError):
    """Two steps share the name ``step``."""

    def __init__(self, step: str, *, workflow: str | None = None) -> None:
        super().__init__(f"duplicate step {step!r}", workflow=workflow)
        self.step = step


class UnknownDependency(DefinitionError):
    """Step ``step`` runs after ``dependency``, which is not a step of the workflow."""

    def __init__(self, step: str, dependency: str, *, workflow: str | None = None) -> None:
        super().__init__(f"step {step!r} depends on unknown step {dependency!r}", workflow=workflow)
        self.step = step
        self.dependency = dependency


class UnknownHostFunction(DefinitionError):
    """Step ``step`` lists ``function`` in its ``api``, but the engine has no such function."""

    def __init__(self, step: str, function: str, *, workflow: str | None = None) -> None:
        message = f"step {step!r}: api: the engine has no host function {function!r}"
        super().__init__(message, workflow=workflow)
        self.step = step
        self.function = function


class CycleDetected(DefinitionError):
    """The steps in ``steps`` depend on each other in a cycle (each after the previous)."""

    def __init__(self, steps: Sequence[str], *, workflow: str | None = None) -> None:
        path = " -> ".join([*steps, steps[0]]) if steps else ""
        super().__init__(f"dependency cycle: {path}", workflow=workflow)
        self.steps = tuple(steps)


class UnknownWorkflow(DefinitionError):
    """Step ``step`` runs the sub-workflow ``name``, which the engine does not know."""

    def __init__(self, name: str, *, step: str | None = None, workflow: str | None = None) -> None:
        where = f"step {step!r}: " if step is not None else ""
        hint = "register it: Engine(workflows=[...]) or engine.register(workflow)"
        super().__init__(f"{where}no workflow named {name!r} ({hint})", workflow=workflow)
        self.name = name
        self.step = step


class DuplicateWorkflow(DefinitionError):
    """Another workflow is registered under the name ``name`` already."""

    def __init__(self, name: str) -> None:
        super().__init__("another workflow of this name is registered already", workflow=name)
        self.name = name


class WorkflowCycle(DefinitionError):
    """The workflows in ``workflows`` run each other as sub-workflows in a cycle."""

    def __init__(self, workflows: Sequence[str]) -> None:
        path = " -> ".join([*workflows, workflows[0]]) if workflows else ""
        super().__init__(
            f"sub-workflow cycle: {path}", workflow=workflows[0] if workflows else None
        )
        self.workflows = tuple(workflows)


class NestingTooDeep(DefinitionError):
    """Sub-workflows would nest ``depth`` runs deep along ``chain``, past ``limit``."""

    def __init__(self, chain: Sequence[str], *, depth: int, limit: int) -> None:
        path = " -> ".join(chain)
        reason = f"sub-workflows nest {depth} deep ({path}), past the bound of {limit}"
        super().__init__(
            f"{reason} (Engine(max_nesting=...))", workflow=chain[0] if chain else None
        )
        self.chain = tuple(chain)
        self.depth = depth
        self.limit = limit


class InvalidOption(DefinitionError):
    """Option ``option`` (``"js"``, ``"timeout"``, ``"retry.attempts"``...) is invalid.

    ``step`` names the step when the option belongs to one; ``value`` is the
    offending value.
    """

    def __init__(
        self,
        option: str,
        reason: str,
        *,
        step: str | None = None,
        value: object = None,
        workflow: str | None = None,
    ) -> None:
        where = f"step {step!r}: " if step is not None else ""
        super().__init__(f"{where}{option}: {reason}", workflow=workflow)
        self.option = option
        self.reason = reason
        self.step = step
        self.value = value


class StepSyntaxError(DefinitionError):
    """Step ``step``'s JS does not compile (found in the sandbox before any step ran).

    ``line`` and ``column`` (1-based, in the step's own JS; ``None`` when unknown),
    ``message`` (V8's) and ``source_line`` (the offending line's text) say where.
    """

    def __init__(
        self,
        step: str,
        message: str,
        *,
        line: int | None,
        column: int | None,
        source_line: str | None,
        workflow: str | None = None,
    ) -> None:
        where = "".join(
            [f" line {line}" if line is not None else "", f" col {column}" if column else ""]
        )
        text = f"step {step!r}{where}: SyntaxError: {message}"
        if source_line is not None:  # shown as the CLI shows a failing step's line
            gutter = f"    {line} | "
            text += f"\n{gutter}{source_line}"
            if column is not None:
                text += "\n" + " " * (len(gutter) - 2) + "| " + " " * (column - 1) + "^"
        super().__init__(text, workflow=workflow)
        self.step = step
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line


class WorkflowFrozen(DefinitionError):
    """The workflow has been run (or frozen) and can no longer change."""

    def __init__(self, workflow: str) -> None:
        super().__init__("is frozen once run; build a new Workflow to change it", workflow=workflow)


class WorkflowFileError(DefinitionError):
    """The workflow file ``path`` is malformed; ``key`` is the offending key, if any."""

    def __init__(self, path: str | Path, reason: str, *, key: str | None = None) -> None:
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + reason)
        self.path = Path(path)
        self.key = key
        self.reason = reason


# -- engine ------------------------------------------------------------------------


class EngineNotRunning(ActorsError):
    """The engine was used outside its ``async with`` block."""

    def __init__(self) -> None:
        super().__init__("the engine is not running; use it inside 'async with Engine(...)'")


# -- the store ---------------------------------------------------------------------


class StoreError(ActorsError):
    """The run store failed; ``location`` names the database (a path or DSN)."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"run store {location}: {reason}")
        self.location = location
        self.reason = reason


class StoreLocked(StoreError):
    """Another engine owns the store: ``pid`` on ``hostname`` (when known)."""

    def __init__(self, location: str, *, pid: int | None, hostname: str | None) -> None:
        holder = f"process {pid} on {hostname}" if pid is not None else "another process"
        super().__init__(location, f"in use by {holder}; one engine per store file")
        self.pid = pid
        self.hostname = hostname


class StoreVersionError(StoreError):
    """The store's schema ``found`` is newer than this library knows (``supported``)."""

    def __init__(self, location: str, *, found: int, supported: int) -> None:
        reason = f"schema version {found} is newer than this library's {supported}; upgrade actors"
        super().__init__(location, reason)
        self.found = found
        self.supported = supported


class StoreCorrupt(StoreError):
    """The store's file is not a readable database (corrupt, or not a database)."""


class StoreReadOnly(StoreError):
    """The store cannot be written (a read-only file or directory)."""


class RunLost(StoreError):
    """Another engine took run ``run_id`` over (this engine's lease on it lapsed):
    nothing more is recorded for it here."""

    def __init__(self, location: str, run_id: str) -> None:
        reason = f"run {run_id!r} was taken over by another engine (lease lost); not recorded"
        super().__init__(location, reason)
        self.run_id = run_id


class StoreFull(StoreError):
    """The store's disk (or its size limit) is full; what was recorded before is kept."""


class StoreRequired(ActorsError):
    """A run-history feature (``get_run``, ``key=``...) was used on an engine without a store."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"{feature} needs a run store: Engine(store='runs.db')")
        self.feature = feature


class ClusterUnavailable(ActorsError):
    """``bus.subscribe(cluster=True)`` on a bus with no engine on a PostgreSQL store
    running (only such engines share their events)."""

    def __init__(self) -> None:
        super().__init__(
            "subscribe(cluster=True) needs an engine on a shared store running on this bus:"
            " Engine(store='postgresql://...')"
        )


class UnknownRun(ActorsError):
    """No run with id ``run_id`` is in the store (or it cannot be waited for here)."""

    def __init__(self, run_id: str, reason: str = "no such run in the store") -> None:
        super().__init__(f"run {run_id!r}: {reason}")
        self.run_id = run_id
        self.reason = reason


# -- steps -------------------------------------------------------------------------


class StepError(ActorsError):
    """A step's attempt failed.

    ``name`` is the JS error name for script errors (``"TypeError"``,
    ``"NonRetryableError"``...) and the runtime condition otherwise
    (``"ScriptTimeout"``, ``"SandboxCrashed"``...). ``retryable`` says whether a
    :class:`~actors.Retry` policy may try again; ``cause`` is the runtime's error.
    ``line`` and ``column`` (1-based, in the step's own JS) say where a script
    error happened, when known; ``source_line`` is that line's text.
    """

    def __init__(
        self,
        step: str,
        name: str,
        message: str,
        *,
        attempt: int,
        retryable: bool,
        cause: BaseException | None = None,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        where = f" line {line}" if line is not None else ""
        super().__init__(f"step {step!r} attempt {attempt}{where}: {name}: {message}")
        self.step = step
        self.name = name
        self.message = message
        self.attempt = attempt
        self.retryable = retryable
        self.cause = cause
        self.line = line
        self.column = column
        self.source_line = source_line


# Script errors that can never succeed on a retry: the same JS fails the same way.
NEVER_RETRIED = frozenset({"NonRetryableError", "SyntaxError", "ReferenceError"})


class ScriptFailed(StepError):
    """The step's JS threw; ``stack`` is its JS stack trace in the step's own lines.

    Not retried when ``name`` is in :data:`NEVER_RETRIED` (``NonRetryableError``,
    ``SyntaxError``, ``ReferenceError``: e.g. a host function the engine lacks).
    """

    def __init__(
        self,
        step: str,
        name: str,
        message: str,
        *,
        attempt: int,
        stack: str | None = None,
        cause: BaseException | None = None,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        super().__init__(
            step,
            name,
            message,
            attempt=attempt,
            retryable=name not in NEVER_RETRIED,
            cause=cause,
            line=line,
            column=column,
            source_line=source_line,
        )
        self.stack = stack


class ElementFailed(StepError):
    """Element ``index`` of a ``for_each`` step failed for good, which fails the step.

    ``name``, ``message`` and the position are the element's last error (``cause``,
    itself a :class:`StepError`); ``attempt`` is that element's attempt.
    """

    def __init__(self, step: str, index: int, error: StepError) -> None:
        super().__init__(
            step,
            error.name,
            f"item {index}: {error.message}",
            attempt=error.attempt,
            retryable=False,
            cause=error,
            line=error.line,
            column=error.column,
            source_line=error.source_line,
        )
        self.index = index


class StepTimedOut(StepError):
    """The step's JS ran past ``timeout`` seconds and was stopped (retryable)."""

    def __init__(
        self, step: str, timeout: float, *, attempt: int, cause: BaseException | None = None
    ) -> None:
        message = f"did not finish within {timeout:g} s"
        super().__init__(
            step, "ScriptTimeout", message, attempt=attempt, retryable=True, cause=cause
        )
        self.timeout = timeout


class WaitTimedOut(StepError):
    """A ``wait_for`` step saw no matching event on ``topic`` within ``timeout`` seconds."""

    def __init__(self, step: str, topic: str, timeout: float) -> None:
        message = f"no event on {topic!r} within {timeout:g} s"
        super().__init__(step, "WaitTimedOut", message, attempt=1, retryable=False)
        self.topic = topic
        self.timeout = timeout


class WaitFailed(StepError):
    """A ``sleep_until`` or ``wait_for`` step could not start waiting: its wake time is
    not an ISO time, or ``ctx.event`` lacks the ``match`` field (``reason`` says)."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(step, "WaitFailed", reason, attempt=1, retryable=False)
        self.reason = reason


class SandboxFailed(StepError):
    """The sandbox running the step crashed, ran out of memory or refused a value."""


class SubflowFailed(StepError):
    """The sub-workflow run ``run_id`` (of ``workflow``) that the step started failed
    at ``failed_step`` (its error is ``cause`` when known), or was cancelled
    (``failed_step`` is ``None``). Not retryable: the child retried its own steps."""

    def __init__(
        self,
        step: str,
        message: str,
        *,
        run_id: str,
        workflow: str,
        failed_step: str | None,
        attempt: int,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(
            step, "SubflowFailed", message, attempt=attempt, retryable=False, cause=cause
        )
        self.run_id = run_id
        self.workflow = workflow
        self.failed_step = failed_step
