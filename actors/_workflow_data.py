"""Workflows as data: ``to_dict`` / ``from_dict`` and JSON or TOML files.

Shape::

    {"name": str, "lib": shared JS,
     "steps": {step: {"js": str, "after": [step, ...], "timeout": seconds,
                      "retry": {"attempts", "delay", "backoff", "max_delay", "jitter"},
                      "when": JS expression, "run_if": rule, "api": [name, ...],
                      "for_each": JS expression, "max_parallel": int,
                      "sleep": seconds, "sleep_until": JS expression,
                      "wait_for": {"topic", "match", "timeout"},
                      "workflow": name of a sub-workflow}}}

Only ``js`` is required per step (none for a step that waits; a step with
``workflow`` may leave it out). Errors carry the offending key as a dotted path
(``steps.combine.timeout``); file errors add the file name.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from actors._retry import Retry
from actors._waits import WAIT_OPTIONS
from actors._workflow import Workflow
from actors.errors import DefinitionError, InvalidOption, WorkflowFileError

__all__ = ("workflow_from_dict", "workflow_from_file", "workflow_to_dict")

_STEP_KEYS = frozenset({"js", "after", "timeout", "retry"})
# Step options given as they are (validated by Step itself), left out when at their default.
_PLAIN_OPTIONS = {
    "when": None,
    "run_if": "all_completed",
    "api": None,
    "for_each": None,
    "max_parallel": None,
    "sleep": None,
    "sleep_until": None,
    "wait_for": None,
    "workflow": None,
}
_TOP_KEYS = frozenset({"name", "steps", "lib"})


def workflow_to_dict(workflow: Workflow) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for name, step in workflow.steps.items():
        entry: dict[str, Any] = {"js": step.js} if step.js else {}  # (a wait or sub-workflow)
        if step.after:
            entry["after"] = list(step.after)
        if step.timeout is not None:
            entry["timeout"] = step.timeout
        if step.retry is not None:
            entry["retry"] = step.retry.to_dict()
        for option, default in _PLAIN_OPTIONS.items():
            value = getattr(step, option)
            if value != default:
                entry[option] = _plain(value)
        steps[name] = entry
    data: dict[str, Any] = {"name": workflow.name}
    if workflow.lib is not None:
        data["lib"] = workflow.lib
    data["steps"] = steps
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    to_dict = getattr(value, "to_dict", None)  # wait_for
    return value if to_dict is None else to_dict()


class _BadKey(DefinitionError):
    """Internal: a problem at a dotted key path, before the file name is known."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def workflow_from_dict(data: Mapping[str, Any]) -> Workflow:
    try:
        return _build(data)
    except _BadKey as exc:
        raise InvalidOption(exc.key, exc.reason, workflow=_name_of(data)) from None


def workflow_from_file(path: str | PathLike[str]) -> Workflow:
    file = Path(path)
    data = _load(file)
    try:
        return _build(data)
    except _BadKey as exc:
        raise WorkflowFileError(file, exc.reason, key=exc.key) from None
    except DefinitionError as exc:
        raise WorkflowFileError(file, str(exc), key=_culprit_key(exc)) from None


def _name_of(data: object) -> str | None:
    name = data.get("name") if isinstance(data, Mapping) else None
    return name if isinstance(name, str) else None


def _culprit_key(exc: DefinitionError) -> str | None:
    step = getattr(exc, "step", None)
    if isinstance(step, str):
        return f"steps.{step}"
    steps = getattr(exc, "steps", None)
    return f"steps.{steps[0]}" if steps else None


def _load(file: Path) -> Any:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise WorkflowFileError(file, f"cannot read: {exc.strerror or exc}") from exc
    suffix = file.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(raw.decode("utf-8"))
        if suffix == ".json":
            return json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkflowFileError(file, f"not valid {suffix[1:].upper()}: {exc}") from None
    except _DuplicateKey as exc:
        raise WorkflowFileError(file, "duplicate key", key=exc.key) from None
    raise WorkflowFileError(file, "unsupported file type; use .json or .toml")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _build(data: object) -> Workflow:
    if not isinstance(data, Mapping):
        raise _BadKey("(top level)", "must be an object/table with 'name' and 'steps'")
    for key in data:
        if key not in _TOP_KEYS:
            raise _BadKey(str(key), "unknown key (expected 'name', 'steps' and 'lib')")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _BadKey("name", f"must be a non-empty string, got {name!r}")
    steps = data.get("steps")
    if not isinstance(steps, Mapping) or not steps:
        raise _BadKey("steps", "must be a non-empty object/table of steps")
    lib = data.get("lib")
    if lib is not None and not (isinstance(lib, str) and lib.strip()):
        raise _BadKey("lib", f"must be a non-empty string of JS, got {lib!r}")
    workflow = Workflow(name, lib=lib)
    for step_name, spec in steps.items():
        _add(workflow, str(step_name), spec)
    workflow.validate()
    return workflow


def _add(workflow: Workflow, name: str, spec: object) -> None:
    where = f"steps.{name}"
    if not isinstance(spec, Mapping):
        raise _BadKey(where, "must be an object/table with at least 'js'")
    for key in spec:
        if key not in _STEP_KEYS and key not in _PLAIN_OPTIONS:
            raise _BadKey(f"{where}.{key}", "unknown step option")
    waits = any(key in spec for key in WAIT_OPTIONS)
    if "js" not in spec and not waits and spec.get("workflow") is None:
        raise _BadKey(f"{where}.js", "is required")
    after = spec.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise _BadKey(f"{where}.after", f"must be a list of step names, got {after!r}")
    retry = _retry(spec.get("retry"), where=f"{where}.retry")
    options = {key: spec[key] for key in _PLAIN_OPTIONS if key in spec}
    try:
        js, timeout = spec.get("js"), spec.get("timeout")
        workflow.add_step(name, js=js, after=after, timeout=timeout, retry=retry, **options)
    except InvalidOption as exc:
        raise _BadKey(f"{where}.{exc.option}", f"{exc.reason}, got {exc.value!r}") from None


def _retry(data: object, *, where: str) -> Retry | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise _BadKey(where, f"must be an object/table of retry options, got {data!r}")
    try:
        return Retry.from_dict(data)
    except InvalidOption as exc:
        raise _BadKey(f"{where}.{exc.option}", f"{exc.reason}, got {exc.value!r}") from None
