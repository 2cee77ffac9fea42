"""Conditions (``when``) and trigger rules (``run_if``), through the real pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import Engine, Workflow
from actors._messages import Completed, Failed, Skipped
from actors._rules import rule_blocks, upstream_view
from actors.errors import InvalidOption, ScriptFailed, WorkflowFileError
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

FAILED = Failed("pay", ScriptFailed("pay", "Error", "card declined", attempt=1))


def test_rules_decide_from_the_upstream_reports() -> None:
    done = {"a": Completed("a", 1), "pay": FAILED, "s": Skipped("s", "condition false")}
    ups = ("a", "pay", "s")
    assert rule_blocks("all_completed", ups, done) == "upstream 'pay' failed, 's' was skipped"
    assert rule_blocks("all_done", ups, done) is None
    assert rule_blocks("any_failed", ups, done) is None
    assert rule_blocks("any_completed", ups, done) is None
    assert rule_blocks("any_failed", ("a",), done) == "run_if any_failed: no upstream failed"
    assert rule_blocks("any_completed", ("s",), done) == (
        "run_if any_completed: no upstream completed"
    )
    assert rule_blocks("all_done", ("a", "x"), done) == "upstream 'x' ended without a result"
    assert upstream_view(ups, done) == {
        "a": {"status": "completed", "error": None},
        "pay": {"status": "failed", "error": {"name": "Error", "message": "card declined"}},
        "s": {"status": "skipped", "error": None, "reason": "condition false"},
    }


def test_bad_rules_and_conditions_are_refused_naming_the_step() -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidOption, match="step 'a': run_if: must be one of all_completed"):
        wf.add_step("a", js="return 1;", run_if="sometimes")
    with pytest.raises(InvalidOption, match="step 'a': when: must be a non-empty JS expression"):
        wf.add_step("a", js="return 1;", when="  ")
    with pytest.raises(InvalidOption, match="step 'a': whenever: unknown step option"):
        wf.add_step("a", js="return 1;", whenever="true")


def approval_workflow() -> Workflow:
    wf = Workflow("approval")
    wf.add_step("amount", js="return ctx.event.amount;")
    wf.add_step(
        "approve",
        js="return 'approved ' + deps.amount;",
        after=["amount"],
        when="deps.amount > 1000",
    )
    wf.add_step("notify", js="return 'sent: ' + deps.approve;", after=["approve"])
    return wf


async def test_a_false_condition_skips_the_step_and_what_needs_it() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        small = await engine.run(approval_workflow(), event={"amount": 10})
        big = await engine.run(approval_workflow(), event={"amount": 5000})
    assert small.status == "completed"
    assert small.steps["approve"].status == "skipped"
    assert small.steps["approve"].reason == "condition false"
    assert small.steps["notify"].status == "skipped"
    assert small.steps["notify"].reason == "upstream 'approve' was skipped"
    assert big.steps["approve"].result == "approved 5000"
    assert big.output == "sent: approved 5000"


async def test_an_error_in_a_condition_fails_the_step_and_says_so() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;", when="ctx.event.missing.field")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    step = result.steps["a"]
    assert result.status == "failed"
    assert step.status == "failed"
    assert step.error is not None and step.error.name == "TypeError"
    assert step.error.message.startswith("when: ")


def payment_workflow() -> Workflow:
    wf = Workflow("payment")
    wf.add_step("reserve", js="return {id: 'r1'};")
    wf.add_step(
        "pay",
        js="if (ctx.event.declined) throw new Error('card declined'); return 'paid';",
        after=["reserve"],
    )
    wf.add_step(
        "release",
        js="return {released: deps.reserve.id, seen: ctx.upstream};",
        after=["reserve", "pay"],
        run_if="all_done",
    )
    wf.add_step(
        "refund",
        js="return 'refund after ' + ctx.upstream.pay.error.message;",
        after=["pay"],
        run_if="any_failed",
    )
    return wf


async def test_a_cleanup_step_runs_after_a_failure_and_the_run_stays_failed() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(payment_workflow(), event={"declined": True})
    assert result.status == "failed"
    assert result.failed_steps == ("pay",)
    release = result.steps["release"]
    assert release.status == "completed"
    assert release.result == {
        "released": "r1",
        "seen": {
            "reserve": {"status": "completed", "error": None},
            "pay": {"status": "failed", "error": {"name": "Error", "message": "card declined"}},
        },
    }
    assert result.steps["refund"].result == "refund after card declined"


async def test_a_compensation_step_is_skipped_when_nothing_failed() -> None:
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(payment_workflow(), event={})
    assert result.status == "completed"
    assert result.steps["release"].status == "completed"
    assert result.steps["refund"].status == "skipped"
    assert result.steps["refund"].reason == "run_if any_failed: no upstream failed"


async def test_any_completed_fires_on_the_first_usable_branch() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 'a';", when="false")
    wf.add_step("b", js="return 'b';")
    wf.add_step("either", js="return Object.keys(deps);", after=["a", "b"], run_if="any_completed")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    assert result.steps["either"].result == ["b"]


TOML = """
name = "payment"
[steps.pay]
js = "throw new Error('declined');"
retry = {attempts = 1}
[steps.release]
js = "return ctx.upstream.pay.status;"
after = ["pay"]
run_if = "all_done"
[steps.audit]
js = "return 'audited';"
after = ["release"]
when = "deps.release === 'failed'"
"""


async def test_rules_and_conditions_work_the_same_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "payment.toml"
    path.write_text(TOML)
    wf = Workflow.from_file(path, check=False)
    data = wf.to_dict()
    assert data["steps"]["release"]["run_if"] == "all_done"
    assert data["steps"]["audit"]["when"] == "deps.release === 'failed'"
    assert "run_if" not in data["steps"]["audit"]
    assert Workflow.from_dict(data).to_dict() == data
    async with Engine(pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    assert result.status == "failed"
    assert result.output == "audited"


def test_a_bad_rule_in_a_file_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"name": "w", "steps": {"a": {"js": "return 1;", "run_if": "maybe"}}}')
    with pytest.raises(WorkflowFileError, match=r"steps\.a\.run_if: must be one of"):
        Workflow.from_file(path, check=False)
