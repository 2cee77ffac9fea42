"""Shared JS (``Workflow(name, lib=...)``): one frozen ``lib`` for every step."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from actors import Engine, Workflow
from actors._lib import declared_names
from actors.errors import StepSyntaxError
from runtime_pool import RuntimePool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

LIB = """
const RATES = {eur: 1.1, usd: 1};
function toUsd(amount, currency) { return amount * RATES[currency]; }
const made = Math.random();
class Money { constructor(n) { this.n = n; } }
"""


@pytest.mark.parametrize(
    ("source", "names"),
    [
        (
            "function a() {}\nconst B = 1, C = f(1, 2)\nlet d\nclass E { m() { const no = 1; } }\n"
            "async function g() {}\nfunction* h() {}",
            ("a", "B", "C", "d", "E", "g", "h"),
        ),
        ("const re = /[{]/g; const s = `a ${ {x: 1}.x } } b`; var z = 1 / 2 / 3", ("re", "s", "z")),
        ("// const no = 1\n/* function no() {} */ const yes = 'function no() {}'", ("yes",)),
        ("const f = function inner() {}; const g = (a, b) => { let q; return a }", ("f", "g")),
        ("if (x) { function hidden() {} }\nconst y = 1", ("y",)),
        ("const t = `x${`y${1}`}`\nconst u = 2", ("t", "u")),
    ],
)
def test_the_top_level_declarations_are_found_without_running_the_js(
    source: str, names: tuple[str, ...]
) -> None:
    assert declared_names(source) == names


async def test_every_step_sees_the_same_frozen_lib() -> None:
    wf = Workflow("prices", lib=LIB)
    wf.add_step("a", js="return {usd: lib.toUsd(10, 'eur'), made: lib.made};")
    wf.add_step(
        "b",
        js="return {made: lib.made, frozen: Object.isFrozen(lib) && Object.isFrozen(lib.RATES)};",
        after=["a"],
    )
    async with Engine(pool=RuntimePool(size=1)) as engine:
        first = await engine.run(wf)
        second = await engine.run(wf)
    assert first.status == "completed", first.steps
    a, b = first.steps["a"].result, first.steps["b"].result
    assert a["usd"] == pytest.approx(11.0)
    assert b["frozen"] is True
    # evaluated once per runtime: the random constant is the same in every run
    assert a["made"] == b["made"] == second.steps["a"].result["made"]


async def test_a_step_cannot_change_lib_for_a_run_beside_it_in_the_same_worker() -> None:
    tampered, read = anyio.Event(), anyio.Event()

    async def tampering_done() -> None:
        tampered.set()
        await read.wait()  # still in flight while the other run reads lib

    async def wait_for_tampering() -> None:
        await tampered.wait()

    async def reading_done() -> None:
        read.set()

    attacker = Workflow("attacker", lib=LIB)
    attacker.add_step(
        "tamper",
        js="""
        const refused = [];
        const tries = [
          () => { lib.RATES.eur = 1000; },
          () => { lib.toUsd = () => 0; },
          () => { lib.toUsd.cache = 1; },
          () => { lib.Money.prototype.n = 7; },
          () => { lib.extra = 1; },
        ];
        for (const t of tries) { try { t(); } catch (e) { refused.push(e.name); } }
        await tampering_done();
        return refused;
        """,
    )
    reader = Workflow("reader", lib=LIB)
    reader.add_step(
        "read",
        js="""
        await wait_for_tampering();
        const seen = [lib.toUsd(10, 'eur'), lib.toUsd.cache, new lib.Money(1).n, 'extra' in lib];
        await reading_done();
        return seen;
        """,
    )
    api = {
        "tampering_done": tampering_done,
        "wait_for_tampering": wait_for_tampering,
        "reading_done": reading_done,
    }
    results = {}
    async with Engine(api=api, pool=RuntimePool(size=1)) as engine:

        async def run(wf: Workflow) -> None:
            results[wf.name] = await engine.run(wf)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, attacker)
            tg.start_soon(run, reader)
    assert results["attacker"].output == ["TypeError"] * 5
    assert results["reader"].output == [pytest.approx(11.0), None, 1, False]


async def test_lib_works_the_same_from_a_file_and_in_conditions(tmp_path: Path) -> None:
    data = {
        "name": "prices",
        "lib": "function big(n) { return n > 100; }",
        "steps": {
            "amount": {"js": "return ctx.event.amount;"},
            "approve": {"js": "return 'ok';", "after": ["amount"], "when": "lib.big(deps.amount)"},
        },
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    wf = Workflow.from_file(path)
    assert wf.to_dict() == data
    async with Engine(pool=RuntimePool(size=1)) as engine:
        small = await engine.run(wf, event={"amount": 5})
        big = await engine.run(Workflow.from_dict(data), event={"amount": 500})
    assert small.steps["approve"].reason == "condition false"
    assert big.output == "ok"


async def test_a_lib_that_does_not_compile_is_refused_before_any_step_runs() -> None:
    wf = Workflow("w", lib="function ok() {}\nconst = 3;")
    wf.add_step("a", js="return 1;")
    async with Engine(pool=RuntimePool(size=1)) as engine:
        with pytest.raises(StepSyntaxError) as caught:
            await engine.run(wf)
    assert caught.value.step == "lib"
    assert caught.value.line == 2
