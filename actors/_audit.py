"""Capabilities and audit: which host functions a step may call, and what it called.

A step's ``api`` list limits the host functions it sees (checked against the
engine's when a run starts). When the runner reports host calls (its ``execute``
takes ``on_host_call=``), each call becomes a ``host.called`` event, published
like the attempt's console lines (``AttemptConsole.publish``: at once when the bus
can take it, else through the attempt's bounded queue), so a host call never waits
for the bus; the queue is drained before the attempt's outcome is published.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors._console import runner_accepts
from actors._events import HostCalled, LifecycleEvent
from actors._log import get_logger
from actors._workflow import Step, Workflow
from actors.errors import UnknownHostFunction

__all__ = ("can_audit", "check_capabilities", "host_call_events", "step_api")

logger = get_logger(__name__)

OnHostCall = Callable[[Any], None]


def check_capabilities(workflow: Workflow, api: Mapping[str, Any]) -> None:
    """Raise :class:`UnknownHostFunction` for the first ``api`` name the engine lacks."""
    for step in workflow.steps.values():
        for name in step.api or ():
            if name not in api:
                raise UnknownHostFunction(step.name, name, workflow=workflow.name)


def step_api(step: Step, api: Mapping[str, Callable[..., Any]]) -> Mapping[str, Any]:
    """The host functions ``step`` sees: its ``api`` list, or all of them. A listed
    name the engine lacks (a run resumed by an engine without it) is left out: the
    step's JS then fails with a ReferenceError naming it."""
    if step.api is None:
        return api
    return {name: api[name] for name in step.api if name in api}


def can_audit(runner: Any) -> bool:
    """Whether ``runner.execute`` accepts ``on_host_call=``."""
    return runner_accepts(runner, "on_host_call")


def host_call_events(
    publish: Callable[[LifecycleEvent], bool], ids: Mapping[str, Any], *, arguments: bool
) -> OnHostCall:
    """The ``on_host_call`` callback of one attempt: each call becomes a ``host.called``
    event given to ``publish`` (False: dropped, logged once per attempt)."""
    dropped = 0

    def on_host_call(call: Any) -> None:
        nonlocal dropped
        event = HostCalled(
            function=call.function,
            duration=call.duration,
            error=call.error,
            arguments=tuple(call.arguments) if arguments else None,
            **ids,
        )
        if not publish(event):
            dropped += 1
            if dropped == 1:
                logger.warning("host_called_events_dropped", **ids)

    return on_host_call
