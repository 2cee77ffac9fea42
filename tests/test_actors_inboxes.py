"""A run's inboxes: which steps a report makes ready. Pure, no event loop."""

from __future__ import annotations

from typing import Any, cast

from actors._graph import plan
from actors._inboxes import Inboxes
from actors._messages import Completed, Skipped
from actors._results import StepResult

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["c", "b"], "e": []}


def _inboxes(recorded: dict[str, StepResult] | None = None) -> Inboxes:
    recorded = recorded or {}
    # Inboxes hands its actors back without using them: names stand in for them here.
    actors = {name: cast(Any, name) for name in DIAMOND if name not in recorded}
    return Inboxes(plan(DIAMOND), actors, recorded)


def test_the_steps_without_upstream_are_ready_at_start_in_plan_order() -> None:
    assert _inboxes().ready_at_start() == [("a", {}), ("e", {})]


def test_a_report_makes_ready_only_the_steps_whose_every_report_is_in() -> None:
    inboxes = _inboxes()
    done_a = Completed("a", 1)
    assert inboxes.report(done_a) == [("b", {"a": done_a}), ("c", {"a": done_a})]
    done_c = Completed("c", 3)
    assert inboxes.report(done_c) == []
    skipped_b = Skipped("b", "why")
    ready = inboxes.report(skipped_b)
    assert ready == [("d", {"c": done_c, "b": skipped_b})]
    assert list(ready[0][1]) == ["c", "b"]  # in the order the reports came
    assert inboxes.report(Completed("d", 4)) == []  # a sink


def test_a_resumed_run_starts_the_steps_its_recorded_steps_made_ready() -> None:
    recorded = {"a": StepResult("a", "completed", result=1)}
    inboxes = _inboxes(recorded)
    assert inboxes.ready_at_start() == [
        ("b", {"a": Completed("a", 1)}),
        ("c", {"a": Completed("a", 1)}),
        ("e", {}),
    ]


def test_a_recorded_step_is_not_made_ready_again() -> None:
    recorded = {
        "a": StepResult("a", "completed", result=1),
        "d": StepResult("d", "completed", result=4),
    }
    inboxes = _inboxes(recorded)
    inboxes.report(Completed("b", 2))
    assert inboxes.report(Completed("c", 3)) == []
