"""Wait steps as definitions: ``sleep``, ``sleep_until`` and ``wait_for`` (no JS).

Pure logic, no I/O: the :class:`WaitFor` option, the checks of a step that waits
(one wait kind, no JS, no retry...), wake times from ``sleep_until`` values, and the
label ``actors graph`` draws. The waiting itself is in ``_wait_step`` (one step),
``_waiters`` (who waits for which event) and ``_timers`` (one task for all deadlines).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from actors._rules import check_expression
from actors.errors import InvalidOption

if TYPE_CHECKING:
    from actors._workflow import Step

__all__ = (
    "WAIT_OPTIONS",
    "WaitFor",
    "check_wait_step",
    "is_wait",
    "wait_for_of",
    "wait_note",
    "wake_time",
)

WAIT_OPTIONS = ("sleep", "sleep_until", "wait_for")
# Step options a waiting step cannot have (it runs no JS of its own).
_NOT_WITH_WAIT = ("retry", "for_each", "api")


@dataclass(frozen=True, slots=True)
class WaitFor:
    """``wait_for``: complete with the first event on ``topic`` whose ``payload[match]``
    equals ``ctx.event[match]`` (any event on it without ``match``); past ``timeout``
    seconds (``None``: no limit) fail with :class:`~actors.errors.WaitTimedOut`."""

    topic: str
    match: str | None = None
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"topic": self.topic}
        if self.match is not None:
            data["match"] = self.match
        if self.timeout is not None:
            data["timeout"] = self.timeout
        return data


def wait_for_of(value: object, *, step: str) -> WaitFor | None:
    """A :class:`WaitFor` from the option's value (a ``WaitFor``, a dict or ``None``)."""
    if value is None:
        return None
    data: Mapping[str, Any]
    if isinstance(value, WaitFor):
        data = value.to_dict()
    elif isinstance(value, Mapping):
        data = value
    else:
        reason = "must be a table/dict with 'topic' (and 'match', 'timeout')"
        raise InvalidOption("wait_for", reason, step=step, value=value)
    unknown = sorted(str(key) for key in data if key not in ("topic", "match", "timeout"))
    if unknown:
        raise InvalidOption(f"wait_for.{unknown[0]}", "unknown key", step=step, value=data)
    topic, match, timeout = data.get("topic"), data.get("match"), data.get("timeout")
    if not isinstance(topic, str) or not topic:
        reason = "is required: a non-empty topic string"
        raise InvalidOption("wait_for.topic", reason, step=step, value=topic)
    if match is not None and not (isinstance(match, str) and match):
        reason = "must be the name of a field of the event"
        raise InvalidOption("wait_for.match", reason, step=step, value=match)
    if timeout is not None and not _seconds(timeout, positive=True):
        reason = "must be a positive number of seconds"
        raise InvalidOption("wait_for.timeout", reason, step=step, value=timeout)
    return WaitFor(topic, match, timeout)


def is_wait(step: Step) -> bool:
    """Whether ``step`` waits (``sleep``, ``sleep_until`` or ``wait_for``)."""
    return step.sleep is not None or step.sleep_until is not None or step.wait_for is not None


def check_wait_step(step: Step) -> None:
    """Raise :class:`InvalidOption` for a wait option that is wrong or badly combined."""
    given = [option for option in WAIT_OPTIONS if getattr(step, option) is not None]
    if not given:
        return
    if len(given) > 1:
        reason = f"a step waits one way: not together with {given[0]}"
        raise InvalidOption(given[1], reason, step=step.name, value=getattr(step, given[1]))
    kind = given[0]
    if step.sleep is not None and not _seconds(step.sleep, positive=False):
        reason = "must be a number of seconds >= 0"
        raise InvalidOption("sleep", reason, step=step.name, value=step.sleep)
    if step.sleep_until is not None and not check_expression(step.sleep_until):
        reason = "must be a non-empty JS expression giving an ISO time"
        raise InvalidOption("sleep_until", reason, step=step.name, value=step.sleep_until)
    if step.js.strip():
        reason = f"a {kind} step runs no JS of its own"
        raise InvalidOption("js", reason, step=step.name, value=step.js)
    for option in _NOT_WITH_WAIT:
        if getattr(step, option) is not None:
            reason = f"does not apply to a {kind} step"
            raise InvalidOption(option, reason, step=step.name, value=getattr(step, option))
    if step.timeout is not None and kind != "sleep_until":
        reason = f"does not apply to a {kind} step (wait_for has its own 'timeout')"
        raise InvalidOption("timeout", reason, step=step.name, value=step.timeout)


def wake_time(value: object) -> float | str:
    """The Unix time an ISO time string names, or why ``value`` is not one (a string).

    A time without a zone is UTC; ``Z`` is accepted.
    """
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        return f"sleep_until must give an ISO time string, got {got}"
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return f"sleep_until must give an ISO time string, got {value[:80]!r}"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def wait_note(step: Step) -> str | None:
    """What ``actors graph`` writes under a waiting step's name."""
    if step.sleep is not None:
        return f"sleep {step.sleep:g} s"
    if step.sleep_until is not None:
        return f"sleep until: {' '.join(step.sleep_until.split())}"
    wait = step.wait_for
    if wait is None:
        return None
    details = [f"match {wait.match}"] if wait.match else []
    if wait.timeout is not None:
        details.append(f"timeout {wait.timeout:g} s")
    extra = f" ({', '.join(details)})" if details else ""
    return f"wait for: {wait.topic}{extra}"


def _seconds(value: object, *, positive: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and (value > 0 if positive else value >= 0)
