"""Workflow definitions: steps with their JS, built from Python, frozen once run."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from os import PathLike
from types import MappingProxyType
from typing import Any, overload

from actors._graph import Plan, check_graph, plan
from actors._retry import Retry
from actors._rules import RUN_IF, RunIf, check_expression
from actors._waits import WAIT_OPTIONS, WaitFor, check_wait_step, is_wait, wait_for_of
from actors.errors import (
    DefinitionError,
    DuplicateStep,
    InvalidOption,
    WorkflowFrozen,
)

__all__ = ("Step", "StepRef", "Workflow")


@dataclass(frozen=True, slots=True)
class Step:
    """One step: its name, its JS (the body of an async function), and its options.

    ``timeout`` and ``retry`` left as ``None`` take the engine's defaults.
    ``when``: a JS expression; false skips the step ("condition false").
    ``run_if``: the trigger rule (``"all_completed"``, ``"all_done"``,
    ``"any_failed"``, ``"any_completed"``). ``api``: the host functions the step
    may call (``None``: all the engine has). ``for_each``: a JS expression giving
    an array; the JS runs once per element (``item``, ``index``), at most
    ``max_parallel`` at once, and the step's result is the array of results.
    ``sleep`` (seconds), ``sleep_until`` (a JS expression giving an ISO time) and
    ``wait_for`` (a :class:`~actors._waits.WaitFor` or its dict) make a step that
    waits and runs no JS (``js`` is then ``""``).
    ``workflow``: the name of a workflow the step runs as a child run (a
    sub-workflow); its JS, optional then, returns the child's event (default:
    ``deps``), and the child's output is the step's result. A step either waits or
    runs a sub-workflow, not both.
    """

    name: str
    js: str
    after: tuple[str, ...] = ()
    timeout: float | None = None
    retry: Retry | None = None
    when: str | None = None
    run_if: RunIf = "all_completed"
    api: tuple[str, ...] | None = None
    for_each: str | None = None
    max_parallel: int | None = None
    sleep: float | None = None
    sleep_until: str | None = None
    wait_for: WaitFor | None = None
    workflow: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidOption("name", "must be a non-empty string", value=self.name)
        object.__setattr__(self, "wait_for", wait_for_of(self.wait_for, step=self.name))
        if self.workflow is not None:
            _check_subflow(self)
        elif not isinstance(self.js, str) or not (self.js.strip() or is_wait(self)):
            raise InvalidOption(
                "js", "must be a non-empty string of JS", step=self.name, value=self.js
            )
        if not isinstance(self.after, tuple) or not all(isinstance(a, str) for a in self.after):
            raise InvalidOption(
                "after", "must be a list of step names", step=self.name, value=self.after
            )
        if self.timeout is not None and not _positive_number(self.timeout):
            reason = "must be a positive number of seconds"
            raise InvalidOption("timeout", reason, step=self.name, value=self.timeout)
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise InvalidOption("retry", "must be a Retry", step=self.name, value=self.retry)
        if self.when is not None and not check_expression(self.when):
            reason = "must be a non-empty JS expression"
            raise InvalidOption("when", reason, step=self.name, value=self.when)
        if self.api is not None and not (
            isinstance(self.api, tuple) and all(isinstance(n, str) and n for n in self.api)
        ):
            reason = "must be a list of host function names"
            raise InvalidOption("api", reason, step=self.name, value=self.api)
        if self.for_each is not None and not check_expression(self.for_each):
            reason = "must be a non-empty JS expression"
            raise InvalidOption("for_each", reason, step=self.name, value=self.for_each)
        if self.max_parallel is not None and (
            isinstance(self.max_parallel, bool)
            or not isinstance(self.max_parallel, int)
            or self.max_parallel < 1
        ):
            reason = "must be a positive integer"
            raise InvalidOption("max_parallel", reason, step=self.name, value=self.max_parallel)
        if self.max_parallel is not None and self.for_each is None:
            reason = "only applies to a step with for_each"
            raise InvalidOption("max_parallel", reason, step=self.name, value=self.max_parallel)
        if self.run_if not in RUN_IF:
            reason = f"must be one of {', '.join(RUN_IF)}"
            raise InvalidOption("run_if", reason, step=self.name, value=self.run_if)
        check_wait_step(self)


def _check_subflow(step: Step) -> None:
    """A sub-workflow step: a workflow name, JS optional, no ``for_each``, no waiting."""
    if not isinstance(step.workflow, str) or not step.workflow:
        reason = "must be the name of a workflow"
        raise InvalidOption("workflow", reason, step=step.name, value=step.workflow)
    if not isinstance(step.js, str):
        raise InvalidOption("js", "must be a string of JS", step=step.name, value=step.js)
    if step.for_each is not None:
        reason = "cannot be combined with for_each"
        raise InvalidOption("workflow", reason, step=step.name, value=step.workflow)
    waits = [option for option in WAIT_OPTIONS if getattr(step, option) is not None]
    if waits:
        reason = f"cannot be combined with {waits[0]} (a step waits or runs a workflow)"
        raise InvalidOption("workflow", reason, step=step.name, value=step.workflow)


def _positive_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > 0 and math.isfinite(value)


_OPTIONS = frozenset(
    {"when", "run_if", "api", "for_each", "max_parallel", "workflow"}
    | {"sleep", "sleep_until", "wait_for"}
)

StepRef = Step | str | Callable[..., Any]
"""How ``after=`` names an upstream step: a :class:`Step`, its name, or a function."""


def _ref_name(ref: object, *, step: str) -> str:
    if isinstance(ref, Step):
        return ref.name
    if isinstance(ref, str):
        return ref
    name = getattr(ref, "__name__", None)
    if callable(ref) and isinstance(name, str):
        return name
    raise InvalidOption("after", "must name steps (Step, str or function)", step=step, value=ref)


def _after_names(after: Iterable[StepRef] | StepRef, *, step: str) -> tuple[str, ...]:
    if isinstance(after, str | Step) or callable(after):
        return (_ref_name(after, step=step),)
    if not isinstance(after, Iterable):
        raise InvalidOption("after", "must be a list of steps", step=step, value=after)
    return tuple(_ref_name(ref, step=step) for ref in after)


class Workflow:
    """A DAG of JS steps. Add steps, then run it; it is frozen (immutable) once run.

    ``lib``: shared JS; its top-level declarations (functions, classes, constants)
    become the frozen object ``lib`` every step sees.

    >>> wf = Workflow("orders")
    >>> @wf.step()
    ... def fetch_a():
    ...     '''return await fetch_data('a');'''
    """

    def __init__(self, name: str, *, lib: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidOption("name", "a workflow needs a non-empty string name", value=name)
        if lib is not None and not (isinstance(lib, str) and lib.strip()):
            raise InvalidOption("lib", "must be a non-empty string of JS", value=lib, workflow=name)
        self._name = name
        self._lib = lib
        self._steps: dict[str, Step] = {}
        self._plan: Plan | None = None

    def __repr__(self) -> str:
        return f"<Workflow {self._name!r} steps={list(self._steps)}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def lib(self) -> str | None:
        """The shared JS whose top-level declarations every step sees as ``lib``."""
        return self._lib

    @property
    def lib_script(self) -> str | None:
        """What the sandbox runs once per runtime to make ``lib`` (``None``: no lib)."""
        if self._lib is None:
            return None
        from actors._lib import lib_script

        return lib_script(self._lib)

    @property
    def steps(self) -> Mapping[str, Step]:
        """The steps by name, in the order they were added (read-only)."""
        return MappingProxyType(self._steps)

    @property
    def frozen(self) -> bool:
        return self._plan is not None

    # -- building ------------------------------------------------------------------

    def add_step(
        self,
        name: str,
        *,
        js: str | None = None,
        after: Iterable[StepRef] | StepRef = (),
        timeout: float | None = None,
        retry: Retry | None = None,
        **options: Any,
    ) -> Step:
        """Add a step whose body is ``js``; it runs once every step in ``after`` completed
        (or as its ``run_if`` rule says). ``options``: the other :class:`Step` fields
        (``when``, ``run_if``, ``wait_for``, ``workflow``...); a waiting step has no
        ``js``, a sub-workflow step may leave it out."""
        if self._plan is not None:
            raise WorkflowFrozen(self._name)
        if isinstance(name, str) and name in self._steps:
            raise DuplicateStep(name, workflow=self._name)
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            reason = "unknown step option"
            raise InvalidOption(unknown[0], reason, step=str(name), workflow=self._name)
        if isinstance(options.get("api"), list):
            options["api"] = tuple(options["api"])
        try:
            after_names = _after_names(after, step=str(name))
            step = Step(name, "" if js is None else js, after_names, timeout, retry, **options)
        except InvalidOption as exc:
            raise self._with_workflow(exc) from None
        self._steps[name] = step
        return step

    @overload
    def step(self, fn: Callable[..., Any], /) -> Step: ...
    @overload
    def step(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        after: Iterable[StepRef] | StepRef = (),
        timeout: float | None = None,
        retry: Retry | None = None,
        **options: Any,
    ) -> Callable[[Callable[..., Any]], Step]: ...

    def step(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        after: Iterable[StepRef] | StepRef = (),
        timeout: float | None = None,
        retry: Retry | None = None,
        **options: Any,
    ) -> Step | Callable[[Callable[..., Any]], Step]:
        """Decorator: the function's docstring is the step's JS, its name the step's name.

        Use as ``@wf.step()`` or ``@wf.step``; the decorated name becomes the
        :class:`Step`, which ``after=`` of later steps accepts.
        """

        def decorate(func: Callable[..., Any]) -> Step:
            step_name = name if name is not None else func.__name__
            doc = func.__doc__
            js = inspect.cleandoc(doc) if isinstance(doc, str) else doc
            return self.add_step(
                step_name,
                js=js,
                after=after,
                timeout=timeout,
                retry=retry,
                **options,
            )

        return decorate(fn) if fn is not None else decorate

    # -- checking ------------------------------------------------------------------

    def validate(self) -> None:
        """Raise a :class:`~actors.errors.DefinitionError` naming what is wrong, if anything."""
        if not self._steps:
            raise DefinitionError("has no steps", workflow=self._name)
        graph = {name: step.after for name, step in self._steps.items()}
        check_graph(graph, workflow=self._name)

    async def check(self, pool: Any = None, *, api: Iterable[str] = ()) -> None:
        """Validate, then compile every step's JS in the sandbox without running it.

        Raises :class:`~actors.errors.StepSyntaxError` (step, line, column, source
        line) for the first step that does not compile. ``pool``: an open
        :class:`runtime_pool.RuntimePool`; without one a one-worker pool is started
        for the check and closed after it. ``api``: the host function names the
        engine will give (a step may not redeclare them). ``engine.run`` and
        :meth:`from_file` do this themselves; :meth:`validate` does not (no process).
        """
        from actors._check import check_workflow

        self.validate()
        if pool is not None:
            await check_workflow(pool, self, api)
            return
        from runtime_pool import RuntimePool

        async with RuntimePool(size=1) as own:
            await check_workflow(own, self, api)

    def freeze(self) -> None:
        """Validate, then forbid further changes. ``engine.run`` does this for you."""
        if self._plan is None:
            self.validate()
            self._plan = plan({name: step.after for name, step in self._steps.items()})

    def compiled(self) -> Plan:
        """The run plan of the frozen workflow (freezing it first)."""
        self.freeze()
        assert self._plan is not None
        return self._plan

    def _with_workflow(self, exc: InvalidOption) -> InvalidOption:
        return InvalidOption(
            exc.option, exc.reason, step=exc.step, value=exc.value, workflow=self._name
        )

    # -- data ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (the shape :meth:`from_dict` reads)."""
        from actors._workflow_data import workflow_to_dict

        return workflow_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        """Build and validate a workflow from ``{"name": ..., "steps": {...}}``."""
        from actors._workflow_data import workflow_from_dict

        return workflow_from_dict(data)

    @classmethod
    def from_file(cls, path: str | PathLike[str], *, check: bool = True) -> Workflow:
        """Read a workflow from a JSON (``.json``) or TOML (``.toml``) file.

        With ``check`` (the default) every step's JS is also compiled, as
        :meth:`check` does, in a sandbox worker started for it (a fraction of a
        second; this call blocks meanwhile): a step that does not compile raises
        :class:`~actors.errors.StepSyntaxError`. ``check=False`` starts no process.
        """
        from actors._workflow_data import workflow_from_file

        workflow = workflow_from_file(path)
        if check:
            from actors._check import check_now

            check_now(workflow)
        return workflow
