"""Capabilities (per-step ``api``) and the ``host.called`` audit, through the real pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import Engine, HostCalled, Workflow
from actors.errors import UnknownHostFunction
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def fetch_data(source: str) -> list[int]:
    if source == "bad":
        raise ValueError("no such source")
    return [1, 2]


def read_secret() -> str:  # sync: served on a host thread
    return "s3cret"


API = {"fetch_data": fetch_data, "read_secret": read_secret}


async def test_a_step_sees_only_the_host_functions_it_lists() -> None:
    wf = Workflow("w")
    wf.add_step(
        "limited",
        js="return [typeof fetch_data, typeof read_secret, await fetch_data('a')];",
        api=["fetch_data"],
    )
    wf.add_step("open", js="return [typeof fetch_data, typeof read_secret];")
    wf.add_step("none", js="return typeof fetch_data;", api=[])
    async with Engine(api=API, pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    assert result.steps["limited"].result == ["function", "undefined", [1, 2]]
    assert result.steps["open"].result == ["function", "function"]
    assert result.steps["none"].result == "undefined"


async def test_a_name_the_engine_lacks_fails_the_run_at_start_naming_it() -> None:
    wf = Workflow("w")
    wf.add_step("a", js="return 1;")
    wf.add_step("b", js="return await send_mail();", api=["fetch_data", "send_mail"])
    async with Engine(api=API, pool=RuntimePool(size=1)) as engine:
        with pytest.raises(UnknownHostFunction, match=r"step 'b': api: .* 'send_mail'") as caught:
            await engine.run(wf)
        stats = engine.statistics()
        assert (stats.active, stats.finished, stats.peak_active) == (0, 0, 0)  # no run began
    assert caught.value.step == "b"
    assert caught.value.function == "send_mail"


async def collect_host_calls(engine: Engine, wf: Workflow, n: int) -> tuple[Any, list[HostCalled]]:
    async with engine.bus.subscribe("host.called") as events:
        result = await engine.run(wf)
        calls = []
        with anyio.fail_after(5):
            for _ in range(n):
                event = await events.receive()
                assert isinstance(event, HostCalled)
                calls.append(event)
    return result, calls


AUDITED_JS = """
const a = await fetch_data('a');
try { await fetch_data('bad'); } catch (e) { }
return [a, await read_secret()];
"""


async def test_every_host_call_publishes_an_audit_event_without_its_arguments() -> None:
    wf = Workflow("audited")
    wf.add_step("s", js=AUDITED_JS)
    async with Engine(api=API, pool=RuntimePool(size=1)) as engine:
        result, calls = await collect_host_calls(engine, wf, 3)
    assert result.output == [[1, 2], "s3cret"]
    assert [(c.function, c.error) for c in calls] == [
        ("fetch_data", None),
        ("fetch_data", "ValueError"),
        ("read_secret", None),
    ]
    for call in calls:
        assert (call.run_id, call.workflow, call.step, call.attempt) == (
            result.id,
            "audited",
            "s",
            1,
        )
        assert call.duration >= 0
        assert call.arguments is None


async def test_audit_arguments_adds_them_to_the_event() -> None:
    wf = Workflow("audited")
    wf.add_step("s", js=AUDITED_JS)
    async with Engine(api=API, pool=RuntimePool(size=1), audit_arguments=True) as engine:
        _, calls = await collect_host_calls(engine, wf, 3)
    assert [c.arguments for c in calls] == [("a",), ("bad",), ()]


TOML = """
name = "w"
[steps.limited]
js = "return [typeof fetch_data, typeof read_secret];"
api = ["read_secret"]
"""


async def test_api_lists_work_the_same_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(TOML)
    wf = Workflow.from_file(path, check=False)
    data = wf.to_dict()
    assert data["steps"]["limited"]["api"] == ["read_secret"]
    assert Workflow.from_dict(data).to_dict() == data
    async with Engine(api=API, pool=RuntimePool(size=1)) as engine:
        result = await engine.run(wf)
    assert result.output == ["undefined", "function"]


def test_a_bad_api_list_is_refused() -> None:
    wf = Workflow("w")
    with pytest.raises(Exception, match="api: must be a list of host function names"):
        wf.add_step("a", js="return 1;", api="fetch_data")


CHATTY_JS = """
console.log('before');
await fetch_data('a');
console.log('after');
return 1;
"""


async def test_host_calls_and_lines_wait_for_their_step_started_held_up_by_a_full_subscriber() -> (
    None
):
    """A step's and each element's host.called and step.log events follow their
    step.started, in order, also when step.started had to wait for a full subscriber."""
    wf = Workflow("held")
    wf.add_step("first", js=CHATTY_JS)
    wf.add_step("fan", js=CHATTY_JS, for_each="[1, 2]", max_parallel=1, after=["first"])
    wf.add_step("last", js=CHATTY_JS, after=["fan"])
    engine = Engine(api=API, pool=RuntimePool(size=1))
    async with (
        engine,
        engine.bus.subscribe(
            "step.started", policy="block", max_buffer=1, block_timeout=float("inf")
        ) as starts,  # first: a publish waits here before it reaches `seen`
        engine.bus.subscribe("*") as seen,
    ):
        handle = await engine.start(wf)
        with anyio.fail_after(20):
            for _ in range(4):  # the next step.started waits for room meanwhile
                await anyio.sleep(0.3)
                await starts.receive()
            await handle.wait()
            got = []
            while len(got) < 19:
                event = await seen.receive()
                if event.topic.startswith(("step.", "host.")):
                    got.append(event)

    def attempt_of(index: int | None) -> list[tuple[str, Any]]:
        return [
            ("step.started", index),
            ("step.log", index),
            ("host.called", index),
            ("step.log", index),
        ]

    assert [(e.topic, getattr(e, "index", None)) for e in got] == [
        *attempt_of(None),
        ("step.completed", None),
        *attempt_of(0),
        *attempt_of(1),
        ("step.completed", None),
        *attempt_of(None),
        ("step.completed", None),
    ]
    assert [e.step for e in got] == ["first"] * 5 + ["fan"] * 9 + ["last"] * 5
